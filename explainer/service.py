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
from typing import AsyncIterator, Callable, Sequence

from explainer.actions import action_for, kinds_of
from explainer.client import LLMTimeout, LLMUnavailable, VLLMClient
from explainer.config import ExplainerConfig
from explainer.vllm_pool import make_llm_client
from explainer.categories import CategoryNames
from explainer.facts import ItemFacts, compute_reply_facts
from explainer.link_feedback import LinkPreferences
from explainer.prompts import FallbackTemplate, Prompt, PromptTemplate
from explainer.read_model import CatalogReadModel, CatalogSource
from explainer.types import (FALLBACK_DEADLINE, FALLBACK_DISABLED, FALLBACK_LLM_UNAVAILABLE, FALLBACK_SEARCH,
                             FALLBACK_VERIFIER, FALLBACK_WEAK_REASON,
                             SOURCE_LLM, SOURCE_TEMPLATE, Justification, StreamEvent)
from explainer.verifier import RULES, Verdict, Verifier
from ranker.types import Candidate
from store.catalog import Event, Item

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
    def __init__(self, config: ExplainerConfig, read_model: CatalogReadModel):
        """read_model: what the explainer knows of the catalog (names, categories, brands, attributes, co-purchases),
        built at start-up by CatalogReadModel.from_catalog; the explainer never reads the store."""
        # Whether the LLM is known to answer (the supervisor of a local vLLM sets it): while it is down,
        # templates answer at once instead of one failed connection (and log line) per item.
        self.llm_up: Callable[[], bool] = lambda: True
        self.config = config
        self.read_model = read_model
        self.prompt = PromptTemplate(config.prompt_template)
        self.fallback = FallbackTemplate()
        self._client: VLLMClient | None = None
        self.link_preferences: LinkPreferences | None = None   # set by the server from SubmitFeedback ratings

    @classmethod
    def from_catalog(cls, config: ExplainerConfig, catalog: CatalogSource) -> "Explainer":
        """An explainer over a read model built from the store now (the entry points: serve, the batch
        job, the evaluation, the benches)."""
        return cls(config, CatalogReadModel.from_catalog(catalog, config.preferred_attributes))

    def add_items(self, items: Sequence[Item]) -> None:
        """New or changed catalog items join the read model (incrementally; see CatalogReadModel.add_items)."""
        self.read_model.add_items(items)

    def add_events(self, events: Sequence[Event]) -> int:
        """Events this process just recorded: their purchases join the co-purchase table at once, so
        the next justification may cite them (CatalogReadModel.add_events)."""
        return self.read_model.add_events(events)

    @property
    def categories(self) -> CategoryNames:
        return self.read_model.categories

    @property
    def verifier(self) -> Verifier:
        return self.read_model.verifier

    @property
    def client(self) -> VLLMClient | None:
        if self._client is None and self.config.enabled and self.config.vllm_url:
            self._client = make_llm_client(self.config.vllm_url, self.config.model, self.config.concurrency,
                                      self.config.request_timeout_s)
        return self._client

    # -- facts and templates --------------------------------------------------------------------
    def facts(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]]) -> list[ItemFacts]:
        prefs = self.link_preferences   # helpful / not-helpful ratings per link kind (explainer.link_feedback)
        return compute_reply_facts(history, items, self.read_model.categories, self.read_model.co_purchases,
                                   self.read_model.attributes, prefs.bonus if prefs is not None else None,
                                   self.read_model.makers)

    def history_names(self, history: Sequence[Item]) -> list[tuple[str, str]]:
        """(what the shopper did, short name) of the most recent history items, for the prompt."""
        return [(action_for(kinds_of(h)).verb, self.read_model.name(h)) for h in history[-MAX_HISTORY_IN_PROMPT:]]

    @staticmethod
    def needs_llm(facts: ItemFacts) -> bool:
        """False when the item has no link with the history but a search it matches or a weak reason:
        that line, worded as it is, is the justification, with no LLM call."""
        return bool(facts.anchor_name or not (facts.search or facts.reason))

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
        # prefer texts that state the strongest link, then more links, then the most grounded, then the shortest
        best = min(passing, key=lambda s: (facts.link not in s.verdict.links_stated, -len(s.verdict.links_stated),
                                           not s.verdict.mentions_attribute, s.verdict.unsupported_share, len(s.text)))
        evidence = facts.evidence_ids if best.verdict.mentions_history else ()
        return Justification(item_id=facts.item_id, text=best.text, source=SOURCE_LLM, template=self.prompt.id,
                             model=model, evidence_ids=evidence, facts=facts.lines,
                             failed_rules=tuple(r for r in RULES if any(r in s.verdict.failed for s in samples
                                                                        if s is not best)))

    async def _explain_one(self, history: Sequence[Item], names: Sequence[str], facts: ItemFacts,
                           trace: Trace, deadline_at: float | None = None) -> Justification:
        """deadline_at (time.monotonic()): the call's deadline, which this LLM call may use to the end;
        without one, the per-call timeout request_timeout_s."""
        if not self.needs_llm(facts):
            return self._template(facts, FALLBACK_SEARCH if facts.search else FALLBACK_WEAK_REASON)
        client = self.client
        prompt = self.prompt.render(names, facts)
        t0 = time.perf_counter()
        timeout_s = None if deadline_at is None else max(deadline_at - time.monotonic(), 0.001)
        try:
            comp = await client.chat(prompt.messages, n=self.config.n_samples, max_tokens=self.config.max_tokens,
                                     temperature=self.config.temperature, top_p=self.config.top_p,
                                     timeout_s=timeout_s)
        except LLMUnavailable as exc:
            trace.error = str(exc)
            trace.latency_s = time.perf_counter() - t0
            # a timeout is a slow LLM, not a dead one: the caller's client should read "deadline"
            slow = isinstance(exc, LLMTimeout)
            log.warning("LLM %s, template for %s: %s", "too slow" if slow else "unavailable", facts.item_id, exc)
            return self._template(facts, FALLBACK_DEADLINE if slow else FALLBACK_LLM_UNAVAILABLE)
        trace.latency_s = time.perf_counter() - t0
        trace.completion_tokens, trace.prompt_tokens = comp.completion_tokens, comp.prompt_tokens
        for cont, finish in zip(comp.texts, comp.finish_reasons):
            text, finish = first_sentence(prompt.prefill + cont, finish, len(prompt.prefill))
            trace.samples.append(Sample(text, finish, self.verify(text, facts, history, finish, prompt)))
        return self._choose(facts, trace.samples, client.model)

    def templates(self, facts: Sequence[ItemFacts], reason: str = FALLBACK_DISABLED) -> list[Justification]:
        """The deterministic justification of each item, marked with why the LLM did not answer."""
        return [self._template(f, reason) for f in facts]

    async def justify_traced(self, history: Sequence[Item], facts: Sequence[ItemFacts],
                             deadline_s: float | None = None) -> tuple[list[Justification], list[Trace]]:
        """One justification per item's facts, same order, and what happened (samples, verdicts, tokens).

        The items are sent concurrently (they share the prompt prefix); past `deadline_s` the
        unfinished ones get the template (fallback_reason "deadline")."""
        traces = [Trace(f) for f in facts]
        if not facts:
            return [], []
        if not self.config.enabled:
            return [self._template(f, FALLBACK_DISABLED) for f in facts], traces
        if self.client is None or not self.llm_up():
            return [self._template(f, FALLBACK_LLM_UNAVAILABLE) for f in facts], traces
        names = self.history_names(history)
        deadline = deadline_s if deadline_s is not None else self.config.deadline_s
        deadline_at = None if deadline is None else time.monotonic() + deadline
        tasks = [asyncio.ensure_future(self._explain_one(history, names, f, t, deadline_at))
                 for f, t in zip(facts, traces)]
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

    async def explain_traced(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]],
                             deadline_s: float | None = None) -> tuple[list[Justification], list[Trace]]:
        """`facts` then `justify_traced`."""
        return await self.justify_traced(history, self.facts(history, items), deadline_s)

    async def explain(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]],
                      deadline_s: float | None = None) -> list[Justification]:
        """One justification per item, same order; the items are sent concurrently (shared prompt prefix)."""
        return (await self.explain_traced(history, items, deadline_s))[0]

    async def explain_stream(self, history: Sequence[Item], items: Sequence[tuple[Item, Candidate]],
                             deadline_s: float | None = None) -> AsyncIterator[StreamEvent]:
        """`facts` then `justify_stream`."""
        async for event in self.justify_stream(history, self.facts(history, items), deadline_s):
            yield event

    def template_stream(self, facts: Sequence[ItemFacts], reason: str = FALLBACK_DISABLED) -> list[StreamEvent]:
        """The deterministic justifications as stream events: word chunks, then the final, per item."""
        return [ev for f in facts for ev in _text_events(self._template(f, reason), "")]

    def frame(self, facts: ItemFacts, prompt: Prompt | None = None) -> str:
        """The opening words every justification of this item starts with, whoever writes the rest:
        the part the LLM's prefill and the template share ("You may like the X"), cut at a word end."""
        prefill = (prompt or self.prompt.render([], facts)).prefill
        template = self.fallback.render(facts)
        n = 0
        for a, b in zip(prefill, template):
            if a != b:
                break
            n += 1
        frame = template[:n]
        if n < len(template) and n and template[n - 1].isalnum() and template[n].isalnum():
            frame = frame[:len(frame) - len(frame.split()[-1])] if frame.split() else ""
        return frame

    def _with_frame(self, j: Justification, facts: ItemFacts, frame: str) -> Justification:
        """A chosen text that does not start with the frame already streamed is replaced by the template
        (which always does): what was streamed is never taken back."""
        if j.text.startswith(frame):
            return j
        log.warning("LLM text for %s does not start with its streamed frame; template instead", facts.item_id)
        return self._template(facts, FALLBACK_VERIFIER, j.failed_rules)

    async def justify_stream(self, history: Sequence[Item], facts: Sequence[ItemFacts],
                             deadline_s: float | None = None) -> AsyncIterator[StreamEvent]:
        """Streams only text the verifier has passed.

        1. every item's frame at once (the words from the facts: "You may like the X");
        2. the n samples per item generated and verified exactly as `justify_traced` does;
        3. as each item is chosen, the rest of its chosen text in word chunks, then its final event.
        Concatenated, an item's chunks equal its final text; the final only confirms it (source,
        evidence, template). Past the deadline the unfinished items get the template, which starts
        with the same frame.
        """
        if not facts:
            return
        frames = [self.frame(f) for f in facts]
        for f, frame in zip(facts, frames):
            if frame:
                yield StreamEvent(f.item_id, delta=frame)
        if not self.config.enabled or self.client is None or not self.llm_up():
            reason = FALLBACK_DISABLED if not self.config.enabled else FALLBACK_LLM_UNAVAILABLE
            for f, frame in zip(facts, frames):
                for ev in _text_events(self._template(f, reason), frame):
                    yield ev
            return
        names = self.history_names(history)
        index = {id(f): n for n, f in enumerate(facts)}

        deadline = deadline_s if deadline_s is not None else self.config.deadline_s
        deadline_at = None if deadline is None else time.monotonic() + deadline

        async def one(f: ItemFacts) -> tuple[ItemFacts, Justification]:
            return f, await self._explain_one(history, names, f, Trace(f), deadline_at)

        tasks = [asyncio.ensure_future(one(f)) for f in facts]
        finished: set[int] = set()
        try:
            for next_done in asyncio.as_completed(tasks, timeout=deadline):
                try:
                    f, j = await next_done
                except asyncio.TimeoutError:
                    break
                except Exception as exc:  # noqa: BLE001 - one item's failure gives that item the template
                    log.error("explainer failed while streaming: %r", exc)
                    continue
                n = index[id(f)]
                finished.add(n)
                for ev in _text_events(self._with_frame(j, f, frames[n]), frames[n]):
                    yield ev
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for n, (f, task) in enumerate(zip(facts, tasks)):
            if n not in finished:
                failed = task.done() and not task.cancelled() and task.exception() is not None
                reason = FALLBACK_LLM_UNAVAILABLE if failed else FALLBACK_DEADLINE
                for ev in _text_events(self._template(f, reason), frames[n]):
                    yield ev

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


_WORD = re.compile(r"\s*\S+")


def _text_events(j: Justification, sent: str) -> list[StreamEvent]:
    """The rest of j.text after what was already streamed (`sent`, a prefix of it), one word per
    chunk, then the final event."""
    assert j.text.startswith(sent), (j.text, sent)
    return [StreamEvent(j.item_id, delta=w) for w in _WORD.findall(j.text[len(sent):])] + \
        [StreamEvent(j.item_id, final=j)]
