"""Full-ranking top-k metrics from the rank of each user's single held-out target (leave-one-out).

rank = number of items scored strictly higher than the target (0 = first place). With one relevant
item per user, Recall@k is the hit rate and NDCG@k = 1/log2(rank + 2) when rank < k, else 0.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

PRIMARY = "ndcg@10"
DEFAULT_KS = (10, 50)


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scores: float[B, N]; targets: int[B] column of each row's target -> int[B] ranks.

    A score of -inf marks an item removed from the ranking; a removed target gets rank N (a miss).
    Ties count in the target's favour (only strictly higher scores outrank it).
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    t = scores[np.arange(len(targets)), targets]
    ranks = (scores > t[:, None]).sum(axis=1)
    ranks[np.isneginf(t)] = scores.shape[1]
    return ranks.astype(np.int64)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks)
    return float((ranks < k).mean()) if len(ranks) else 0.0


def ndcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """float64[users]: each user's NDCG@k (their mean is ndcg_at_k; their spread gives its standard error)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    return float(ndcg_gains(ranks, k).mean()) if len(ranks) else 0.0


def metrics_from_ranks(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """{"recall@10": .., "ndcg@10": .., "recall@50": .., "ndcg@50": ..} (in that order for ks=(10, 50))."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
    return out
