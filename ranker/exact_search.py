"""Exact top-k by inner product for the whole batch of waiting queries, with a canonical score.

At the catalog sizes that get exact search (`IndexConfig.exact_max_items`), one product of the
batch's user vectors with every item vector costs less than FAISS's flat index (its wheel here has
no AVX2 kernels). The product runs in bfloat16 (torch's oneDNN kernels use the CPU's AVX-512 BF16
dot products, accumulating in float32): on one thread, 4,385 x 896, batch 16, 0.10 ms a query
against float32 BLAS's 0.19 with the item matrix out of cache (`bench/bench_exact_search.py`).

Neither product is exact, and a BLAS product does not even round the same way for every batch size,
so the fast scores only pick candidates: every item whose fast score is within the product's
worst-case error of the k-th best fast score, which provably contains the true top k. The error
bound of one item's fast score is rel * ||u|| * ||v||: for bfloat16, rounding both inputs (2^-8
each), float32 accumulation (the classic gamma_n) and rounding the output to bfloat16 (2^-8); for
float32 BLAS, gamma_n. With the Scientific model's vectors this admits about 17-28 candidates for
k=10. The candidates are then scored again in float64, elementwise products summed row by row: a
score that depends only on the item and the user vector, never on the batch. Order: that score,
highest first; equal scores by row, lowest first. A query's answer is thus the same bits alone or in
any batch (`tests/test_exact_search.py`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

BF16_MIN_BATCH = 3
"""From this many queries, one bfloat16 product for the batch; below, one float32 pass over the items
each (FAISS's `fvec_inner_products_ny`). bfloat16's kernel repacks the item matrix on every call,
which costs more than it saves for one or two queries (0.40 against 0.28 ms for one, cached)."""

_EPS32 = float(np.finfo(np.float32).eps) / 2     # unit round-off of float32 (round to nearest)
_EPS64 = float(np.finfo(np.float64).eps) / 2
_EPS_BF16 = 2.0 ** -8                            # unit round-off of bfloat16 (8 significant bits)
_TINY = 1e-30
"""Absolute slack: the BF16 dot-product instruction flushes subnormal values to zero."""


def _gamma(n: int, eps: float) -> float:
    return n * eps / (1.0 - n * eps)


def canonical_scores(item_vecs: np.ndarray, rows: np.ndarray, user: np.ndarray) -> np.ndarray:
    """float64 scores of these rows: products summed along each row (numpy's pairwise sum of one
    contiguous row), so an item's score never depends on which other rows are scored with it.
    user: one vector for every row, or one per row (several queries' candidates scored at once)."""
    return (item_vecs[rows].astype(np.float64) * user.astype(np.float64)).sum(axis=1)


@dataclass(frozen=True)
class ExactItems:
    """The item matrix as exact search reads it: float32 rows, their bfloat16 copy for the fast
    product, and each row's norm for the error bound. Rows are only ever appended (an upsert adds a
    row and deactivates the old one), so `extended` builds the next one from this one."""
    vecs: np.ndarray             # float32[n, d]
    fast: Any                    # torch.bfloat16[n, d], or None without torch (float32 product)
    norms: np.ndarray            # float64[n]
    max_norm: float

    @classmethod
    def of(cls, vecs: np.ndarray, bf16: bool | None = None) -> "ExactItems":
        """bf16: keep the bfloat16 copy (True imports torch), or not; None: when this process has torch
        loaded (the trained model and MiniLM load it): a process that never needed torch (the fake
        encoder's tests) searches in float32 rather than paying seconds to import it."""
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        norms = np.sqrt((vecs.astype(np.float64) ** 2).sum(axis=1))
        torch = _torch() if bf16 else sys.modules.get("torch") if bf16 is None else None
        fast = None if torch is None else torch.from_numpy(vecs).to(torch.bfloat16)
        return cls(vecs, fast, norms, float(norms.max()) if len(norms) else 0.0)

    def extended(self, vecs: np.ndarray) -> "ExactItems":
        if not len(self.vecs):
            return ExactItems.of(vecs, self.fast is not None)
        more = ExactItems.of(vecs, self.fast is not None)
        fast = None if self.fast is None else _torch().cat([self.fast, more.fast])
        return ExactItems(np.concatenate([self.vecs, more.vecs]), fast, np.concatenate([self.norms, more.norms]),
                          max(self.max_norm, more.max_norm))


def _torch():
    import torch
    return torch


def _rel_error(d: int, bf16: bool) -> float:
    """Relative worst-case error of a fast score: |fast - exact| <= rel * ||u|| * ||v|| (+ _TINY)."""
    if not bf16:
        return _gamma(d, _EPS32)
    # inputs rounded to bfloat16 (their products are exact in float32), a float32 sum of d
    # terms, the sum rounded to bfloat16
    return (1 + _EPS_BF16) ** 3 * (1 + _gamma(d, _EPS32)) - 1


def fast_scores(items: ExactItems, users: np.ndarray) -> tuple[np.ndarray, bool]:
    """(float32[q, n] approximate scores, whether they came from the bfloat16 product)."""
    if len(users) >= BF16_MIN_BATCH and items.fast is not None:
        torch = _torch()
        u = torch.from_numpy(np.ascontiguousarray(users, dtype=np.float32)).to(torch.bfloat16)
        return (u @ items.fast.T).float().numpy(), True
    item_vecs = items.vecs
    out = np.empty((len(users), len(item_vecs)), dtype=np.float32)
    import faiss

    for q in range(len(users)):
        u = np.ascontiguousarray(users[q], dtype=np.float32)
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out[q]), faiss.swig_ptr(u), faiss.swig_ptr(item_vecs),
                                     item_vecs.shape[1], len(item_vecs))
    return out, False


