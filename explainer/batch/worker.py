"""One user group -> output records: ranker evidence, then one Explainer call.

The same GroupWorker runs in the local engine and inside each Ray actor; `WorkerSpec` is
the picklable recipe an actor builds its own catalog, ranker and explainer from.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DomainError
from explainer.batch.inputs import Group, Row
from explainer.config import ExplainerConfig
from explainer.pipeline import Prepared, RecommendPipeline
from explainer.service import Explainer
from ranker.service import Ranker
from ranker.types import RankQuery
from store.catalog import Catalog

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
    """Justifies the rows of one user in one pipeline call (they share the prompt prefix)."""

    def __init__(self, catalog: "Catalog", ranker: "Ranker", explainer: "Explainer", use_llm: bool = True,
                 deadline_s: float | None = None):
        self.catalog = catalog
        self.ranker = ranker
        self.explainer = explainer
        self.pipeline = RecommendPipeline(catalog, ranker, explainer)
        self.use_llm = use_llm
        self.deadline_s = deadline_s

    def prepare(self, group: Group) -> tuple[Prepared, list[Row], list[tuple[Row, str]]]:
        """Sync part (SQLite + ranker): pipeline steps 1-4 for the group's rows.

        Returns (prepared, rows, rejects): rows[i] is the input row of prepared.recommendations[i];
        rejects are (row, reason).
        """
        rejects: list[tuple[Row, str]] = []
        if group.topk:
            query = RankQuery(user_id=group.user_id, k=group.topk)
            ranked = self.pipeline.load_items(self.pipeline.rank(query))
            rows, recs = [], []
            for row in group.rows:
                if row.rank <= len(ranked):
                    rows.append(row)
                    recs.append(ranked[row.rank - 1])
                else:
                    rejects.append((row, f"ranker returned only {len(ranked)} items for user {group.user_id!r}"))
            return self.pipeline.ground(query, recs), rows, rejects
        query = RankQuery(user_id=group.user_id, k=len(group.rows), exclude_history=False)
        return self.pipeline.prepare(query, item_ids=[r.item_id for r in group.rows]), list(group.rows), rejects

    async def run(self, group: Group) -> tuple[list[dict], list[tuple[Row, str]]]:
        """Records for the group's rows, and (row, reason) for rows that cannot be justified.

        Domain errors (unknown user/item, invalid query) reject the group's rows; anything
        else propagates and stops the job (a rerun resumes).
        """
        try:
            prepared, rows, rejects = await asyncio.to_thread(self.prepare, group)
        except DomainError as exc:
            return [], [(r, str(exc)) for r in group.rows]
        if not rows:
            return [], rejects
        recs, _ = await self.pipeline.justify(prepared, self.use_llm, self.deadline_s)
        return [record(row, r.item.id, r.justification) for row, r in zip(rows, recs)], rejects


def build_worker(spec: WorkerSpec, index: int = 0):
    """Build (worker, aclose) from a spec: each process owns its own catalog, ranker, explainer."""
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
    explainer = Explainer.from_catalog(ExplainerConfig(**kwargs), catalog)
    worker = GroupWorker(catalog, ranker, explainer, use_llm=spec.use_llm, deadline_s=spec.deadline_s)

    async def aclose():
        await explainer.aclose()
        catalog.close()

    return worker, aclose
