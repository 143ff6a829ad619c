"""The one recommend-and-justify pipeline: rank -> load items -> load history -> facts -> justify.

The server (`server/app.py`), the batch job (`explainer/batch/worker.py`), the evaluation
(`explainer/evaluate.py`) and the service bench (`bench/bench_server.py`) all call it, so the
same (user, item) pair gets the same history, the same facts and therefore the same
justification online and in batch. The whole history is used (the ranker's evidence is drawn
from all of it; a shorter window here would let online and batch disagree).

API (steps 1-4 block on SQLite and the ranker: run them in a worker thread; step 5 is async)::

    pipe = RecommendPipeline(catalog, ranker, explainer)
    prepared = pipe.prepare(query)                       # steps 1-4 for the top-k of a query
    prepared = pipe.prepare(query, item_ids=ids)         # steps 1-4 for given items ("why this?")
    prepared = pipe.prepare(query, justify=False)        # steps 1-2 only (no history, no facts)
    prepared = pipe.ground(query, recs)                  # steps 3-4 for recommendations you picked
    recs, traces = await pipe.justify(prepared, use_llm=True, deadline_s=20.0)    # step 5
    async for event in pipe.justify_stream(prepared, use_llm=True, deadline_s=20.0): ...   # step 5, streamed

    # the steps one by one
    candidates = pipe.rank(query) / pipe.score(query, ids)   # 1. ranker
    recs = pipe.load_items(candidates)                       # 2. catalog rows for the candidates
    history = pipe.load_history(query)                       # 3. the whole history, oldest first
    facts = pipe.facts(history, recs)                        # 4. what the text may say
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Sequence

from explainer.price_compare import price_comparison, reference_name
from explainer.search_match import clean_query, matches, search_line
from explainer.types import FALLBACK_DISABLED, Justification, StreamEvent
from ranker.types import Candidate, RankQuery
from store.catalog import Item
from core.cpu_yield import pause
from core.errors import UnknownItem
from store.history import HistoryItem, history_items

if TYPE_CHECKING:
    from explainer.facts import ItemFacts
    from explainer.justification_cache import JustificationCache
    from explainer.service import Explainer, Trace
    from ranker.service import Ranker
    from store.catalog import Catalog


@dataclass(frozen=True)
class Recommendation:
    """One ranked or scored item, with its justification once step 5 has run."""

    item: Item
    candidate: Candidate
    justification: Justification | None = None


@dataclass(frozen=True)
class Prepared:
    """The output of steps 1-4 for one query: what step 5 needs."""

    query: RankQuery
    recommendations: tuple[Recommendation, ...]
    history: tuple[Item, ...] = ()             # the whole history, oldest first (empty when not justifying)
    facts: tuple["ItemFacts", ...] = ()        # one per recommendation, same order (empty when not justifying)
    excluded_no_price: int = 0                 # items a price filter left out for having no price


class RecommendPipeline:
    def __init__(self, catalog: "Catalog", ranker: "Ranker", explainer: "Explainer",
                 cache: "JustificationCache | None" = None):
        self.catalog, self.ranker, self.explainer = catalog, ranker, explainer
        self.cache = cache      # step 5 answers from it when the same state was justified before

    # -- 1. rank -------------------------------------------------------------------------
    def rank(self, query: RankQuery) -> list[Candidate]:
        """The top-k candidates of the query, best first, with their evidence."""
        return self.ranker.recommend(query)

    def score(self, query: RankQuery, item_ids: Sequence[str]) -> list[Candidate]:
        """Scores and evidence for given items, in the order given. Unknown ids: UnknownItem("item_ids")."""
        return self.ranker.score_items(query, item_ids)

    # -- 2. load items -------------------------------------------------------------------
    def load_items(self, candidates: Sequence[Candidate], strict: bool = False) -> list[Recommendation]:
        """Catalog rows for the candidates, in order. strict=False skips ids deleted since ranking
        (a ranking can race a DeleteItems); strict=True raises UnknownItem("item_ids").
        The rows come from the ranker's in-memory item table (kept in step with every upsert and
        delete), not from the store."""
        ids = [c.item_id for c in candidates]
        by_id = self.ranker.indexed_items(ids)
        if strict:
            for i in ids:
                if i not in by_id:
                    raise UnknownItem(i, field="item_ids")
        return [Recommendation(by_id[c.item_id], c) for c in candidates if c.item_id in by_id]

    # -- 3. load history -----------------------------------------------------------------
    def load_history(self, query: RankQuery) -> list[HistoryItem]:
        """The whole history the ranker used (stored, then inline), oldest first, deleted items skipped,
        each with what the shopper did with it (event kinds: "you rated the X")."""
        return history_items(self.catalog, self.ranker.resolve_history(query), query.user_id)

    # -- 4. facts ------------------------------------------------------------------------
    def facts(self, history: Sequence[Item], recs: Sequence[Recommendation]) -> list["ItemFacts"]:
        return self.explainer.facts(history, [(r.item, r.candidate) for r in recs])

    # -- steps 1-2 for many queries at once (the server's batcher) -------------------------
    def rank_many(self, queries: Sequence[RankQuery]) -> list["Prepared | Exception"]:
        """Steps 1-2 for each query, the ranker working on all of them at once (one user-tower pass,
        one index search); each query's Prepared (no history, no facts) or its own error, in order."""
        out: list = []
        for q, ranking in zip(queries, self.ranker.rank_many(queries)):
            pause()      # a preemption point per call (core.cpu_yield)
            if isinstance(ranking, BaseException):
                out.append(ranking)
            else:
                out.append(Prepared(q, tuple(self.load_items(ranking.candidates)),
                                    excluded_no_price=ranking.excluded_no_price))
        return out

    # -- steps 1-4 -----------------------------------------------------------------------
    def prepare(self, query: RankQuery, item_ids: Sequence[str] | None = None, justify: bool = True) -> Prepared:
        """Steps 1-4. With item_ids, scores those items (all must exist) instead of ranking."""
        excluded = 0
        if item_ids is None:
            ranking = self.ranker.rank(query)
            recs, excluded = self.load_items(ranking.candidates), ranking.excluded_no_price
        else:
            recs = self.load_items(self.score(query, item_ids), strict=True)
        prepared = self.ground(query, recs) if justify else Prepared(query, tuple(recs))
        return dataclasses.replace(prepared, excluded_no_price=excluded) if excluded else prepared

    def ground(self, query: RankQuery, recs: Sequence[Recommendation],
               history: Sequence[Item] | None = None) -> Prepared:
        """Steps 3-4 for recommendations already ranked or scored for this query (`history`: step 3's
        output when the caller loaded it itself, e.g. the evaluation's history before the test split)."""
        history = self.load_history(query) if history is None else list(history)
        facts = self.facts(history, recs)
        if query.similar_to:
            facts = self._with_price_comparison(query.similar_to, recs, facts)
        search = clean_query(query.text) if query.text else ""
        if search:
            facts = self._with_search(search, recs, facts)
        return Prepared(query, tuple(recs), tuple(history), tuple(facts))

    def _with_price_comparison(self, reference_id: str, recs: Sequence[Recommendation],
                               facts: Sequence["ItemFacts"]) -> list["ItemFacts"]:
        """"Like X": each item's facts gain its price against X's, when both prices are known, so the
        text may say "$12.00 less than the X" and the verifier's price rule allows exactly that."""
        ref = self._items([reference_id], "similar_to_item_id", strict=False)
        if not ref:
            return list(facts)
        out = []
        for r, f in zip(recs, facts):
            line = price_comparison(r.item, ref[0], f.item_name, reference_name(ref[0]))
            out.append(dataclasses.replace(f, lines=f.lines + (line,)) if line else f)
        return out

    @staticmethod
    def _with_search(search: str, recs: Sequence[Recommendation], facts: Sequence["ItemFacts"]) -> list["ItemFacts"]:
        """A text query: each item that matches it (explainer/search_match.py: the ranker's query_match
        and the query's words in the title) gains the fact and `search`, so the reply opens with "It
        matches your search for ..." and the verifier allows that claim. Without a history link the
        search replaces the weak reason, which no longer names (or cites) a history item."""
        out = []
        for r, f in zip(recs, facts):
            if not matches(search, r.item.title, r.candidate.query_match):
                out.append(f)
                continue
            cited = f.evidence_ids if f.anchor_id else ()
            out.append(dataclasses.replace(f, lines=f.lines + (search_line(f.item_name, search),),
                                           search=search, evidence_ids=cited))
        return out

    # -- 5. justify ----------------------------------------------------------------------
    async def justify(self, prepared: Prepared, use_llm: bool = True, deadline_s: float | None = None,
                      fallback_reason: str = FALLBACK_DISABLED) -> tuple[list[Recommendation], list["Trace"]]:
        """The recommendations with their justifications, and the LLM traces (one per item; empty
        for templates).

        use_llm False: the deterministic templates answer, marked with `fallback_reason`.
        deadline_s: the LLM's time for the whole call (None: the explainer's configured default)."""
        if not prepared.recommendations:
            return [], []
        traces: list["Trace"]
        if not use_llm:
            justs, traces = self.explainer.templates(prepared.facts, fallback_reason), []
        elif self.cache is None:
            justs, traces = await self.explainer.justify_traced(prepared.history, prepared.facts, deadline_s)
        else:
            justs, traces = await self._justify_cached(prepared, deadline_s)
        return [dataclasses.replace(r, justification=j) for r, j in zip(prepared.recommendations, justs)], traces

    def _cache_keys(self, prepared: Prepared) -> list[tuple]:
        assert self.cache is not None
        ex, cfg = self.explainer, self.explainer.config
        model = ex.client.model if ex.client is not None else ""
        sampling = (cfg.n_samples, cfg.max_tokens, cfg.temperature, cfg.top_p)
        state = self.cache.history_state(prepared.history)
        return [self.cache.key(prepared.query.user_id, state, f, ex.prompt.id, model, sampling) for f in prepared.facts]

    async def _justify_cached(self, prepared: Prepared, deadline_s: float | None
                              ) -> tuple[list[Justification], list["Trace"]]:
        """Cached items answer at once; only the others go to the LLM (traces cover those)."""
        assert self.cache is not None
        keys = self._cache_keys(prepared)
        cached: list[Justification | None] = [self.cache.get(k) for k in keys]
        todo = [n for n, j in enumerate(cached) if j is None]
        traces: list["Trace"] = []
        if todo:
            fresh, traces = await self.explainer.justify_traced(prepared.history, [prepared.facts[n] for n in todo],
                                                                deadline_s)
            for n, j in zip(todo, fresh):
                cached[n] = j
                self.cache.put(keys[n], j)
        justs = [j for j in cached if j is not None]   # every slot is filled by now
        return justs, traces

    async def justify_stream(self, prepared: Prepared, use_llm: bool = True, deadline_s: float | None = None,
                             fallback_reason: str = FALLBACK_DISABLED) -> AsyncIterator[StreamEvent]:
        """Verified text chunks, then one final justification per item (see Explainer.justify_stream):
        an item's chunks, concatenated, equal its final text."""
        if not use_llm:
            for event in self.explainer.template_stream(prepared.facts, fallback_reason):
                yield event
            return
        async for event in self.explainer.justify_stream(prepared.history, prepared.facts, deadline_s):
            yield event

    # -- helpers ---------------------------------------------------------------------------
    def _items(self, ids: Sequence[str], field: str, strict: bool) -> list[Item]:
        try:
            return self.catalog.get_items(ids, field=field)
        except UnknownItem:
            if strict:
                raise
            return self.catalog.get_items([i for i in ids if self.catalog.has_item(i)], field=field)
