"""The candidate index: FAISS inner-product search over item vectors, exact or approximate by size.

Ids are int64 row numbers owned by the caller (the ranker maps them to item ids).
Small catalogs get an exact `IndexFlatIP` (wrapped in `IndexIDMap2` so ids survive removals);
above `exact_max_items` an `IndexIVFFlat` (k-means coarse quantiser, `nprobe` lists scanned per
query). IVF rather than HNSW because it supports `remove_ids` (catalog deletions) and builds in
seconds on two cores, and adding cold-start items needs no retraining of the quantiser.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class IndexConfig:
    exact_max_items: int = 50_000
    """Catalogs up to this many items get exact search; larger ones an IVF index."""
    nlist: int = 0
    """IVF lists; 0 = automatic (about sqrt(n), at most n/39 so k-means has enough points)."""
    nprobe: int = 0
    """IVF lists scanned per query; 0 = automatic (nlist/30, at least 32: recall@100 >= 0.95 in bench)."""
    train_sample: int = 64_000
    """At most this many vectors train the IVF quantiser (k-means cost grows with it; >= 39 per list)."""

    def __post_init__(self) -> None:
        if self.exact_max_items < 0:
            raise ValueError(f"exact_max_items must be >= 0 (got {self.exact_max_items})")
        if self.nlist < 0 or self.nprobe < 0:
            raise ValueError(f"nlist and nprobe must be >= 0 (got {self.nlist}, {self.nprobe})")
        if self.train_sample < 1:
            raise ValueError(f"train_sample must be >= 1 (got {self.train_sample})")


def auto_nlist(n: int) -> int:
    return max(1, min(int(math.sqrt(max(n, 1))), n // 39 if n >= 39 else 1))


def auto_nprobe(nlist: int) -> int:
    # bench/bench_ranker.py (896-d vectors, recall@100 vs exact): 32 of 316 lists at 100k -> 0.988,
    # 32 of 1000 at 1M -> 0.967, 16 of 1000 -> 0.931; nlist/10 at 1M cost 3x the time for 0.9999.
    return min(nlist, max(32, nlist // 30))


class VectorIndex:
    """Thread-safe wrapper: one lock serialises search, add and remove (a search waits for a
    running add or remove, and searches run one at a time; the ranker also holds its own lock
    around each query)."""

    def __init__(self, index, kind: str, dim: int, nprobe: int = 0):
        self.index = index
        self.kind = kind          # "flat" or "ivf"
        self.dim = dim
        self.nprobe = nprobe
        self._lock = threading.RLock()

    # -- building ---------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, config: IndexConfig = IndexConfig(),
              seed: int = 0) -> "VectorIndex":
        """vectors: float32[n, d] (unit length for cosine); ids: int64[n]."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n, dim = vectors.shape
        if n <= config.exact_max_items:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            out = cls(index, "flat", dim)
        else:
            nlist = config.nlist or auto_nlist(n)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = vectors if n <= config.train_sample else vectors[rng.choice(n, config.train_sample, replace=False)]
            index.train(sample)
            index.quantizer_trains_alone = 0
            out = cls(index, "ivf", dim, config.nprobe or auto_nprobe(nlist))
            out._quantizer = quantizer   # keep the Python object alive with the index
        if n:
            out.index.add_with_ids(vectors, ids)
        return out

    # -- mutation -----------------------------------------------------------------
    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> int:
        import faiss

        arr = np.ascontiguousarray(list(ids), dtype=np.int64)
        if not len(arr):
            return 0
        with self._lock:
            return int(self.index.remove_ids(faiss.IDSelectorBatch(arr)))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    # -- search -------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, exclude: Iterable[int] = (),
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product. Returns (scores float32[q, k], ids int64[q, k]); missing = id -1."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        excl = np.ascontiguousarray(sorted(set(exclude)), dtype=np.int64)
        sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(excl)) if len(excl) else None
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=nprobe or self.nprobe)
            if sel is not None:
                params.sel = sel
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        with self._lock:
            k_eff = max(1, min(k, self.ntotal))
            scores, ids = self.index.search(queries, k_eff, params=params)
        return scores, ids

    # -- persistence ----------------------------------------------------------------
    def save(self, path: Path) -> None:
        import faiss

        path = Path(path)
        with self._lock:
            faiss.write_index(self.index, str(path))
        path.with_suffix(".json").write_text(json.dumps({"kind": self.kind, "dim": self.dim, "nprobe": self.nprobe}))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        import faiss

        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(faiss.read_index(str(path)), meta["kind"], int(meta["dim"]), int(meta.get("nprobe", 0)))

    def describe(self) -> dict:
        return {"kind": self.kind, "ntotal": self.ntotal, "dim": self.dim, "nprobe": self.nprobe,
                "nlist": int(getattr(self.index, "nlist", 0))}

