"""One user group -> output records: ranker evidence, then one Explainer call.

The same GroupWorker runs in the local engine and inside each Ray actor; `WorkerSpec` is
the picklable recipe an actor builds its own catalog, ranker and explainer from.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from explainer.batch.inputs import Group, Row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """How to build a GroupWorker in any process (the driver or a Ray actor)."""

    db_path: str
    """The SQLite catalog file."""
    ranker_dir: str = ""
    """A trained ranker directory (Ranker.load); "" = the zero-shot MiniLM ranker."""
    vllm_urls: tuple[str, ...] = ()
    """OpenAI-compatible vLLM endpoints; worker i uses vllm_urls[i % len]. Empty = template only."""
    model: str = ""
    """Served model name; "" = the explainer's default."""
    deadline_s: float | None = None
    """Per-group LLM deadline handed to Explainer.explain (None = the explainer's default)."""
    explainer_overrides: dict = field(default_factory=dict)
    """Extra ExplainerConfig fields (e.g. {"n_samples": 1})."""

    def __post_init__(self):
        if not self.db_path:
            raise ValueError("db_path must be set")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0 (got {self.deadline_s})")

    @property
    def use_llm(self) -> bool:
        return bool(self.vllm_urls)


def record(row: Row, item_id: str, j) -> dict:
    """The output contract: one JSON object per key."""
    return {
        "key": row.key, "user_id": row.user_id, "item_id": item_id, "rank": row.rank or None,
        "text": j.text, "source": j.source, "evidence_ids": list(j.evidence_ids),
        "facts": list(j.facts), "template": j.template, "model": j.model,
        "fallback_reason": j.fallback_reason,
    }


class GroupWorker:
    """Justifies the rows of one user in one Explainer call (they share the prompt prefix)."""

    def __init__(self, catalog, ranker, explainer, use_llm: bool = True, deadline_s: float | None = None):
        self.catalog = catalog
        self.ranker = ranker
        self.explainer = explainer
        self.use_llm = use_llm
        self.deadline_s = deadline_s

    def _history(self, query) -> list:
        from store.history import history_items

        # items deleted since are skipped; each carries the user's event kinds ("you rated the X")
        return history_items(self.catalog, self.ranker.resolve_history(query), query.user_id)

    def prepare(self, group: Group):
        """Sync part (SQLite + ranker): history items and (row, item, candidate) triples.

        Returns (history, triples, rejects) where rejects are (row, reason).
        """
        from ranker.types import RankQuery

        rejects: list[tuple[Row, str]] = []
        if group.topk:
            query = RankQuery(user_id=group.user_id, k=group.topk)
            cands = self.ranker.recommend(query)
            picked = []
            for row in group.rows:
                if row.rank <= len(cands):
                    picked.append((row, cands[row.rank - 1]))
                else:
                    rejects.append((row, f"ranker returned only {len(cands)} items for user {group.user_id!r}"))
        else:
            ids = [r.item_id for r in group.rows]
            query = RankQuery(user_id=group.user_id, k=len(ids), exclude_history=False)
            cands = {c.item_id: c for c in self.ranker.score_items(query, ids)}
            picked = [(r, cands[r.item_id]) for r in group.rows if r.item_id in cands]
            rejects += [(r, "ranker returned no score") for r in group.rows if r.item_id not in cands]
        items = self.catalog.get_items([c.item_id for _, c in picked]) if picked else []
        triples = [(row, item, cand) for (row, cand), item in zip(picked, items)]
        return self._history(query), triples, rejects

    async def run(self, group: Group) -> tuple[list[dict], list[tuple[Row, str]]]:
        """Records for the group's rows, and (row, reason) for rows that cannot be justified.

        Domain errors (unknown user/item, invalid query) reject the group's rows; anything
        else propagates and stops the job (a rerun resumes).
        """
        from store.errors import StoreError

        try:
            history, triples, rejects = await asyncio.to_thread(self.prepare, group)
        except StoreError as exc:
            return [], [(r, str(exc)) for r in group.rows]
        if not triples:
            return [], rejects
        pairs = [(item, cand) for _, item, cand in triples]
        if self.use_llm:
            justs = await self.explainer.explain(history, pairs, deadline_s=self.deadline_s)
        else:
            justs = self.explainer.explain_template(history, pairs)
        return [record(row, item.id, j) for (row, item, _), j in zip(triples, justs)], rejects


def build_worker(spec: WorkerSpec, index: int = 0):
    """Build (worker, aclose) from a spec: each process owns its own catalog, ranker, explainer."""
    import dataclasses

    from explainer.config import ExplainerConfig
    from explainer.service import Explainer
    from ranker.service import Ranker
    from store.catalog import Catalog

    catalog = Catalog(spec.db_path)
    if spec.ranker_dir:
        ranker = Ranker.load(Path(spec.ranker_dir), catalog)
    else:
        ranker = Ranker.zero_shot(catalog)
    kwargs = dict(spec.explainer_overrides)
    if spec.vllm_urls:
        kwargs["vllm_url"] = spec.vllm_urls[index % len(spec.vllm_urls)]
    if spec.model:
        kwargs["model"] = spec.model
    names = {f.name for f in dataclasses.fields(ExplainerConfig)}
    unknown = set(kwargs) - names
    if unknown:
        raise ValueError(f"explainer config has no field(s) {sorted(unknown)}")
    explainer = Explainer(ExplainerConfig(**kwargs), catalog)
    worker = GroupWorker(catalog, ranker, explainer, use_llm=spec.use_llm, deadline_s=spec.deadline_s)

    async def aclose():
        await explainer.aclose()
        catalog.close()

    return worker, aclose
