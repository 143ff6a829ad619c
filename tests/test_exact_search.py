"""Exact search (ranker.exact_search): the true top k, and the same bits alone or in any batch,
near-ties and exact ties included (ties go to the lower row), with either fast product (float32
one query at a time; bfloat16 for a batch, when torch is loaded)."""
from __future__ import annotations

import numpy as np
import pytest

from ranker import exact_search
from ranker.exact_search import ExactItems, top_k

NONE = np.zeros(0, np.int64)


@pytest.fixture(params=[False, pytest.param(True, marks=pytest.mark.slow)], ids=["float32", "bfloat16"])
def bf16(request):
    """Both fast products (bfloat16 imports torch: the slow tier)."""
    return request.param


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
    return np.ascontiguousarray(np.concatenate([base, near, base.copy()]))   # exact duplicates of the first third


def test_top_k_is_the_true_top_k_with_exclusions_and_inactive_rows(bf16):
    rng = np.random.default_rng(0)
    items = _near_tied_items(rng)
    users = rng.standard_normal((9, items.shape[1])).astype(np.float32)
    inactive = np.array([3, 50, 1001], dtype=np.int64)
    excluded = [rng.choice(len(items), size=q * 3, replace=False).astype(np.int64) for q in range(len(users))]
    ks = [1, 5, 10, 10, 20, 50, 100, 7, 3]
    got = top_k(ExactItems.of(items, bf16), users, ks, excluded, inactive)
    for q, (rows, scores) in enumerate(got):
        want = _brute(items, users[q], ks[q], excluded[q], inactive)
        assert rows.tolist() == want.tolist()
        assert np.all(np.diff(scores) <= 0)
        assert not set(rows.tolist()) & (set(excluded[q].tolist()) | set(inactive.tolist()))


def test_one_batch_mixes_k_zero_k_past_the_eligible_rows_and_mostly_excluded_queries(bf16):
    """A batch is answered as a whole (one candidate pass, one re-score): each query still gets its own
    top k, whether its k is 0, larger than its eligible rows, or most rows are excluded for it."""
    rng = np.random.default_rng(3)
    for _trial in range(40):
        n = int(rng.integers(1, 80))
        items = rng.standard_normal((n, 24)).astype(np.float32)
        users = rng.standard_normal((int(rng.integers(3, 9)), 24)).astype(np.float32)
        inactive = np.flatnonzero(rng.random(n) < 0.3).astype(np.int64)
        excluded = [np.flatnonzero(rng.random(n) < rng.random()).astype(np.int64) for _ in users]
        ks = [int(rng.integers(0, n + 5)) for _ in users]
        got = top_k(ExactItems.of(items, bf16), users, ks, excluded, inactive)
        for q, (rows, scores) in enumerate(got):
            assert rows.tolist() == _brute(items, users[q], ks[q], excluded[q], inactive).tolist()
            assert rows.dtype == np.int64 and scores.dtype == np.float64 and len(scores) == len(rows)


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1, 1, 1, 1, 1), (2, 6), (5, 3), (8,), (3, 5)])
def test_a_query_gets_the_same_bits_alone_and_in_any_batch(sizes, bf16):
    """With torch, batches below BF16_MIN_BATCH take the float32 product one query at a time and the
    others the bfloat16 one, whose scores order these near-ties differently; the answer may not change."""
    assert 1 < exact_search.BF16_MIN_BATCH <= 5
    rng = np.random.default_rng(1)
    raw = _near_tied_items(rng)
    items = ExactItems.of(raw, bf16)
    # queries aimed at the near-duplicates, so the top 10 is full of near-ties
    users = (raw[rng.choice(len(raw) // 3, size=8)] + rng.standard_normal((8, raw.shape[1])) * 0.01
             ).astype(np.float32)
    alone = [top_k(items, users[q:q + 1], [10], [NONE], NONE)[0] for q in range(8)]
    batched, start = [], 0
    for size in sizes:
        batched += top_k(items, users[start:start + size], [10] * size, [NONE] * size, NONE)
        start += size
    for q, ((ra, sa), (rb, sb)) in enumerate(zip(alone, batched)):
        assert ra.tolist() == rb.tolist() == _brute(raw, users[q], 10).tolist() and sa.tobytes() == sb.tobytes()


def test_exact_ties_go_to_the_lower_row_and_fewer_eligible_than_k(bf16):
    items = ExactItems.of(np.array([[1, 0], [0, 1], [1, 0], [0.5, 0.5], [1, 0]], dtype=np.float32), bf16)
    users = np.array([[1, 0]] * 3, np.float32)      # a batch of 3: the bfloat16 product when bf16
    rows, scores = top_k(items, users, [3] * 3, [np.array([2])] * 3, np.array([4]))[0]
    assert rows.tolist() == [0, 3, 1] and scores.tolist() == [1.0, 0.5, 0.0]
    rows, _ = top_k(items, users, [10] * 3, [NONE] * 3, np.array([1, 2]))[0]
    assert rows.tolist() == [0, 4, 3]


@pytest.mark.slow
def test_the_fast_scores_stay_within_their_error_bound():
    """The candidate rule is only as good as the bound: the measured error of both fast products, on
    vectors with large and mixed-sign entries, against float64."""
    rng = np.random.default_rng(2)
    d = 896
    items = (rng.standard_normal((2000, d)) * rng.uniform(0.1, 3, size=(2000, 1))).astype(np.float32)
    ex = ExactItems.of(items, True)
    for size in (1, 2, 16):
        users = (rng.standard_normal((size, d)) * 2).astype(np.float32)
        fast, bf16 = exact_search.fast_scores(ex, users)
        assert bf16 == (size >= exact_search.BF16_MIN_BATCH)
        exact = users.astype(np.float64) @ items.astype(np.float64).T
        norms = np.linalg.norm(users.astype(np.float64), axis=1)[:, None] * ex.norms
        err = np.abs(fast - exact)
        assert np.all(err <= exact_search._rel_error(d, bf16) * norms)
        assert err.max() > 0     # the fast product does round: the rule is exercised


def test_appended_rows_search_like_a_fresh_matrix(bf16):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((300, 64)).astype(np.float32), rng.standard_normal((50, 64)).astype(np.float32)
    grown, fresh = ExactItems.of(a, bf16).extended(b), ExactItems.of(np.concatenate([a, b]), bf16)
    assert grown.max_norm == fresh.max_norm and np.array_equal(grown.norms, fresh.norms)
    assert (grown.fast is None) == (not bf16)
    users = rng.standard_normal((8, 64)).astype(np.float32)
    for (r1, s1), (r2, s2) in zip(top_k(grown, users, [10] * 8, [NONE] * 8, NONE),
                                  top_k(fresh, users, [10] * 8, [NONE] * 8, NONE)):
        assert r1.tolist() == r2.tolist() and s1.tobytes() == s2.tobytes()
