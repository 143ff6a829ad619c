"""The Explainer: facts -> prompt -> n samples from vLLM -> strict verifier -> best passing sample or template.

Never raises for LLM trouble: a down, slow or erroring server, or a passed deadline, gives the
deterministic template justification, marked as such.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

from explainer.client import LLMUnavailable, VLLMClient
from explainer.vllm_pool import make_llm_client
from explainer.config import ExplainerConfig
from explainer.actions import action_for, kinds_of
from explainer.attributes import AttributeStats
from explainer.facts import CategoryNames, CoPurchases, ItemFacts, compute_facts, short_name
from explainer.prompts import FallbackTemplate, Prompt, PromptTemplate
from explainer.types import (FALLBACK_DEADLINE, FALLBACK_DISABLED, FALLBACK_LLM_UNAVAILABLE, FALLBACK_VERIFIER,
                             SOURCE_LLM, SOURCE_TEMPLATE, Justification, StreamEvent)
from explainer.verifier import RULES, Verdict, Verifier
from ranker.types import Candidate
from store.catalog import Catalog, Item

log = logging.getLogger(__name__)

MAX_HISTORY_IN_PROMPT = 10
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@dataclass
class Sample:
    text: str
    finish_reason: str
    verdict: Verdict


@dataclass
class Trace:
    """What happened for one item (evaluation and audit; not part of the reply)."""

    facts: ItemFacts
    samples: list[Sample] = field(default_factory=list)
    latency_s: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    error: str = ""


def first_sentence(text: str, finish_reason: str, start: int = 0) -> tuple[str, str]:
    """Keep the first complete sentence ending at or after `start` (the prefill, whose names may hold
    abbreviations, is never cut); we ask for one sentence. A cut text stays cut so the verifier sees it."""
    text = " ".join(text.split())
    m = _SENTENCE_END.search(text, max(0, start - 1))
    if m:
        return text[: m.end()], "stop"
    return text, finish_reason


class Explainer:
    def __init__(self, config: ExplainerConfig, catalog: Catalog):
        self.config = config
        self.catalog = catalog
        self.prompt = PromptTemplate(config.prompt_template)
        self.fallback = FallbackTemplate()
        self._client: VLLMClient | None = None
        self._categories: CategoryNames | None = None
        self._verifier: Verifier | None = None
        self._co: CoPurchases | None = None
        self._attributes: AttributeStats | None = None

    # -- catalog-derived helpers (built on first use; refresh after catalog changes) -------------
    def refresh_catalog(self) -> None:
        """(Re)build the catalog-wide tables: category names, brands, co-purchases. Runs on first use
        (about a second on the Scientific data); call it at start-up to keep that off the first request."""
        items = self.catalog.all_items(include_deleted=True)
        self._categories = CategoryNames(i.category for i in items)
        self._verifier = Verifier(i.brand for i in items)
        self._attributes = AttributeStats(items, self.config.preferred_attributes)
        # "other shoppers bought both" counts purchases only: a view or a rating is not a purchase
        self._co = CoPurchases(self.catalog.sequences(("train", "valid", "live"), kinds=("purchase",)))

    @property
    def categories(self) -> CategoryNames:
        if self._categories is None:
            self.refresh_catalog()
        return self._categories

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self.refresh_catalog()
        return self._verifier

    @property
    def client(self) -> VLLMClient | None:
        if self._client is None and self.config.enabled and self.config.vllm_url:
            self._client = make_llm_client(self.config.vllm_url, self.config.model, self.config.concurrency,
                                      self.config.request_timeout_s)
        return self._client

    # -- facts and templates --------------------------------------------------------------------
    def facts(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]]) -> list[ItemFacts]:
        cats = self.categories   # builds the co-purchase table too
        return [compute_facts(history, item, cand, cats, self._co, self._attributes) for item, cand in items]

    def history_names(self, history: Sequence[Item]) -> list[tuple[str, str]]:
        """(what the shopper did, short name) of the most recent history items, for the prompt."""
        return [(action_for(kinds_of(h)).verb, short_name(h.title, h.brand))
                for h in history[-MAX_HISTORY_IN_PROMPT:]]

    def _template(self, facts: ItemFacts, reason: str, failed: Sequence[str] = ()) -> Justification:
        return Justification(item_id=facts.item_id, text=self.fallback.render(facts), source=SOURCE_TEMPLATE,
                             template=self.fallback.id, model="", evidence_ids=facts.evidence_ids,
                             facts=facts.lines, failed_rules=tuple(failed), fallback_reason=reason)

    def explain_template(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]]) -> list[Justification]:
        return [self._template(f, FALLBACK_DISABLED) for f in self.facts(history, items)]

    def verify(self, text: str, facts: ItemFacts, history: Sequence[Item], finish_reason: str = "stop",
               prompt: Prompt | None = None) -> Verdict:
        if prompt is None:
            prompt = self.prompt.render([], facts)
        return self.verifier.verify(text, facts, [h.title for h in history], finish_reason, prompt.instructions,
                                    prompt.prefill, history_kinds=[kinds_of(h) for h in history])

    # -- the LLM path ---------------------------------------------------------------------------
    def _choose(self, facts: ItemFacts, samples: Sequence[Sample], model: str) -> Justification:
        passing = [s for s in samples if s.verdict.ok]
        failed = tuple(r for r in RULES if any(r in s.verdict.failed for s in samples))
        if not passing:
            return self._template(facts, FALLBACK_VERIFIER, failed)
        # prefer texts that cite an attribute too, then the most grounded, then the shortest
        best = min(passing, key=lambda s: (not s.verdict.mentions_attribute, s.verdict.unsupported_share, len(s.text)))
        evidence = facts.evidence_ids if best.verdict.mentions_history else ()
        return Justification(item_id=facts.item_id, text=best.text, source=SOURCE_LLM, template=self.prompt.id,
                             model=model, evidence_ids=evidence, facts=facts.lines,
                             failed_rules=tuple(r for r in RULES if any(r in s.verdict.failed for s in samples
                                                                        if s is not best)))

    async def _explain_one(self, history: Sequence[Item], names: Sequence[str], facts: ItemFacts,
                           trace: Trace) -> Justification:
        client = self.client
        prompt = self.prompt.render(names, facts)
        t0 = time.perf_counter()
        try:
            comp = await client.chat(prompt.messages, n=self.config.n_samples, max_tokens=self.config.max_tokens,
                                     temperature=self.config.temperature, top_p=self.config.top_p)
        except LLMUnavailable as exc:
            trace.error = str(exc)
            trace.latency_s = time.perf_counter() - t0
            log.warning("LLM unavailable, template for %s: %s", facts.item_id, exc)
            return self._template(facts, FALLBACK_LLM_UNAVAILABLE)
        trace.latency_s = time.perf_counter() - t0
        trace.completion_tokens, trace.prompt_tokens = comp.completion_tokens, comp.prompt_tokens
        for cont, finish in zip(comp.texts, comp.finish_reasons):
            text, finish = first_sentence(prompt.prefill + cont, finish, len(prompt.prefill))
            trace.samples.append(Sample(text, finish, self.verify(text, facts, history, finish, prompt)))
        return self._choose(facts, trace.samples, client.model)

    async def explain_traced(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]],
                             deadline_s: float | None = None) -> tuple[list[Justification], list[Trace]]:
        facts = self.facts(history, items)
        traces = [Trace(f) for f in facts]
        if not facts:
            return [], []
        if not self.config.enabled:
            return [self._template(f, FALLBACK_DISABLED) for f in facts], traces
        if self.client is None:
            return [self._template(f, FALLBACK_LLM_UNAVAILABLE) for f in facts], traces
        names = self.history_names(history)
        tasks = [asyncio.ensure_future(self._explain_one(history, names, f, t)) for f, t in zip(facts, traces)]
        deadline = deadline_s if deadline_s is not None else self.config.deadline_s
        done, pending = await asyncio.wait(tasks, timeout=deadline)
        for t in pending:
            t.cancel()
        out = []
        for f, task in zip(facts, tasks):
            if task in done and not task.cancelled() and task.exception() is None:
                out.append(task.result())
            elif task in done and task.exception() is not None:
                log.error("explainer failed for %s: %r", f.item_id, task.exception())
                out.append(self._template(f, FALLBACK_LLM_UNAVAILABLE))
            else:
                out.append(self._template(f, FALLBACK_DEADLINE))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return out, traces

    async def explain(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]],
                      deadline_s: float | None = None) -> list[Justification]:
        """One justification per item, same order; the items are sent concurrently (shared prompt prefix)."""
        return (await self.explain_traced(history, items, deadline_s))[0]

    async def explain_stream(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]],
                             deadline_s: float | None = None) -> AsyncIterator[StreamEvent]:
        """Token chunks as generated (one sample per item), then one final verified event per item.

        A streamed text that fails the verifier is replaced: its final event is the template.
        """
        facts = self.facts(history, items)
        if not self.config.enabled or self.client is None:
            reason = FALLBACK_DISABLED if not self.config.enabled else FALLBACK_LLM_UNAVAILABLE
            for f in facts:
                yield StreamEvent(f.item_id, final=self._template(f, reason))
            return
        names = self.history_names(history)
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        finished: set[str] = set()

        async def one(f: ItemFacts) -> None:
            prompt = self.prompt.render(names, f)
            parts = [prompt.prefill]
            await queue.put(StreamEvent(f.item_id, delta=prompt.prefill))
            finish = "stop"
            try:
                async for delta, reason in self.client.chat_stream(
                        prompt.messages, self.config.max_tokens, self.config.temperature, self.config.top_p):
                    if delta:
                        parts.append(delta)
                        await queue.put(StreamEvent(f.item_id, delta=delta))
                    if reason:
                        finish = reason
            except LLMUnavailable as exc:
                log.warning("LLM unavailable while streaming %s: %s", f.item_id, exc)
                final = self._template(f, FALLBACK_LLM_UNAVAILABLE)
            else:
                text, finish = first_sentence("".join(parts), finish, len(prompt.prefill))
                verdict = self.verify(text, f, history, finish, prompt)
                final = self._choose(f, [Sample(text, finish, verdict)], self.client.model)
            await queue.put(StreamEvent(f.item_id, final=final))

        tasks = [asyncio.ensure_future(one(f)) for f in facts]
        deadline = deadline_s if deadline_s is not None else self.config.deadline_s
        end = None if deadline is None else time.monotonic() + deadline
        try:
            while len(finished) < len(facts):
                timeout = None if end is None else end - time.monotonic()
                if timeout is not None and timeout <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if ev.final is not None:
                    finished.add(ev.item_id)
                yield ev
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for f in facts:
            if f.item_id not in finished:
                yield StreamEvent(f.item_id, final=self._template(f, FALLBACK_DEADLINE))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
