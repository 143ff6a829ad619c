"""Ranking metrics on small hand-computed cases."""
import math

import numpy as np
import pytest

from ranker.metrics import metrics_from_ranks, ndcg_at_k, recall_at_k, target_ranks


def test_target_ranks_counts_strictly_higher_scores():
    scores = np.array([[0.1, 0.9, 0.5, 0.3],     # target col 2 (0.5): one higher -> rank 1
                       [0.7, 0.2, 0.7, 0.1],     # target col 0 (0.7): tie with col 2 does not count -> 0
                       [0.0, 0.0, 0.0, 1.0]])    # target col 0: one higher -> 1 (ties ignored)
    assert target_ranks(scores, np.array([2, 0, 0])).tolist() == [1, 0, 1]


def test_removed_target_is_a_miss():
    scores = np.array([[0.3, -np.inf, 0.1]])
    assert target_ranks(scores, np.array([1])).tolist() == [3]


def test_recall_and_ndcg_by_hand():
    ranks = np.array([0, 1, 9, 10, 49, 50])
    assert recall_at_k(ranks, 10) == pytest.approx(3 / 6)
    assert recall_at_k(ranks, 50) == pytest.approx(5 / 6)
    expected10 = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(11)) / 6
    assert ndcg_at_k(ranks, 10) == pytest.approx(expected10)
    expected50 = expected10 + (1 / math.log2(12) + 1 / math.log2(51)) / 6
    assert ndcg_at_k(ranks, 50) == pytest.approx(expected50)


def test_metrics_dict_keys_and_perfect_ranking():
    m = metrics_from_ranks(np.zeros(4, dtype=int))
    assert list(m) == ["recall@10", "ndcg@10", "recall@50", "ndcg@50"]
    assert all(v == 1.0 for v in m.values())
    assert ndcg_at_k(np.array([]), 10) == 0.0
