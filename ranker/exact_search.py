"""Exact top-k by inner product for the whole batch of waiting queries, with a canonical score.

At the catalog sizes that get exact search (`IndexConfig.exact_max_items`), one float32 matrix
product of the batch's user vectors with every item vector (numpy's BLAS) costs less than FAISS's
flat index (its wheel here has no AVX2 kernels): about 0.12 ms a query in a batch of 32 against
0.45-0.6 ms, on 4,385 x 896.

A BLAS product does not round the same way for every batch size (one query is a matrix-vector
product, several a matrix-matrix one), so near-ties could order differently alone and in a batch.
So the fast product only picks candidates: every item whose fast score is within twice the
product's worst-case rounding error of the k-th best (the classic dot-product bound,
|error| <= gamma_n * ||u|| * ||v||, gamma_n = n*eps / (1 - n*eps)), which provably contains the
true top k. The candidates (k plus the few near the boundary) are then scored again in float64,
elementwise products summed row by row: a score that depends only on the item and the user
vector, never on the batch. Order: that score, highest first; equal scores by row, lowest first.
A query's answer is thus the same bits alone or in any batch (`tests/test_exact_search.py`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

GEMM_MIN_BATCH = 6
"""Below this many queries, one matrix-vector product each: a matrix-matrix product first copies
the whole item matrix into its blocked layout, which costs more than it saves on a few queries."""

_EPS32 = float(np.finfo(np.float32).eps) / 2     # unit round-off of float32 (round to nearest)
_EPS64 = float(np.finfo(np.float64).eps) / 2


def _gamma(n: int, eps: float) -> float:
    return n * eps / (1.0 - n * eps)


def canonical_scores(item_vecs: np.ndarray, rows: np.ndarray, user: np.ndarray) -> np.ndarray:
    """float64 scores of these rows: products summed along each row (numpy's pairwise sum of one
    contiguous row), so an item's score never depends on which other rows are scored with it."""
    return (item_vecs[rows].astype(np.float64) * user.astype(np.float64)).sum(axis=1)


def fast_scores(item_vecs: np.ndarray, users: np.ndarray) -> np.ndarray:
    """float32[q, n] approximate scores: one BLAS product for a batch; for a few queries, one pass
    over the items each (FAISS's `fvec_inner_products_ny`: it streams the item matrix from memory
    faster than BLAS's matrix-vector product, 0.59 against 0.96 ms on 4,385 x 896 with the caches
    cold, as between a lone caller's calls)."""
    if len(users) >= GEMM_MIN_BATCH:
        return users @ item_vecs.T
    item_vecs = np.ascontiguousarray(item_vecs, dtype=np.float32)
    out = np.empty((len(users), len(item_vecs)), dtype=np.float32)
    import faiss

    for q in range(len(users)):
        u = np.ascontiguousarray(users[q], dtype=np.float32)
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out[q]), faiss.swig_ptr(u), faiss.swig_ptr(item_vecs),
                                     item_vecs.shape[1], len(item_vecs))
    return out


def top_k(item_vecs: np.ndarray, max_norm: float, users: np.ndarray, ks: Sequence[int],
          excluded: Sequence[np.ndarray], inactive: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query q: (rows int64[<= ks[q]], scores float64) of its top ks[q] items, best first.

    item_vecs: float32[n, d] (every row, inactive ones too); max_norm: the largest row norm (an upper
    bound is fine); users: float32[q, d]; excluded[q]: rows query q must not get; inactive: rows no
    query may get (deleted items)."""
    users = np.ascontiguousarray(users, dtype=np.float32)
    n, d = item_vecs.shape
    if not len(users):
        return []
    if n == 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float64)) for _ in users]
    scores = fast_scores(item_vecs, users)
    if len(inactive):
        scores[:, inactive] = -np.inf
    gamma = _gamma(d, _EPS32) + _gamma(d, _EPS64)
    out = []
    for q, (u, k) in enumerate(zip(users, ks)):
        row = scores[q]
        if len(excluded[q]):
            row[excluded[q]] = -np.inf
        k = min(int(k), n)
        if k <= 0:
            out.append((np.zeros(0, np.int64), np.zeros(0, np.float64)))
            continue
        kth = float(np.partition(row, n - k)[n - k])
        if np.isfinite(kth):
            # any item of the true top k scores at least kth - 2 * (its error bound) here
            margin = 2.0 * gamma * float(np.sqrt(u.astype(np.float64) @ u.astype(np.float64))) * max_norm
            cand = np.flatnonzero(row >= np.nextafter(np.float32(kth - margin), np.float32(-np.inf)))
        else:                                  # fewer than k eligible items: all of them
            cand = np.flatnonzero(np.isfinite(row))
        exact = canonical_scores(item_vecs, cand, u)
        order = np.lexsort((cand, -exact))[:k]
        out.append((cand[order].astype(np.int64), exact[order]))
    return out
