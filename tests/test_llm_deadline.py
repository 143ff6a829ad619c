"""An LLM call shares the request's deadline (explainer/service.py, explainer/client.py): with a
deadline it may take what is left of it, however short `request_timeout_s` is; without one,
`request_timeout_s` bounds it; and past either, the template answers and says "deadline". Here
against a stand-in OpenAI-compatible server on loopback that answers after a set delay (the same
against the real vLLM: tests/test_explainer_llm.py)."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from explainer.config import ExplainerConfig
from explainer.service import Explainer
from ranker.types import Candidate, HistoryEvidence


class SlowLLM:
    """Answers every chat completion after `delay_s` with n copies of one continuation."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.calls = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        body = json.loads(await reader.readexactly(length))
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        reply = json.dumps({"choices": [{"index": i, "message": {"content": " in the same category."},
                                         "finish_reason": "stop"} for i in range(body["n"])],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()


def _request(catalog, k: int = 2):
    user = catalog.user_ids()[3]
    hist = catalog.get_items(catalog.history(user))
    items = [i for i in catalog.all_items() if i.id not in {h.id for h in hist}][:k]
    return hist, [(it, Candidate(it.id, 0.9, (HistoryEvidence(hist[-1].id, 0.8, ("category",)),))) for it in items]


@pytest.mark.parametrize("deadline_s,expect", [(3.0, "answered"), (None, "deadline"), (0.5, "deadline")])
async def test_an_llm_call_may_use_the_whole_deadline_not_just_request_timeout(priced_catalog, deadline_s, expect):
    async with SlowLLM(delay_s=1.0) as url:
        ex = Explainer.from_catalog(ExplainerConfig(vllm_url=url, model="m", request_timeout_s=0.3), priced_catalog)
        hist, pairs = _request(priced_catalog)
        t0 = time.perf_counter()
        try:
            out, traces = await ex.explain_traced(hist, pairs, deadline_s=deadline_s)
        finally:
            await ex.aclose()
        took = time.perf_counter() - t0
    if expect == "answered":       # 1 s > request_timeout_s, but within the 3 s deadline: the LLM's samples
        assert all(t.samples or t.facts.reason for t in traces) and "deadline" not in [j.fallback_reason for j in out]
        assert 0.9 < took < 3.0
    else:                          # past request_timeout_s (no deadline) or past the deadline: the template
        assert [j.fallback_reason for j in out] == ["weak_reason" if t.facts.reason else "deadline" for t in traces]
        assert all(j.source == "template" and j.text for j in out)
        assert took < 0.9
