"""The ranker the server calls: user vector -> FAISS candidates -> scores with evidence.

Every call reads the user's history from the catalog, so a new event changes the next
recommendation at once. Items added after training are encoded by the frozen text encoder and
the model's projection (zero residual) and are searchable as soon as `add_items` returns.
Thread-safe: one lock guards the item table and the index; text encoding runs outside it.

Text queries go through the item tower (MiniLM + projection) and then into the user tower as the
most recent history step, so "history + text" and "text only" share one path.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ranker import exact_search
from ranker.evidence import common_root, evidence_for_candidates
from ranker.cache import LRUCache
from ranker.encoder import Encoder, TextEncoder   # light: TextEncoder loads torch when one is made
from ranker.index import IndexConfig, VectorIndex
from ranker.scorers import Scorer, ZeroShotScorer, history_scores, load_scorer
from ranker.types import Candidate, Ranking, RankQuery
from store.catalog import Catalog, Item
from core.cpu_yield import pause
from core.errors import InvalidInput, UnknownItem, UnknownUser
from core.validation import Limits, validate_explain, validate_query

log = logging.getLogger(__name__)


@dataclass
class _UserSide:
    """A query's user side before (vector None) and after the user tower."""

    vector: np.ndarray | None
    history: list[Item]
    units: np.ndarray              # unit item vectors of the history (evidence)
    qvec: np.ndarray | None        # unit item-space vector of the query text
    steps: np.ndarray              # what the user tower reads
    key: tuple | None              # user-vector cache key (None: not cacheable)


@dataclass(frozen=True)
class RankerConfig:
    limits: Limits = field(default_factory=Limits)
    """The request limits (k, ids, text...): the same `core.validation.Limits` the server checks with."""
    evidence_items: int = 3
    """History items cited per candidate."""
    similar_weight: float = 0.6
    """Share of the reference item in a "more like this" query that also has a user side (history or
    text); the rest is the user vector. Both are unit length before blending."""
    text_weight: float = 0.75
    """Share of the query text itself (as an item vector) in a query with text; the rest is the user
    vector, whose tower reads the text as its newest step and so ranks what is bought after such an
    item ("digital ph meter" got calibration solutions). Both are unit length before blending.
    `bench/bench_text_query.py` on Scientific: the named item in the top 10 for .32 of item names as
    queries at 0, .75 at .75, .81 at 1; .75 keeps a quarter for the shopper's history."""
    exact_filter_max: int = 50_000
    """A filtered query scans its eligible items exactly when there are at most this many; above, it
    over-fetches from the index and filters (a loose filter on a large catalog)."""
    index: IndexConfig = field(default_factory=IndexConfig)
    """Exact vs approximate search and its parameters."""
    user_cache_size: int = 20_000
    """User vectors kept (LRU), keyed by the history they were computed from (~2.5 KB each at 640-d)."""
    batch_exclude_max: int = 1000
    """A batched search over-fetches k + the query's exclusions; a query excluding more searches alone."""

    def __post_init__(self) -> None:
        if self.evidence_items < 0:
            raise ValueError(f"evidence_items must be >= 0 (got {self.evidence_items})")
        if not 0.0 <= self.similar_weight <= 1.0:
            raise ValueError(f"similar_weight must be in [0, 1] (got {self.similar_weight})")
        if not 0.0 <= self.text_weight <= 1.0:
            raise ValueError(f"text_weight must be in [0, 1] (got {self.text_weight})")


