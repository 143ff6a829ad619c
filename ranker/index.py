"""The candidate index: FAISS inner-product search over item vectors, exact or approximate by size.

Ids are int64 row numbers owned by the caller (the ranker maps them to item ids).
Small catalogs get an exact `IndexFlatIP` (wrapped in `IndexIDMap2` so ids survive removals);
above `exact_max_items` an `IndexIVFFlat` (k-means coarse quantiser, `nprobe` lists scanned per
query); above `ivf_flat_max_items` an `IndexIVFPQ` (the same lists holding 8-dimension product-
quantised codes, 1 byte each) whose top `rerank_factor * k` are re-scored exactly against the
full vectors the caller keeps (`attach_vectors`). IVF rather than HNSW because it supports
`remove_ids` (catalog deletions), builds in minutes rather than hours on two cores, and adding
cold-start items needs no retraining of the quantiser.

Chosen by measurement (`bench/bench_index.py --items 1000000 --kinds ivfpq4 ivfpq8`, synthetic
items around the trained 640-d vectors, one search thread, quiet machine): 8-bit IVF-PQ, 33 of
1,000 lists, exact re-rank of 20x k: 3.7-4.2 ms p50 at recall@100 .966 in 80 MB of codes. The
4-bit SIMD fast scan (`pq_bits=4`) needs 66 lists and 20x k for .95, at 6.6 ms (README,
performance section).
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

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
    ivf_flat_max_items: int = 200_000
    """Above this, IVF lists hold product-quantised codes and the top rerank_factor*k are re-scored exactly."""
    pq_dims_per_code: int = 8
    """Vector dimensions per PQ code (640-d: 80 8-bit codes, or with 4 dims per 4-bit code 160 codes: 80 bytes
    per item either way)."""
    pq_bits: int = 8
    """Bits per PQ code: 4 = SIMD "fast scan" (`IndexIVFPQFastScan`: the codes of a list are scored 32
    at a time in registers), 8 = classic IVF-PQ (table look-ups, one code at a time)."""
    rerank_factor: int = 20
    """IVF-PQ: candidates re-scored exactly per result asked for. bench/bench_index.py, 1M items, top-100,
    8-bit codes, 33 lists: 4 -> recall .853 (1.9 ms), 10 -> .947 (2.8 ms), 20 -> .966 (3.7 ms)."""

    def __post_init__(self) -> None:
        if self.exact_max_items < 0:
            raise ValueError(f"exact_max_items must be >= 0 (got {self.exact_max_items})")
        if self.nlist < 0 or self.nprobe < 0:
            raise ValueError(f"nlist and nprobe must be >= 0 (got {self.nlist}, {self.nprobe})")
        if self.train_sample < 1:
            raise ValueError(f"train_sample must be >= 1 (got {self.train_sample})")
        if self.pq_bits not in (4, 8):
            raise ValueError(f"pq_bits must be 4 or 8 (got {self.pq_bits})")
        if self.pq_dims_per_code < 1 or self.rerank_factor < 1:
            raise ValueError(f"pq_dims_per_code and rerank_factor must be >= 1 "
                             f"(got {self.pq_dims_per_code}, {self.rerank_factor})")

    def kind_for(self, n: int) -> str:
        """The index a catalog of n items gets: "flat" (exact), "ivf" or "ivfpq" (IVF-PQ + exact re-rank)."""
        if n <= self.exact_max_items:
            return "flat"
        return "ivf" if n <= self.ivf_flat_max_items else "ivfpq"


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

    def __init__(self, index, kind: str, dim: int, nprobe: int = 0, rerank_factor: int = 20):
        self.index = index
        self.kind = kind          # "flat", "ivf" or "ivfpq"
        self.dim = dim
        self.nprobe = nprobe
        self.rerank_factor = rerank_factor
        self._vectors = None      # ivfpq: ids -> full float32 vectors, for the exact re-rank
        self._lock = threading.RLock()

    def attach_vectors(self, lookup) -> None:
        """`lookup(ids int64[n]) -> float32[n, dim]`: the full vectors an IVF-PQ index re-ranks with
        (the ranker keeps them anyway; the index stores only codes)."""
        self._vectors = lookup

    # -- building ---------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, config: IndexConfig = IndexConfig(),
              seed: int = 0) -> "VectorIndex":
        """vectors: float32[n, d] (unit length for cosine); ids: int64[n]."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n, dim = vectors.shape
        kind = config.kind_for(n)
        index: Any      # the faiss class depends on the kind
        if kind == "ivfpq" and dim % config.pq_dims_per_code:
            kind = "ivf"                 # PQ needs whole codes; an odd dimension stays at full precision
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            out = cls(index, "flat", dim)
        else:
            nlist = config.nlist or auto_nlist(n)
            quantizer = faiss.IndexFlatIP(dim)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            elif config.pq_bits == 4:
                index = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, dim // config.pq_dims_per_code, 4,
                                                 faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFPQ(quantizer, dim, nlist, dim // config.pq_dims_per_code, 8,
                                         faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = vectors if n <= config.train_sample else vectors[rng.choice(n, config.train_sample, replace=False)]
            index.train(sample)
            index.quantizer_trains_alone = 0
            out = cls(index, kind, dim, config.nprobe or auto_nprobe(nlist), config.rerank_factor)
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
        if self.kind in ("ivf", "ivfpq"):
            params = faiss.SearchParametersIVF(nprobe=nprobe or self.nprobe)
            if sel is not None:
                params.sel = sel
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        with self._lock:
            k_eff = max(1, min(k, self.ntotal))
            if self.kind == "ivfpq" and self._vectors is not None:
                return self._rerank(queries, k_eff, params)
            scores, ids = self.index.search(queries, k_eff, params=params)
        return scores, ids

    def _rerank(self, queries: np.ndarray, k: int, params) -> tuple[np.ndarray, np.ndarray]:
        """IVF-PQ candidates (rerank_factor * k by approximate score), re-scored exactly."""
        fetch = min(self.ntotal, k * self.rerank_factor)
        _, cand = self.index.search(queries, fetch, params=params)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for q, row in enumerate(cand):
            row = row[row >= 0]
            if not len(row):
                continue
            exact = self._vectors(row) @ queries[q]
            top = np.argsort(-exact, kind="stable")[:k]
            scores[q, :len(top)], ids[q, :len(top)] = exact[top], row[top]
        return scores, ids

    # -- persistence ----------------------------------------------------------------
    def save(self, path: Path) -> None:
        import faiss

        path = Path(path)
        with self._lock:
            faiss.write_index(self.index, str(path))
        path.with_suffix(".json").write_text(json.dumps({"kind": self.kind, "dim": self.dim, "nprobe": self.nprobe,
                                                         "rerank_factor": self.rerank_factor}))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        import faiss

        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(faiss.read_index(str(path)), meta["kind"], int(meta["dim"]), int(meta.get("nprobe", 0)),
                   int(meta.get("rerank_factor", 20)))

    def describe(self) -> dict:
        return {"kind": self.kind, "ntotal": self.ntotal, "dim": self.dim, "nprobe": self.nprobe,
                "nlist": int(getattr(self.index, "nlist", 0))}

