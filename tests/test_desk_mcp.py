"""The MCP tools answer a real MCP client session: `explainrec mcp` started as a subprocess over
stdio, and over streamable HTTP, calling a real gRPC service (priced catalog, templates)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def _exercise(client, catalog) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"recommend", "explain", "similar_items", "record_feedback"}
    for t in tools.values():     # JSON Schema in and out
        assert t.input_schema["type"] == "object" and t.output_schema and t.output_schema["type"] == "object"
    assert tools["similar_items"].input_schema["properties"]["max_price"]["anyOf"][0]["minimum"] == 0

    ref = max((i for i in catalog.all_items() if i.price is not None and "Tent" in i.title), key=lambda i: i.price)
    res = await client.call_tool("similar_items", {"item_id": ref.id, "cheaper": True, "k": 6})
    assert not res.is_error, res.content
    items = res.structured_content["items"]
    assert len(items) == 6 and res.structured_content["reference"]["id"] == ref.id
    assert all(it["price"] is not None and it["price"] < ref.price for it in items)

    user = catalog.user_ids()[7]
    rec = await client.call_tool("recommend", {"user_id": user, "k": 3})
    assert not rec.is_error and all(it["why"] and it["why_source"] == "template" for it in rec.structured_content["items"])
    item = rec.structured_content["items"][0]["item_id"]
    why = await client.call_tool("explain", {"user_id": user, "item_ids": [item]})
    assert why.structured_content["explanations"][0]["item_id"] == item
    fb = await client.call_tool("record_feedback", {"user_id": user, "item_id": item, "kind": "rating",
                                                    "helpful": True, "reason": "asked by chat"})
    fid = fb.structured_content["feedback_id"]
    row = next(f for f in catalog.feedback(user) if f["id"] == fid)
    assert (row["item_id"], row["helpful"], row["reason"]) == (item, 1, "asked by chat")

    bad = await client.call_tool("similar_items", {"item_id": "NO-SUCH", "k": 3})
    assert bad.is_error and "NOT_FOUND" in bad.content[0].text
    bad = await client.call_tool("recommend", {"user_id": user, "k": 0})
    assert bad.is_error and "k" in bad.content[0].text


async def test_mcp_over_stdio(priced_server, priced_catalog):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "mcp", "--target", priced_server.target],
                                   cwd=str(ROOT), env=_env())
    async with Client(params) as client:
        await _exercise(client, priced_catalog)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_mcp_over_streamable_http(priced_server, priced_catalog):
    from mcp import Client

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "mcp", "--transport", "http", "--port", str(port),
                             "--target", priced_server.target], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < end, "the MCP HTTP server did not start"
            time.sleep(0.2)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            await _exercise(client, priced_catalog)
    finally:
        proc.terminate()
        proc.wait(10)
