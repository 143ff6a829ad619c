"""The domain facade the servicer calls: catalog + ranker + explainer behind typed async methods.

No model code here: the ranker and explainer are built elsewhere (`server.setup`) and handed in.
Blocking work (ranking, SQLite) runs on a small thread pool so the event loop keeps serving.
The deadline policy lives here: when the caller's remaining time cannot fit the LLM, the
deterministic templates answer instead of an error.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Callable, Sequence

from explainer.justification_cache import JustificationCache
from explainer.link_feedback import link_kinds_for
from explainer.pipeline import Prepared, Recommendation, RecommendPipeline
from explainer.types import FALLBACK_DEADLINE, FALLBACK_DISABLED, StreamEvent
from ranker.types import RankQuery
from server import metrics
from server.batcher import BatcherConfig, DynamicBatcher
from server.context import MODEL_VERSION
from store.catalog import Event, Feedback, Item
from core.cpu_yield import pause
from core.errors import UnknownItem

if TYPE_CHECKING:
    from explainer.service import Explainer
    from ranker.service import Ranker
    from server.config import ServerConfig
    from store.catalog import Catalog

log = logging.getLogger("explainrec.server")

__all__ = ["RankedList", "RecService", "Recommendation"]


@dataclass(frozen=True)
class RankedList:
    """A ranking before any justification text (also the first event of a stream)."""
    recommendations: list[Recommendation]
    excluded_no_price: int = 0         # items a price filter left out for having no price
    encoded: bytes | None = None       # the call's `encode` of the recommendations, run in the ranking thread


EncodeReply = Callable[[Sequence[Recommendation]], bytes]


def _rank_batch(pipeline: RecommendPipeline, asks: Sequence[tuple[RankQuery, "EncodeReply | None"]]
                ) -> list["RankedList | BaseException"]:
    """A batch's work, in a ranking thread: steps 1-2 for all its calls at once, then each call's
    `encode` of its recommendations (a reply's bytes: server.reply_bytes), so that the event loop,
    which resumes every caller, does not build them. An error fails only its own call."""
    out: list[RankedList | BaseException] = []
    for (_query, encode), prepared in zip(asks, pipeline.rank_many([q for q, _ in asks])):
        pause()          # a preemption point per call (core.cpu_yield)
        if isinstance(prepared, BaseException):
            out.append(prepared)
            continue
        try:
            encoded = encode(prepared.recommendations) if encode is not None else None
        except Exception as exc:  # noqa: BLE001 - this call's failure, not its batch's
            out.append(exc)
            continue
        out.append(RankedList(list(prepared.recommendations), prepared.excluded_no_price, encoded))
    return out


class RecService:
    def __init__(self, catalog: "Catalog", ranker: "Ranker", explainer: "Explainer", config: "ServerConfig",
                 thread_init: Callable[[], None] | None = None):
        self.catalog, self.explainer, self.config = catalog, explainer, config
        self.justifications = JustificationCache(config.justification_cache_size) \
            if config.justification_cache_size else None
        self.llm_enabled = config.llm != "off"
        # thread_init runs in each worker: per-thread runtime settings (OpenMP's thread count is per thread)
        self._pool = ThreadPoolExecutor(config.ranker_threads, thread_name_prefix="explainrec-rank",
                                        initializer=thread_init)
        self.ranker = ranker
        self.model_watcher = None   # server.model_swap.ModelWatcher when hot swap is on (server.setup)

    # -- the serving model (hot swap) ----------------------------------------------------------
    @property
    def ranker(self) -> "Ranker":
        return self._serving[0]

    @ranker.setter
    def ranker(self, ranker: "Ranker") -> None:
        """Swaps the model: one assignment of a (ranker, pipeline, batcher) triple, so a call sees one or
        the other. Concurrent Recommend calls share one user-tower pass and one index search (steps
        1-2) through the model's batcher. Justifications written with the old model's evidence go."""
        pipeline = RecommendPipeline(self.catalog, ranker, self.explainer, self.justifications)
        batcher = DynamicBatcher(functools.partial(_rank_batch, pipeline), self._pool, BatcherConfig(
            self.config.batch_max_size, self.config.batch_max_wait_ms / 1000.0, self.config.batches_in_flight(),
            self.config.batch_resume_chunk),
            on_batch=metrics.BATCH_SIZE.observe)
        if getattr(self, "_serving", None) is not None and self.justifications is not None:
            self.justifications.clear()
        self._serving = (ranker, pipeline, batcher)

    @property
    def pipeline(self) -> RecommendPipeline:
        return self._serving[1]

    def _serving_pipeline(self) -> RecommendPipeline:
        """The pipeline of the model serving now, taken once per call: a call that started before a
        swap finishes on the old model. Its version is recorded for the reply's model_version."""
        return self._serving_now()[1]

    def _serving_now(self) -> tuple["Ranker", RecommendPipeline, DynamicBatcher]:
        serving = self._serving
        MODEL_VERSION.set(getattr(serving[0], "version", ""))
        return serving

    async def _run(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # -- justifications ------------------------------------------------------------------
    def llm_budget(self, time_remaining: float | None) -> float | None:
        """Seconds the LLM may take: the caller's remaining time less a margin, or the default.
        None means "use templates" (LLM off, or too little time left)."""
        if not self.llm_enabled:
            return None
        if time_remaining is None:
            return self.config.explain_deadline_s
        budget = min(time_remaining - self.config.deadline_margin_s, self.config.explain_deadline_s)
        return budget if budget >= self.config.min_llm_budget_s else None

    @staticmethod
    def _deadline_at(time_remaining: float | None) -> float | None:
        """The caller's deadline as a monotonic instant, so that time spent ranking counts against it."""
        return None if time_remaining is None else time.monotonic() + time_remaining

    def _budget_at(self, deadline_at: float | None) -> float | None:
        return self.llm_budget(None if deadline_at is None else deadline_at - time.monotonic())

    def _fallback_reason(self) -> str:
        return FALLBACK_DISABLED if not self.llm_enabled else FALLBACK_DEADLINE

    async def _justify(self, pipeline: RecommendPipeline, prepared: Prepared, deadline_at: float | None
                       ) -> list[Recommendation]:
        budget = self._budget_at(deadline_at)
        recs, traces = await pipeline.justify(prepared, budget is not None, budget, self._fallback_reason())
        if traces:
            metrics.record_llm_usage(sum(t.prompt_tokens for t in traces), sum(t.completion_tokens for t in traces))
        metrics.record_justifications([r.justification for r in recs])
        return recs

    # -- the use cases ---------------------------------------------------------------------
    async def recommend(self, query: RankQuery, explain: bool, time_remaining: float | None = None
                        ) -> list[Recommendation]:
        return (await self.recommend_counted(query, explain, time_remaining)).recommendations

    async def recommend_counted(self, query: RankQuery, explain: bool, time_remaining: float | None = None,
                                encode: EncodeReply | None = None) -> RankedList:
        """`recommend`, with what the filters left out (the reply's excluded_no_price). Without
        `explain`, `encode` (if given) runs on the recommendations in the ranking thread and its
        result comes back as `encoded` (the servicer's reply bytes)."""
        deadline_at = self._deadline_at(time_remaining)
        _ranker, pipeline, batcher = self._serving_now()
        # steps 1-2, batched with concurrent calls
        ranked = await batcher.submit((query, None if explain else encode), deadline_at)
        if not explain:
            return ranked
        grounded = await self._run(pipeline.ground, query, ranked.recommendations)
        recs = await self._justify(pipeline, grounded, deadline_at)
        return RankedList(recs, ranked.excluded_no_price)

    async def explain(self, query: RankQuery, item_ids: Sequence[str], time_remaining: float | None = None
                      ) -> list[Recommendation]:
        deadline_at = self._deadline_at(time_remaining)
        pipeline = self._serving_pipeline()
        prepared = await self._run(pipeline.prepare, query, item_ids=item_ids)
        return await self._justify(pipeline, prepared, deadline_at)

    async def recommend_stream(self, query: RankQuery, time_remaining: float | None = None
                               ) -> AsyncIterator[RankedList | StreamEvent]:
        """Yields a RankedList, then the pipeline's StreamEvents (chunks, then one final per item)."""
        deadline_at = self._deadline_at(time_remaining)
        pipeline = self._serving_pipeline()
        prepared = await self._run(pipeline.prepare, query)
        yield RankedList(list(prepared.recommendations), prepared.excluded_no_price)
        if not prepared.recommendations:
            return
        budget = self._budget_at(deadline_at)
        async for event in pipeline.justify_stream(prepared, budget is not None, budget,
                                                        self._fallback_reason()):
            if event.final is not None:
                metrics.record_justifications([event.final])
            elif event.delta:
                metrics.record_stream_chunk()
            yield event

    # -- the support desk's reads -------------------------------------------------------------------
    def _history(self, user_id: str, limit: int) -> tuple[list[tuple[Event, Item]], int]:
        events, total = self.catalog.recent_events(user_id, limit)
        ids = list(dict.fromkeys(e.item_id for e in events if self.catalog.has_item(e.item_id)))
        items = {i.id: i for i in self.catalog.get_items(ids, field="history")}
        return [(e, items[e.item_id]) for e in events if e.item_id in items], total

    async def history(self, user_id: str, limit: int) -> tuple[list[tuple[Event, Item]], int]:
        """The shopper's latest events with their items, newest first (items deleted since are skipped)."""
        return await self._run(self._history, user_id, limit)

    async def get_items(self, item_ids: Sequence[str]) -> list[Item]:
        """Catalog records in the order asked; an unknown id is NOT_FOUND naming item_ids."""
        return await self._run(self.catalog.get_items, item_ids, "item_ids")

    # -- writing ---------------------------------------------------------------------------------
    def _record_events(self, events: list[Event], idempotency_key: str = "", fingerprint: str = "") -> int:
        for i, e in enumerate(events):
            if not self.catalog.has_item(e.item_id):
                raise UnknownItem(e.item_id, field=f"events[{i}].item_id")
        n = self.catalog.add_events(events, idempotency_key=idempotency_key, fingerprint=fingerprint)
        self.explainer.add_events(events)       # new purchases: "other shoppers bought both" counts them now
        if self.justifications is not None:      # their state changed: old entries can no longer be asked for
            for user in {e.user_id for e in events}:
                self.justifications.forget_user(user)
        return n

    async def record_events(self, events: list[Event], idempotency_key: str = "", fingerprint: str = "") -> int:
        """With an idempotency key, a retry of the same call records nothing more and gets the same count."""
        return await self._run(self._record_events, events, idempotency_key, fingerprint)

    def _submit_feedback(self, fb: Feedback, idempotency_key: str = "", fingerprint: str = "") -> int:
        if not self.catalog.has_item(fb.item_id) and fb.item_id not in self.catalog.deleted_item_ids():
            raise UnknownItem(fb.item_id, field="item_id")
        feedback_id = self.catalog.add_feedback(fb, idempotency_key=idempotency_key, fingerprint=fingerprint)
        prefs = self.explainer.link_preferences
        if fb.helpful is not None and prefs is not None:
            # a rating of a justification counts for the link kinds it stated (explainer.link_feedback);
            # a retried call (same idempotency key, same id) counts once; other processes count it
            # from the store's notice (server.replicas.follow_feedback)
            prefs.count(feedback_id, fb.helpful, lambda: link_kinds_for(self.pipeline, fb.user_id, fb.item_id))
        return feedback_id

    async def submit_feedback(self, fb: Feedback, idempotency_key: str = "", fingerprint: str = "") -> int:
        """With an idempotency key, a retry of the same call stores nothing more and gets the same id."""
        return await self._run(self._submit_feedback, fb, idempotency_key, fingerprint)

    def _upsert(self, items: list[Item]) -> int:
        n = self.catalog.upsert_items(items)   # the one catalog write; the ranker owns only its index
        self.ranker.add_items(items)           # encoded and searchable before the call returns
        self.explainer.add_items(items)        # their categories, brands and attributes, incrementally
        self._forget_items([i.id for i in items])
        return n

    def _forget_items(self, item_ids: Sequence[str]) -> None:
        if self.justifications is not None:
            self.justifications.forget_items(item_ids)

    async def upsert_items(self, items: list[Item]) -> int:
        return await self._run(self._upsert, items)

    def _delete(self, item_ids: Sequence[str]) -> int:
        item_ids = list(dict.fromkeys(item_ids))   # an id given twice is one item
        n = self.catalog.delete_items(item_ids)    # all or nothing: UnknownItem("item_ids") changes nothing
        self.ranker.remove_items(item_ids)
        # the explainer's tables keep deleted items on purpose (old history still names them)
        self._forget_items(item_ids)
        return n

    async def delete_items(self, item_ids: Sequence[str]) -> int:
        return await self._run(self._delete, item_ids)

    async def aclose(self) -> None:
        """Closes the LLM client; the caller stops the local vLLM and closes the store after."""
        try:
            await self.explainer.aclose()
        finally:
            self._pool.shutdown(wait=True)
