"""Several vLLM servers behind the one client interface (`VLLMClient`'s methods).

Requests go round-robin to the servers that are up. A server that refuses the connection,
drops it, or answers 5xx is taken out at once and the request is sent to the next one; it
comes back when its `/health` answers 200 (asked at most every `probe_interval_s`, in the
background, never on a request's path). A timeout does not take a server out: a slow server
is busy, not dead, and the caller's deadline has gone anyway. With every server out, a call
fails at once with LLMUnavailable and the explainer answers with its templates.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

import httpx

from explainer.client import Completion, LLMUnavailable, VLLMClient

log = logging.getLogger(__name__)


def split_urls(value: str) -> list[str]:
    """`--vllm-url` accepts one URL or several separated by commas."""
    return [u.strip().rstrip("/") for u in value.split(",") if u.strip()]


def _server_is_down(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    if isinstance(cause, httpx.HTTPStatusError):
        return cause.response.status_code >= 500
    return isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                              httpx.ReadError, httpx.WriteError))


@dataclass(eq=False)
class Endpoint:
    client: VLLMClient
    up: bool = True
    next_probe: float = 0.0
    calls: int = 0                 # requests sent here (for tests and logs)
    probing: asyncio.Task | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.client.base_url


class VLLMPool:
    def __init__(self, urls: Sequence[str], model: str = "", concurrency: int = 32, timeout_s: float = 20.0,
                 probe_interval_s: float = 2.0):
        if not urls:
            raise ValueError("vllm_url: at least one URL")
        # each server gets the configured concurrency: adding a server adds capacity
        self.endpoints = [Endpoint(VLLMClient(u, model, concurrency, timeout_s)) for u in urls]
        self.probe_interval_s = probe_interval_s
        self._turn = itertools.count()
        self.base_url = ",".join(e.url for e in self.endpoints)

    @property
    def model(self) -> str:
        return next((e.client.model for e in self.endpoints if e.client.model), "")

    # -- choosing a server --------------------------------------------------------------------
    def _probe_due(self) -> None:
        now = time.monotonic()
        for ep in self.endpoints:
            if not ep.up and now >= ep.next_probe and (ep.probing is None or ep.probing.done()):
                ep.next_probe = now + self.probe_interval_s
                ep.probing = asyncio.get_running_loop().create_task(self._probe(ep))

    async def _probe(self, ep: Endpoint) -> None:
        try:
            r = await ep.client._http.get("/health", timeout=2.0)
            if r.status_code == 200:
                ep.up = True
                log.info("vLLM server %s answers its health check again: back in rotation", ep.url)
        except httpx.HTTPError:
            pass

    def _mark_down(self, ep: Endpoint, exc: BaseException) -> None:
        if ep.up:
            log.warning("vLLM server %s is down (%s): out of rotation until /health answers", ep.url, exc)
        ep.up = False
        ep.next_probe = time.monotonic() + self.probe_interval_s

    def _pick(self, tried: set[int]) -> Endpoint:
        self._probe_due()
        n = len(self.endpoints)
        start = next(self._turn)
        for k in range(n):
            i = (start + k) % n
            if i not in tried and self.endpoints[i].up:
                tried.add(i)
                self.endpoints[i].calls += 1
                return self.endpoints[i]
        raise LLMUnavailable(f"no vLLM server is up ({self.base_url})")

    # -- the client interface -------------------------------------------------------------------
    async def model_name(self) -> str:
        tried: set[int] = set()
        while True:
            ep = self._pick(tried)
            try:
                return await ep.client.model_name()
            except LLMUnavailable as exc:
                if not _server_is_down(exc):
                    raise
                self._mark_down(ep, exc)

    async def chat(self, messages: Sequence[dict], n: int = 1, max_tokens: int = 40, temperature: float = 0.7,
                   top_p: float = 0.9, timeout_s: float | None = None, extra: dict | None = None) -> Completion:
        tried: set[int] = set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            ep = self._pick(tried)
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                return await ep.client.chat(messages, n, max_tokens, temperature, top_p, left, extra)
            except LLMUnavailable as exc:
                if not _server_is_down(exc):
                    raise
                self._mark_down(ep, exc)

    async def chat_stream(self, messages: Sequence[dict], max_tokens: int = 40, temperature: float = 0.7,
                          top_p: float = 0.9) -> AsyncIterator[tuple[str, str | None]]:
        """Moves to another server only while nothing has been yielded (a half-sent stream
        cannot be replayed without repeating text)."""
        tried: set[int] = set()
        while True:
            ep = self._pick(tried)
            started = False
            try:
                async for chunk in ep.client.chat_stream(messages, max_tokens, temperature, top_p):
                    started = True
                    yield chunk
                return
            except LLMUnavailable as exc:
                if started or not _server_is_down(exc):
                    raise
                self._mark_down(ep, exc)

    async def tokenize(self, messages: Sequence[dict]) -> list[int]:
        return await self._pick(set()).client.tokenize(messages)

    async def aclose(self) -> None:
        for ep in self.endpoints:
            if ep.probing is not None and not ep.probing.done():
                ep.probing.cancel()
            await ep.client.aclose()


def make_llm_client(vllm_url: str, model: str = "", concurrency: int = 32, timeout_s: float = 20.0
                    ) -> VLLMClient | VLLMPool:
    """One URL: the plain client. Several (comma-separated): a pool over them."""
    urls = split_urls(vllm_url)
    if len(urls) == 1:
        return VLLMClient(urls[0], model, concurrency, timeout_s)
    return VLLMPool(urls, model, concurrency, timeout_s)
