"""Async client for an OpenAI-compatible vLLM server (local or remote: same code).

Bounded concurrency (one semaphore per client), a per-call timeout, `n` samples per call,
and streaming. The assistant prefill is sent as the last message with
`continue_final_message` (vLLM extension), so the model only completes the frame.
Never sends `seed`: the CPU build crashes on per-request seeds with temperature > 0.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import AsyncIterator, Sequence

import httpx


class LLMUnavailable(Exception):
    """The server could not be reached, answered with an error, or timed out."""


class LLMTimeout(LLMUnavailable):
    """The LLM did not answer within the call's time: it is slow or busy, not necessarily down
    (the reply says `deadline`, and a pool keeps the server)."""


@dataclass(frozen=True)
class Completion:
    texts: tuple[str, ...]            # continuation of each sample (without the prefill)
    finish_reasons: tuple[str, ...]   # "stop" / "length" per sample
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class VLLMClient:
    def __init__(self, base_url: str, model: str = "", concurrency: int = 32, timeout_s: float = 20.0):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self._sem = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout_s, connect=2.0),
                                       limits=httpx.Limits(max_connections=concurrency + 4,
                                                           max_keepalive_connections=concurrency))
        self._model_lock = asyncio.Lock()

    async def model_name(self) -> str:
        if self.model:
            return self.model
        async with self._model_lock:
            if not self.model:
                try:
                    r = await self._http.get("/v1/models", timeout=5.0)
                    r.raise_for_status()
                    self.model = r.json()["data"][0]["id"]
                except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
                    raise LLMUnavailable(f"cannot list models at {self.base_url}: {exc!r}") from exc
        return self.model

    async def _body(self, messages: Sequence[dict], n: int, max_tokens: int, temperature: float, top_p: float,
                    stream: bool) -> dict:
        prefilled = bool(messages) and messages[-1]["role"] == "assistant"
        return {
            "model": await self.model_name(), "messages": list(messages), "n": n, "max_tokens": max_tokens,
            "temperature": temperature, "top_p": top_p, "stop": ["\n"], "stream": stream,
            "add_generation_prompt": not prefilled, "continue_final_message": prefilled,
        }

    async def chat(self, messages: Sequence[dict], n: int = 1, max_tokens: int = 40, temperature: float = 0.7,
                   top_p: float = 0.9, timeout_s: float | None = None, extra: dict | None = None) -> Completion:
        """extra: more request fields (e.g. the bench's ignore_eos); never `seed` on the CPU build."""
        body = await self._body(messages, n, max_tokens, temperature, top_p, stream=False)
        body.update(extra or {})
        t0 = time.perf_counter()
        async with self._sem:
            # timeout_s (what is left of a request's deadline) covers the whole call, the wait for a
            # free slot included, and is the HTTP timeout too (the client-wide one would cut it
            # short); without it, the client-wide timeout bounds the HTTP call alone, as queued batch
            # work expects
            left = timeout_s - (time.perf_counter() - t0) if timeout_s else self.timeout_s
            try:
                if left <= 0:
                    raise asyncio.TimeoutError(f"no free slot within {timeout_s:.1f} s")
                r = await asyncio.wait_for(self._http.post("/v1/chat/completions", json=body,
                                                           timeout=httpx.Timeout(left, connect=2.0)), left)
                r.raise_for_status()
                data = r.json()
            except httpx.ConnectTimeout as exc:      # nothing answers at that address: down, not slow
                raise LLMUnavailable(f"chat completion failed: {exc!r}") from exc
            except (httpx.TimeoutException, asyncio.TimeoutError) as exc:
                raise LLMTimeout(f"chat completion timed out: {exc!r}") from exc
            except (httpx.HTTPError, ValueError) as exc:
                raise LLMUnavailable(f"chat completion failed: {exc!r}") from exc
        choices = sorted(data["choices"], key=lambda c: c["index"])
        usage = data.get("usage") or {}
        return Completion(tuple(c["message"]["content"] or "" for c in choices),
                          tuple(c.get("finish_reason") or "stop" for c in choices),
                          int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          time.perf_counter() - t0)

    async def chat_stream(self, messages: Sequence[dict], max_tokens: int = 40, temperature: float = 0.7,
                          top_p: float = 0.9) -> AsyncIterator[tuple[str, str | None]]:
        """Yields (delta, finish_reason); finish_reason is set on the last chunk. One sample."""
        body = await self._body(messages, 1, max_tokens, temperature, top_p, stream=True)
        async with self._sem:
            try:
                async with self._http.stream("POST", "/v1/chat/completions", json=body) as r:
                    r.raise_for_status()
                    async for line in r.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            break
                        chunk = json.loads(payload)
                        for c in chunk.get("choices", []):
                            yield (c.get("delta", {}).get("content") or ""), c.get("finish_reason")
            except (httpx.HTTPError, ValueError) as exc:
                raise LLMUnavailable(f"streaming failed: {exc!r}") from exc

    async def tokenize(self, messages: Sequence[dict]) -> list[int]:
        """Token ids of the prompt vLLM builds from `messages` (chat template applied)."""
        prefilled = bool(messages) and messages[-1]["role"] == "assistant"
        body = {"model": await self.model_name(), "messages": list(messages),
                "add_generation_prompt": not prefilled, "continue_final_message": prefilled}
        r = await self._http.post("/tokenize", json=body)
        r.raise_for_status()
        return list(r.json()["tokens"])

    async def aclose(self) -> None:
        await self._http.aclose()