class Ranker:
    """Use `Ranker.load(model_dir, catalog)` or `Ranker.zero_shot(catalog)`."""

    def __init__(self, catalog: Catalog, scorer: Scorer, encoder: Encoder, config: RankerConfig | None = None):
        self.catalog = catalog
        self.scorer = scorer
        self.encoder = encoder
        self.config = config or RankerConfig()
        self._lock = threading.RLock()
        self._ids: list[str] = []              # row -> item id (rows are FAISS ids; never reused)
        self._row: dict[str, int] = {}         # item id -> row
        self._items: dict[str, Item] = {}      # every item with a row, deleted ones too (history evidence)
        self._vecs = np.zeros((0, scorer.dim), dtype=np.float32)    # item tower output: what the index holds
        self._unit = self._vecs                                      # the same, unit length (evidence, query match)
        self._hvecs = self._vecs                                     # what the user tower reads (untied models)
        self._tied = True
        self._active = np.zeros(0, dtype=bool)  # row is in the index
        self._exact: exact_search.ExactItems | None = None   # what exact search reads (flat index only)
        self._prices = np.zeros(0, dtype=np.float64)   # row -> price, NaN when unknown (price filters)
        self._brand_codes = np.zeros(0, dtype=np.int32)  # row -> code of the lower-cased brand (brand filters)
        self._brand_code: dict[str, int] = {}
        self._category_rows: dict[str, np.ndarray] = {}
        self.index: VectorIndex | None = None
        self.root_levels = 0
        self.version = "zero-shot" if isinstance(scorer, ZeroShotScorer) else "unversioned"
        """The model version serving this ranker (its directory name); replies carry it as model_version."""
        self.user_vectors = LRUCache(self.config.user_cache_size)   # (model, history rows) -> user vector

    # -- construction -----------------------------------------------------------------
    @classmethod
    def zero_shot(cls, catalog: Catalog, device: str | None = None, config: RankerConfig | None = None,
                  encoder: Encoder | None = None) -> "Ranker":
        """Untuned MiniLM: no training needed (tests, first start)."""
        ranker = cls(catalog, ZeroShotScorer(), encoder or TextEncoder(device), config)
        ranker._build_from_catalog()
        return ranker

    @classmethod
    def load(cls, model_dir: Path, catalog: Catalog, device: str | None = None,
             config: RankerConfig | None = None, encoder: Encoder | None = None) -> "Ranker":
        """The trained model and its saved index, brought in step with the catalog's current items."""
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(f"no trained ranker in {model_dir} (run `explainrec train`)")
        scorer = load_scorer(model_dir, device)
        ranker = cls(catalog, scorer, encoder or TextEncoder(device or scorer.device), config)
        ranker.version = model_dir.name
        ranker._build_from_saved(model_dir)
        return ranker

    def _encode_items(self, items: Sequence[Item]) -> tuple[np.ndarray, np.ndarray | None]:
        """(item-tower vectors, user-tower input vectors or None when the model ties them)."""
        if not items:
            empty = np.zeros((0, self.scorer.dim), dtype=np.float32)
            return empty, (None if self._tied else empty)
        text = self.encoder.encode([i.text() for i in items])
        ids = [i.id for i in items]
        return self.scorer.item_vectors(ids, text), self.scorer.history_vectors(ids, text)

    def _append_rows(self, items: Sequence[Item], vecs: np.ndarray, hvecs: np.ndarray | None,
                     active: np.ndarray) -> np.ndarray:
        """Adds rows for new items (caller holds the lock); returns their row numbers."""
        start = len(self._ids)
        rows = np.arange(start, start + len(items), dtype=np.int64)
        for r, item in zip(rows, items):
            self._ids.append(item.id)
            self._row[item.id] = int(r)
            self._items[item.id] = item
        if start == 0:
            self._tied = hvecs is None
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        self._vecs = np.concatenate([self._vecs, vecs]) if start else vecs
        unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self._unit = np.concatenate([self._unit, unit]) if start else unit
        if self._tied:
            self._hvecs = self._vecs
        else:
            h = (vecs if hvecs is None else hvecs).astype(np.float32)
            self._hvecs = np.concatenate([self._hvecs, h]) if start else h
        self._active = np.concatenate([self._active, active])
        prices = np.array([np.nan if i.price is None else float(i.price) for i in items], dtype=np.float64)
        codes = np.array([self._brand_code.setdefault(i.brand.strip().lower(), len(self._brand_code))
                          for i in items], dtype=np.int32)
        self._prices = np.concatenate([self._prices, prices]) if start else prices
        self._brand_codes = np.concatenate([self._brand_codes, codes]) if start else codes
        self._sync_exact()
        return rows

    def _sync_exact(self) -> None:
        """Brings exact search's matrix (and its bfloat16 copy) up to the rows there are, when the index
        is flat: built when the ranker loads, not on the first request; rows are only ever appended.
        Caller holds the lock."""
        if self.index is None or self.index.kind != "flat":
            self._exact = None
        elif self._exact is None:
            self._exact = exact_search.ExactItems.of(self._vecs)
        elif len(self._exact.vecs) < len(self._vecs):
            self._exact = self._exact.extended(self._vecs[len(self._exact.vecs):])

    def _build_from_catalog(self) -> None:
        items = self.catalog.all_items(include_deleted=True)
        deleted = self.catalog.deleted_item_ids()
        vecs, hvecs = self._encode_items(items)
        active = np.array([i.id not in deleted for i in items], dtype=bool)
        with self._lock:
            rows = self._append_rows(items, vecs, hvecs, active)
            self.index = VectorIndex.build(vecs[active], rows[active], self.config.index)
            self.index.attach_vectors(self._full_vectors)
            self._sync_exact()
            self.root_levels = common_root([p for i in items for p in i.categories()])
        log.info("ranker (%s): %d items, index %s", self.scorer.name, int(active.sum()), self.index.describe())

    def _build_from_saved(self, model_dir: Path) -> None:
        saved_ids: list[str] = json.loads((model_dir / "index_ids.json").read_text())
        saved_vecs = np.load(model_dir / "item_vectors.npy")
        hpath = model_dir / "history_vectors.npy"
        saved_hvecs = np.load(hpath) if hpath.exists() else None
        index = VectorIndex.load(model_dir / "index.faiss")
        catalog_items = {i.id: i for i in self.catalog.all_items(include_deleted=True)}
        deleted = self.catalog.deleted_item_ids()
        known = [catalog_items.get(i, Item(id=i, title=i)) for i in saved_ids]
        saved_set = set(saved_ids)
        new = [i for iid, i in catalog_items.items() if iid not in saved_set]
        new_vecs, new_hvecs = self._encode_items(new)
        with self._lock:
            self._append_rows(known, saved_vecs, saved_hvecs, np.array([i in catalog_items and i not in deleted for i in saved_ids], bool))
            self.index = index
            self.index.attach_vectors(self._full_vectors)
            self._sync_exact()
            gone = [r for r, i in enumerate(saved_ids) if i not in catalog_items or i in deleted]
            self.index.remove(gone)
            if new:
                active = np.array([i.id not in deleted for i in new], dtype=bool)
                rows = self._append_rows(new, new_vecs, new_hvecs, active)
                self.index.add(new_vecs[active], rows[active])
            self.root_levels = common_root([p for i in catalog_items.values() for p in i.categories()])
        log.info("ranker (model %s): %d saved items, %d new, %d removed; index %s", model_dir,
                 len(saved_ids), len(new), len(gone), self.index.describe())

    def _full_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The index's exact re-rank reads the item vectors from here (an IVF-PQ index keeps only codes)."""
        return self._vecs[rows]

    # -- catalog changes ----------------------------------------------------------------
    def add_items(self, items: Sequence[Item]) -> None:
        """Cold start: encodes the items and indexes them at once; they are searchable when it returns.

        The ranker owns its index only: the caller stores the items in the catalog (before, so that a
        ranking never returns an item the catalog does not know). An item already indexed is
        re-encoded (its text may have changed) and replaces the old vector.
        """
        items = list(items)
        if not items:
            return
        for n, item in enumerate(items):
            if not isinstance(item, Item) or not item.id or not item.title.strip():
                raise InvalidInput(f"items[{n}]", "each item needs an id and a title")
        self._index_items(items)

    def _index_items(self, items: Sequence[Item]) -> None:
        """Encodes the items and puts them in the index, replacing any row they had."""
        vecs, hvecs = self._encode_items(items)   # outside the lock: the slow part
        with self._lock:
            old = [self._row[i.id] for i in items if i.id in self._row and self._active[self._row[i.id]]]
            self.index.remove(old)
            self._active[old] = False
            rows = self._append_rows(items, vecs, hvecs, np.ones(len(items), dtype=bool))
            self.index.add(vecs, rows)
            self._category_rows.clear()

    def sync_items(self, item_ids: Sequence[str] | None = None) -> tuple[int, int]:
        """Brings the index in step with the catalog after another process changed it: these
        items (every item when None) are re-indexed if new or changed, and taken out if deleted.
        Writes nothing to the catalog. Returns (indexed, removed)."""
        states = self.catalog.item_states(item_ids)
        with self._lock:
            def indexed(iid: str) -> bool:
                return iid in self._row and bool(self._active[self._row[iid]])
            changed = [item for iid, (item, deleted) in states.items()
                       if not deleted and (not indexed(iid) or self._items[iid] != item)]
            gone = [iid for iid, (_item, deleted) in states.items() if deleted and indexed(iid)]
            if gone:
                rows = [self._row[i] for i in gone]
                self.index.remove(rows)
                self._active[rows] = False
                self._category_rows.clear()
        if changed:
            self._index_items(changed)
        return len(changed), len(gone)

    def remove_items(self, item_ids: Sequence[str]) -> None:
        """Takes the items out of the index (the caller soft-deletes them in the catalog).

        Raises UnknownItem(field="item_ids") if an id is not currently indexed (nothing is changed then).
        """
        item_ids = list(dict.fromkeys(item_ids))
        with self._lock:
            for i in item_ids:
                if i not in self._row or not self._active[self._row[i]]:
                    raise UnknownItem(i, field="item_ids")
            rows = [self._row[i] for i in item_ids]
            self.index.remove(rows)
            self._active[rows] = False
            self._category_rows.clear()

    # -- queries --------------------------------------------------------------------------
    def _validate(self, q: RankQuery) -> None:
        """The one validation of a query (`core.validation`; the server does not repeat it), with the
        proto's field names in its errors."""
        validate_query(q, self.config.limits)

    def resolve_history(self, query: RankQuery, stored_histories: dict[str, list[str]] | None = None) -> list[str]:
        """Stored history (oldest first) followed by the inline history.

        An unknown user_id is an error only when the query gives nothing else to go on.
        Inline ids must be known items (UnknownItem, field "history").
        `stored_histories`: the stored histories already read for a batch (`Catalog.histories`).
        """
        stored: list[str] = []
        if query.user_id:
            known = query.user_id in stored_histories if stored_histories is not None \
                else self.catalog.has_user(query.user_id)
            if known:
                stored = list(stored_histories[query.user_id]) if stored_histories is not None \
                    else self.catalog.history(query.user_id)
            elif not query.history and not (query.text or "").strip() and not query.similar_to:
                raise UnknownUser(query.user_id)
        with self._lock:
            for i in query.history:
                if i not in self._row:
                    raise UnknownItem(i, field="history")
        return stored + list(query.history)

    def _user_side(self, query: RankQuery, stored_histories: dict[str, list[str]] | None = None) -> "_UserSide":
        """Everything about the query's user side except the user tower's forward pass: the history
        rows, items and unit vectors, the text step, and the user vector when the cache has it."""
        history_ids = self.resolve_history(query, stored_histories)
        text = (query.text or "").strip()
        qstep = qvec = None
        if text:
            emb = self.encoder.encode([text])
            qstep = self.scorer.query_vector(emb[0])                    # enters the user tower as the newest step
            qvec = self.scorer.item_vectors([""], emb)[0]               # the text as an item, for query_match
            qvec = qvec / max(float(np.linalg.norm(qvec)), 1e-12)
        with self._lock:
            known = [i for i in history_ids if i in self._row]
            items = [self._items[i] for i in known]
            rows = tuple(self._row[i] for i in known)
            units = self._unit[list(rows)] if known else np.zeros((0, self.scorer.dim), np.float32)
            hvecs = self._hvecs        # rows are only appended: these rows keep their vectors
            scorer = self.scorer
        no_steps = np.zeros((0, scorer.dim), np.float32)
        if not rows and qstep is None:
            if query.similar_to:   # "more like this" alone: the reference item is the whole query
                return _UserSide(None, items, units, qvec, no_steps, None)
            raise InvalidInput("user_id", f"user {query.user_id!r} has no history yet: give history item ids or a text query")
        # the key is the history itself (row numbers: a re-encoded item gets a new row) and the model,
        # so a new event, an upsert of a history item or a model swap is a different key: never stale,
        # and right across replicas that share the store. Text queries are not cached.
        key = None if qstep is not None else (id(scorer), rows)
        vector = self.user_vectors.get(key) if key is not None else None
        if vector is not None:     # the tower will not run: its steps are not gathered
            return _UserSide(vector, items, units, qvec, no_steps, key)
        steps = hvecs[list(rows)] if rows else no_steps
        if qstep is not None:
            steps = np.concatenate([steps, qstep[None].astype(np.float32)])
        return _UserSide(vector, items, units, qvec, steps, key)

    def warm_user_vectors(self, limit: int, chunk: int = 256) -> int:
        """Fills the user-vector cache for the `limit` most recently active shoppers (at most the
        cache's size) before serving, as item rows are built before serving: their first Recommend
        then skips the user tower, as every later one does until their history changes. Returns how
        many vectors were computed. A shopper whose history fails is skipped (serving reports it)."""
        limit = min(int(limit), self.config.user_cache_size)
        if limit <= 0:
            return 0
        ids = self.catalog.recently_active_user_ids(limit)[::-1]     # the most recent end up newest in the LRU
        done = 0
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            stored = self.catalog.histories(part)
            sides = []
            for uid in part:
                try:
                    sides.append(self._user_side(RankQuery(user_id=uid, k=1), stored))
                except Exception:  # noqa: BLE001 - e.g. a history of deleted items only
                    continue
            todo = [side for side in sides if side.vector is None]
            self._run_user_tower(todo)
            done += len(todo)
        return done

    def _run_user_tower(self, sides: Sequence["_UserSide"]) -> None:
        """One forward pass of the user tower for every side without a vector (fills them in)."""
        todo = [s for s in sides if s is not None and s.vector is None and len(s.steps)]
        if not todo:
            return
        vecs = self.scorer.user_vectors([s.steps for s in todo])
        for s, v in zip(todo, vecs):
            s.vector = v
            if s.key is not None:
                self.user_vectors.put(s.key, v)

    def _user(self, query: RankQuery) -> tuple[np.ndarray, list[Item], np.ndarray, np.ndarray | None]:
        """(user vector, history items, their unit item vectors, unit item-space vector of the query text or None)."""
        side = self._user_side(query)
        self._run_user_tower([side])
        return side.vector, side.history, side.units, side.qvec

    def _query_vector(self, query: RankQuery) -> tuple[np.ndarray, list[Item], np.ndarray, np.ndarray | None]:
        """The vector items are scored against: the user vector, the reference item's, or a blend."""
        return self._blend(query, *self._user(query))

    def _blend(self, query: RankQuery, user, history, hvecs, qvec
               ) -> tuple[np.ndarray, list[Item], np.ndarray, np.ndarray | None]:
        wt = self.config.text_weight
        if qvec is not None and user is not None and wt > 0:
            user = (wt * qvec + (1 - wt) * user / max(float(np.linalg.norm(user)), 1e-12)).astype(np.float32)
        if not query.similar_to:
            return user, history, hvecs, qvec
        with self._lock:
            row = self._row.get(query.similar_to)
            if row is None or not self._active[row]:
                raise UnknownItem(query.similar_to, field="similar_to_item_id")
            ref = self._vecs[row].astype(np.float32)
        ref = ref / max(float(np.linalg.norm(ref)), 1e-12)
        if user is None:
            return ref, history, hvecs, qvec
        w = self.config.similar_weight
        return (w * ref + (1 - w) * user / max(float(np.linalg.norm(user)), 1e-12)).astype(np.float32), \
            history, hvecs, qvec

    def _rows_in_category(self, category: str) -> np.ndarray:
        key = category.strip().lower()
        rows = self._category_rows.get(key)
        if rows is None:
            rows = np.array([r for r, i in enumerate(self._ids)
                             if self._active[r] and key in self._items[i].category.lower()], dtype=np.int64)
            if len(self._category_rows) > 1000:
                self._category_rows.clear()
            self._category_rows[key] = rows
        return rows

    def _candidates(self, rows: Sequence[int], scores: Sequence[float], history: list[Item], hvecs: np.ndarray,
                    qvec: np.ndarray | None) -> list[Candidate]:
        rows = [int(r) for r in rows]
        items = [self._items[self._ids[r]] for r in rows]
        vecs = self._unit[rows] if rows else np.zeros((0, self._unit.shape[1]), np.float32)
        evidence = evidence_for_candidates(items, vecs, history, hvecs, self.root_levels, self.config.evidence_items)
        return [Candidate(item_id=item.id, score=float(s), evidence=ev,
                          query_match=None if qvec is None else float(vec @ qvec))
                for item, vec, s, ev in zip(items, vecs, scores, evidence)]

    def recommend(self, query: RankQuery) -> list[Candidate]:
        """Top-k items, best first, each with the history items that pulled it up."""
        return self.rank(query).candidates

    def rank(self, query: RankQuery) -> Ranking:
        """`recommend`, plus what the filters left out (items without a price under a price filter)."""
        result = self.rank_many([query])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def rank_many(self, queries: Sequence[RankQuery]) -> list["Ranking | Exception"]:
        """`rank` for several queries at once: one user-tower forward pass for every user whose vector
        is not cached, and one index search for every query without filters. Each query's result, or
        the error it alone raised, in order: one bad query does not fail the others."""
        out: list = [None] * len(queries)
        sides: list = [None] * len(queries)
        for n, q in enumerate(queries):
            try:
                self._validate(q)
            except Exception as exc:  # noqa: BLE001 - reported for this query only
                out[n] = exc
        # the whole batch's stored histories in one read (not two store queries per call)
        user_ids = [q.user_id for n, q in enumerate(queries) if q.user_id and out[n] is None]
        stored = self.catalog.histories(user_ids) if user_ids else None
        # pause(): a preemption point between calls and stages (core.cpu_yield: a serving
        # ranking thread lets the event loop that shares its core run; elsewhere it does nothing)
        for n, q in enumerate(queries):
            if out[n] is not None:
                continue
            pause()
            try:
                sides[n] = self._user_side(q, stored)
            except Exception as exc:  # noqa: BLE001 - reported for this query only
                out[n] = exc
        pause()
        try:
            self._run_user_tower([s for s in sides if s is not None])
        except Exception:  # noqa: BLE001 - a batch-wide failure: retry one by one to find the culprit
            for n, s in enumerate(sides):
                if s is not None:
                    try:
                        self._run_user_tower([s])
                    except Exception as exc:  # noqa: BLE001
                        out[n], sides[n] = exc, None
        plain: list[tuple[int, np.ndarray, set[int]]] = []     # unfiltered: searched together
        blended: dict[int, tuple] = {}
        with self._lock:
            for n, (q, side) in enumerate(zip(queries, sides)):
                if side is None:
                    continue
                pause()
                try:
                    user, history, hvecs, qvec = self._blend(q, side.vector, side.history, side.units, side.qvec)
                    blended[n] = (user, history, hvecs, qvec)
                    excluded = self._excluded(q, history)
                    eligible, no_price = self._eligible(q, excluded)
                    repeat = self._repeat_bias(q, history)
                    if eligible is None and repeat is None:
                        plain.append((n, user, excluded))
                        continue
                    if eligible is None:          # history kept and scored with the learned repeat bias
                        active = self._active.copy()
                        active[list(excluded)] = False
                        eligible = np.flatnonzero(active).astype(np.int64)
                    if len(eligible) <= self.config.exact_filter_max:
                        scores = self._vecs[eligible] @ user
                        if repeat is not None:
                            scores = scores + repeat[eligible]
                        top = np.argsort(-scores, kind="stable")[:q.k]
                        rows, scores = eligible[top], scores[top]
                    elif repeat is None:
                        rows, scores = self._search_filtered(user, q.k, eligible, excluded)
                    else:
                        rows, scores = self._search_with_repeat(user, q.k, eligible, excluded, repeat)
                    out[n] = Ranking(self._candidates(rows, scores, history, hvecs, qvec), no_price)
                except Exception as exc:  # noqa: BLE001
                    out[n] = exc
            pause()
            for (n, _user, _excl), (rows, scores) in zip(plain, self._search_plain(queries, plain)):
                pause()
                _u, history, hvecs, qvec = blended[n]
                out[n] = Ranking(self._candidates(rows, scores, history, hvecs, qvec), 0)
        return out

    def _repeat_bias(self, query: RankQuery, history: list[Item]) -> np.ndarray | None:
        """float[rows]: the learned repeat bias (ranker.model.REPEAT_EDGES) on this history's items, zero
        elsewhere; None when history items are excluded anyway or the model has no repeat bias."""
        bias_of = getattr(self.scorer, "history_bias", None)
        if query.exclude_history or bias_of is None or not history:
            return None
        rows = np.array([self._row[i.id] for i in history if i.id in self._row], dtype=np.int64)
        bias = bias_of(len(rows))
        if bias is None or not len(rows):
            return None
        dense = np.zeros(len(self._ids), dtype=np.float32)
        hrows, hbias = history_scores(bias, rows)
        dense[hrows] = hbias
        return dense

    def _search_with_repeat(self, user: np.ndarray, k: int, eligible: np.ndarray, excluded: set[int],
                            repeat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index search (k + history items deep, so a history item the bias pushes down leaves room), then
        the eligible history items re-scored with their bias: exact for a bias of either sign."""
        hist = np.flatnonzero(repeat)
        ok = np.zeros(len(self._ids), dtype=bool)
        ok[eligible] = True
        hist = hist[ok[hist]]
        rows, scores = self._search_filtered(user, k + len(hist), eligible, excluded)
        keep = ~np.isin(rows, hist)
        rows = np.concatenate([rows[keep], hist])
        scores = np.concatenate([scores[keep], self._vecs[hist] @ user + repeat[hist]])
        top = np.argsort(-scores, kind="stable")[:k]
        return rows[top], scores[top]

    def _excluded(self, query: RankQuery, history: list[Item]) -> set[int]:
        excluded = {self._row[i] for i in query.exclude if i in self._row}
        if query.similar_to:
            excluded.add(self._row[query.similar_to])
        if query.exclude_history:
            excluded |= {self._row[i.id] for i in history}
        return excluded

    def _search_plain(self, queries: Sequence[RankQuery], plain: list[tuple[int, np.ndarray, set[int]]]
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-k of each unfiltered query by one index search: each asks for k plus its exclusions,
        and its exclusions are dropped from its own answer. Queries with very many exclusions search
        alone with an id selector. Caller holds the lock."""
        if not plain:
            return []
        if self.index.kind == "flat":      # exact search: one product for the batch (ranker.exact_search)
            self._sync_exact()
            assert self._exact is not None
            return exact_search.top_k(self._exact, np.stack([u for _n, u, _e in plain]),
                                      [queries[n].k for n, _u, _e in plain],
                                      [np.fromiter(e, dtype=np.int64, count=len(e)) for _n, _u, e in plain],
                                      np.flatnonzero(~self._active))
        results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        together = [(n, u, e) for n, u, e in plain if len(e) <= self.config.batch_exclude_max]
        for n, u, e in plain:
            if len(e) > self.config.batch_exclude_max:
                s, r = self.index.search(u[None], queries[n].k, exclude=e)
                keep = r[0] >= 0
                results[n] = (r[0][keep], s[0][keep])
        if together:
            fetch = max(queries[n].k + len(e) for n, _u, e in together)
            s, r = self.index.search(np.stack([u for _n, u, _e in together]), fetch)
            for (n, _u, e), srow, rrow in zip(together, s, r):
                keep = rrow >= 0
                if e:
                    keep &= ~np.isin(rrow, np.fromiter(e, dtype=np.int64, count=len(e)))
                k = queries[n].k
                results[n] = (rrow[keep][:k], srow[keep][:k])
        return [results[n] for n, _u, _e in plain]

    def _eligible(self, query: RankQuery, excluded: set[int]) -> tuple[np.ndarray | None, int]:
        """(rows passing every filter, or None when only exclusions apply; items dropped for having no
        price). Caller holds the lock. Vectorised over per-row price and brand-code arrays."""
        filtered = bool(query.category.strip() or query.has_price_filter or query.brands or query.exclude_brands)
        if not filtered:
            return None, 0
        mask = self._active.copy()
        if excluded:
            mask[list(excluded)] = False
        if query.category.strip():
            in_cat = np.zeros_like(mask)
            in_cat[self._rows_in_category(query.category)] = True
            mask &= in_cat
        if query.brands:
            codes = [self._brand_code[b.strip().lower()] for b in query.brands if b.strip().lower() in self._brand_code]
            mask &= np.isin(self._brand_codes, codes)
        if query.exclude_brands:
            codes = [self._brand_code[b.strip().lower()] for b in query.exclude_brands
                     if b.strip().lower() in self._brand_code]
            mask &= ~np.isin(self._brand_codes, codes)
        no_price = 0
        if query.has_price_filter:
            priced = ~np.isnan(self._prices)
            no_price = int((mask & ~priced).sum())
            mask &= priced
            with np.errstate(invalid="ignore"):
                if query.min_price is not None:
                    mask &= self._prices >= query.min_price
                if query.max_price is not None:
                    mask &= self._prices <= query.max_price
        return np.flatnonzero(mask).astype(np.int64), no_price

    def _search_filtered(self, user: np.ndarray, k: int, eligible: np.ndarray, excluded: set[int]
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Over-fetch from the index and keep eligible rows, widening until k are found or the index is
        exhausted. For loose filters on large catalogs, where an exact scan of the eligible rows costs more."""
        ok = np.zeros(len(self._ids), dtype=bool)
        ok[eligible] = True
        total = self.index.ntotal
        fetch = min(total, k * int(np.ceil(int(self._active.sum()) / max(len(eligible), 1))) * 2)
        while True:
            s, r = self.index.search(user[None], fetch, exclude=excluded)
            rows, scores = r[0], s[0]
            keep = (rows >= 0) & ok[np.maximum(rows, 0)]
            if keep.sum() >= k or fetch >= total:
                return rows[keep][:k], scores[keep][:k]
            fetch = min(total, fetch * 4)

    def score_items(self, query: RankQuery, item_ids: Sequence[str]) -> list[Candidate]:
        """Scores and evidence for the given items, in the order given ("why am I seeing this?"); the
        one validation of an Explain request (`core.validation.validate_explain`)."""
        validate_explain(query, item_ids, self.config.limits)
        user, history, hvecs, qvec = self._user(query)
        with self._lock:
            for i in item_ids:
                if i not in self._row or not self._active[self._row[i]]:
                    raise UnknownItem(i, field="item_ids")
            rows = [self._row[i] for i in item_ids]
            return self._candidates(rows, self._vecs[rows] @ user, history, hvecs, qvec)

    # -- introspection --------------------------------------------------------------------
    def indexed_items(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """The catalog rows of those ids that are indexed now, from memory: the table is built at
        start-up and changed with every upsert and delete, so serving reads no item rows from the store."""
        with self._lock:
            return {i: self._items[i] for i in item_ids if i in self._row and self._active[self._row[i]]}

    def item_vector(self, item_id: str) -> np.ndarray:
        """The item's unit vector in the ranker's space (a copy)."""
        with self._lock:
            if item_id not in self._row:
                raise UnknownItem(item_id)
            return self._unit[self._row[item_id]].copy()

    def describe(self) -> dict:
        with self._lock:
            return {"scorer": self.scorer.name, "version": self.version, "items": int(self._active.sum()),
                    "dim": self.scorer.dim,
                    "index": self.index.describe() if self.index else None}

    def save_index(self, model_dir: Path) -> None:
        """Writes item vectors (all rows), row ids and the FAISS index into model_dir."""
        model_dir = Path(model_dir)
        with self._lock:
            np.save(model_dir / "item_vectors.npy", self._vecs)
            if not self._tied:
                np.save(model_dir / "history_vectors.npy", self._hvecs)
            (model_dir / "index_ids.json").write_text(json.dumps(self._ids))
            self.index.save(model_dir / "index.faiss")
