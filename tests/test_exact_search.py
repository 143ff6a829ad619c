"""Exact search (ranker.exact_search): the true top k, and the same bits alone or in any batch,
near-ties and exact ties included (ties go to the lower row)."""
from __future__ import annotations

import numpy as np
import pytest

from ranker import exact_search
from ranker.exact_search import top_k


def _brute(items, user, k, excluded=(), inactive=()):
    """The definition: float64 scores of every eligible row, highest first, ties by row."""
    scores = items.astype(np.float64) @ user.astype(np.float64)
    ok = np.ones(len(items), bool)
    ok[list(excluded)] = False
    ok[list(inactive)] = False
    rows = np.flatnonzero(ok)
    order = np.lexsort((rows, -scores[rows]))[:k]
    return rows[order]


def _near_tied_items(rng, n=3000, d=96):
    """Unit-ish vectors with many near-duplicates (differences in the last float32 bits) and exact
    duplicates: the cases where rounding decides the order."""
    base = rng.standard_normal((n // 3, d)).astype(np.float32)
    near = base + rng.standard_normal(base.shape).astype(np.float32) * 1e-7
    items = np.concatenate([base, near, base.copy()])            # exact duplicates of the first third
    return np.ascontiguousarray(items), float(np.linalg.norm(items, axis=1).max())


def test_top_k_is_the_true_top_k_with_exclusions_and_inactive_rows():
    rng = np.random.default_rng(0)
    items, max_norm = _near_tied_items(rng)
    users = rng.standard_normal((9, items.shape[1])).astype(np.float32)
    inactive = np.array([3, 50, 1001], dtype=np.int64)
    excluded = [rng.choice(len(items), size=q * 3, replace=False).astype(np.int64) for q in range(len(users))]
    ks = [1, 5, 10, 10, 20, 50, 100, 7, 3]
    got = top_k(items, max_norm, users, ks, excluded, inactive)
    for q, (rows, scores) in enumerate(got):
        want = _brute(items, users[q], ks[q], excluded[q], inactive)
        assert rows.tolist() == want.tolist()
        assert np.all(np.diff(scores) <= 0)
        assert not set(rows.tolist()) & (set(excluded[q].tolist()) | set(inactive.tolist()))


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1, 1, 1, 1, 1), (2, 6), (5, 3), (8,), (3, 5)])
def test_a_query_gets_the_same_bits_alone_and_in_any_batch(sizes):
    """Batches below and above GEMM_MIN_BATCH use different BLAS products, whose float32 scores differ
    in the last bits here (the fast scores alone order these near-ties differently from a batch of 8);
    the answer may not change."""
    assert exact_search.GEMM_MIN_BATCH <= 8
    rng = np.random.default_rng(1)
    items, max_norm = _near_tied_items(rng)
    # queries aimed at the near-duplicates, so the top 10 is full of near-ties
    users = (items[rng.choice(len(items) // 3, size=8)] + rng.standard_normal((8, items.shape[1])) * 0.01
             ).astype(np.float32)
    none = np.zeros(0, np.int64)
    alone = [top_k(items, max_norm, users[q:q + 1], [10], [none], none)[0] for q in range(8)]
    batched, start = [], 0
    for size in sizes:
        batched += top_k(items, max_norm, users[start:start + size], [10] * size, [none] * size, none)
        start += size
    for (ra, sa), (rb, sb) in zip(alone, batched):
        assert ra.tolist() == rb.tolist() and sa.tobytes() == sb.tobytes()


def test_exact_ties_go_to_the_lower_row_and_fewer_eligible_than_k():
    items = np.array([[1, 0], [0, 1], [1, 0], [0.5, 0.5], [1, 0]], dtype=np.float32)
    rows, scores = top_k(items, 1.0, np.array([[1, 0]], np.float32), [3], [np.array([2])],
                         np.array([4]))[0]
    assert rows.tolist() == [0, 3, 1] and scores.tolist() == [1.0, 0.5, 0.0]
    rows, _ = top_k(items, 1.0, np.array([[1, 0]], np.float32), [10], [np.zeros(0, np.int64)],
                    np.array([1, 2]))[0]
    assert rows.tolist() == [0, 4, 3]
