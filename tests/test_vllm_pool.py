"""Several vLLM URLs: requests spread over the servers that are up, a dead one is dropped and
comes back when its /health answers. The real test runs against the session's vLLM server,
reached through two loopback addresses and a TCP relay that is off, then on."""
from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from explainer.client import LLMUnavailable
from explainer.config import ExplainerConfig
from explainer.vllm_pool import VLLMPool, _server_is_down, make_llm_client, split_urls

MESSAGES = [{"role": "user", "content": "Say yes."}]


def test_urls_are_split_and_each_checked():
    assert split_urls(" http://a:1/, http://b:2 ,") == ["http://a:1", "http://b:2"]
    assert ExplainerConfig(vllm_url="http://a:1/,http://b:2").vllm_url == "http://a:1,http://b:2"
    with pytest.raises(ValueError, match="vllm_url"):
        ExplainerConfig(vllm_url="http://a:1,b:2")
    assert isinstance(make_llm_client("http://a:1,http://b:2"), VLLMPool)


def test_only_connection_failures_and_5xx_take_a_server_out():
    request = httpx.Request("POST", "http://x/v1/chat/completions")

    def wrapped(cause):
        try:
            raise LLMUnavailable("failed") from cause
        except LLMUnavailable as exc:
            return exc
    assert _server_is_down(wrapped(httpx.ConnectError("refused", request=request)))
    assert _server_is_down(wrapped(httpx.HTTPStatusError("503", request=request,
                                                         response=httpx.Response(503, request=request))))
    assert not _server_is_down(wrapped(httpx.HTTPStatusError("400", request=request,
                                                             response=httpx.Response(400, request=request))))
    assert not _server_is_down(wrapped(asyncio.TimeoutError()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _relay(listen_port: int, to_host: str, to_port: int) -> asyncio.AbstractServer:
    """A plain TCP relay: what a revived server looks like from the pool's side."""
    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(to_host, to_port)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", listen_port)


@pytest.mark.vllm
@pytest.mark.slow
async def test_pool_spreads_drops_a_dead_server_and_takes_it_back(vllm_server):
    port = int(vllm_server.url.rsplit(":", 1)[1])
    dead_port = _free_port()
    urls = [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://127.0.0.1:{dead_port}"]
    pool = VLLMPool(urls, model=vllm_server.model_name, concurrency=4, timeout_s=60, probe_interval_s=0.5)
    live_a, live_b, dead = pool.endpoints
    try:
        for _ in range(6):      # every call answers although one server in three is dead
            reply = await pool.chat(MESSAGES, max_tokens=2, temperature=0.0)
            assert reply.texts
        assert not dead.up and dead.calls == 1           # tried once, then out of rotation
        assert live_a.calls >= 2 and live_b.calls >= 2   # the others share the work

        relay = await _relay(dead_port, "127.0.0.1", port)    # the dead server comes back
        try:
            for _ in range(40):
                await pool.chat(MESSAGES, max_tokens=2, temperature=0.0)
                if dead.up and dead.calls > 1:
                    break
                await asyncio.sleep(0.2)
            assert dead.up and dead.calls > 1, "the revived server never got a request again"
        finally:
            relay.close()
        for ep in pool.endpoints:
            ep.up = False
            ep.next_probe = float("inf")
        with pytest.raises(LLMUnavailable, match="no vLLM server is up"):
            await pool.chat(MESSAGES, max_tokens=2)
    finally:
        await pool.aclose()