def top_k(items: ExactItems, users: np.ndarray, ks: Sequence[int],
          excluded: Sequence[np.ndarray], inactive: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query q: (rows int64[<= ks[q]], scores float64) of its top ks[q] items, best first.

    items: every row, inactive ones too; users: float32[q, d]; excluded[q]: rows query q must not get;
    inactive: rows no query may get (deleted items)."""
    users = np.ascontiguousarray(users, dtype=np.float32)
    n, d = items.vecs.shape
    if not len(users):
        return []
    if n == 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float64)) for _ in users]
    scores, bf16 = fast_scores(items, users)
    if len(inactive):
        scores[:, inactive] = -np.inf
    # fast vs exact, plus exact vs the float64 canonical score
    rel = _rel_error(d, bf16) + _gamma(d, _EPS64)
    q = len(users)
    for i in range(q):
        if len(excluded[i]):
            scores[i, excluded[i]] = -np.inf
    ks_ = np.minimum(np.asarray(ks, dtype=np.int64), n)
    kth = _kth_largest(scores, np.maximum(ks_, 1), torch_ok=bf16)
    # the k-th fast score overstates the k-th true score by at most rel*|u|*max_norm, and a true
    # top-k item's fast score understates its own by at most rel*|u|*|v|
    finite = np.isfinite(kth) & (ks_ > 0)
    u64 = users.astype(np.float64)
    unorm = np.sqrt((u64 * u64).sum(axis=1))
    # a float32 pass over the whole batch with the widest slack (every row at max_norm), then each
    # of its few candidates with its own norm; a query with fewer than k eligible items takes them all
    widest = np.where(finite, kth - rel * unorm * 2 * items.max_norm - 2 * _TINY, 0.0)
    thresh = np.nextafter(widest.astype(np.float32), np.float32(-np.inf))
    mask = scores >= thresh[:, None]
    for i in np.flatnonzero(~finite):
        mask[i] = np.isfinite(scores[i]) if ks_[i] > 0 else False
    owner, rows = np.nonzero(mask)
    slack = rel * unorm[owner] * (items.max_norm + items.norms[rows]) + 2 * _TINY
    keep = ~finite[owner] | (scores[owner, rows].astype(np.float64) >= kth[owner] - slack)
    owner, rows = owner[keep], rows[keep].astype(np.int64)
    # every query's candidates scored in one float64 product (rows summed one by one: the same bits
    # as scoring each query's candidates alone), ordered by query, best score, then row
    exact = canonical_scores(items.vecs, rows, users[owner])
    order = np.lexsort((rows, -exact, owner))
    rows, exact = rows[order], exact[order]
    starts = np.searchsorted(owner[order], np.arange(q + 1))     # query i's candidates: starts[i]:starts[i+1]
    ends = np.minimum(starts[:-1] + np.maximum(ks_, 0), starts[1:])
    return [(rows[s:e], exact[s:e]) for s, e in zip(starts[:-1].tolist(), ends.tolist())]


def _kth_largest(scores: np.ndarray, ks: np.ndarray, torch_ok: bool) -> np.ndarray:
    """float64[q]: each row's ks[i]-th largest value (an element of the row, as np.partition gives).
    torch's topk when torch is loaded (6 against 25 us a row of 4,385 here), else np.partition."""
    n = scores.shape[1]
    if torch_ok:
        torch = _torch()
        top = torch.topk(torch.from_numpy(scores), int(ks.max()), dim=1, sorted=True).values.numpy()
        return top[np.arange(len(ks)), ks - 1].astype(np.float64)
    return np.array([np.partition(row, n - k)[n - k] for row, k in zip(scores, ks)], dtype=np.float64)
