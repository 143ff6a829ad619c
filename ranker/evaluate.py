"""Full-ranking, leave-one-out evaluation of any Scorer and of the popularity baseline.

Protocol (UniSRec/RecBole sequential): every item of the catalog is ranked for every user; the
input is the user's whole history before the target; history items are NOT removed from the
ranking unless `remove_history=True` (what serving does; reported separately).
The primary metric is NDCG@10.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ranker.data import SplitData
from ranker.metrics import DEFAULT_KS, PRIMARY, metrics_from_ranks, target_ranks
from ranker.scorers import history_scores


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    users: int
    primary: str = PRIMARY

    @property
    def score(self) -> float:
        return self.metrics[self.primary]


def _split(data: SplitData, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    if split == "valid":
        return data.valid_hist, data.valid_target
    if split == "test":
        return data.test_hist, data.test_target
    if split == "live":
        return data.live_hist, data.live_target
    raise ValueError(f"split must be 'valid', 'test' or 'live' (got {split!r})")


def cold_target_mask(data: SplitData, split: str = "test") -> np.ndarray:
    """bool[users]: the target item never occurs in the train split (a cold-start item)."""
    _, targets = _split(data, split)
    return np.array([t not in data.train_items for t in targets], dtype=bool)


def ranks_for_scores(score_rows, histories: Sequence[np.ndarray], targets: np.ndarray,
                     remove_history: bool, batch: int = 1024) -> np.ndarray:
    """score_rows(start, stop) -> float[stop-start, N]; returns each user's target rank."""
    out = []
    for s in range(0, len(targets), batch):
        scores = np.array(score_rows(s, min(s + batch, len(targets))), dtype=np.float32, copy=True)
        if remove_history:
            for b, h in enumerate(histories[s:s + batch]):
                scores[b, h] = -np.inf
        out.append(target_ranks(scores, targets[s:s + batch]))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def scorer_rows(scorer, data: SplitData, histories: Sequence[np.ndarray], remove_history: bool = False,
                item_vecs: np.ndarray | None = None) -> Callable[[int, int], np.ndarray]:
    """score_rows(a, b) -> float[b - a, N]: a Scorer's scores over the catalog for histories[a:b],
    the learned repeat bias on history items included (unless remove_history)."""
    if item_vecs is None:
        item_vecs = scorer.item_vectors(data.item_ids, data.text_emb)
    in_vecs = scorer.history_vectors(data.item_ids, data.text_emb)
    in_vecs = item_vecs if in_vecs is None else in_vecs
    users = scorer.user_vectors([in_vecs[h] for h in histories])
    history_bias = getattr(scorer, "history_bias", None)

    def score_rows(a: int, b: int) -> np.ndarray:
        scores = users[a:b] @ item_vecs.T
        if history_bias is not None and not remove_history:    # the learned repeat bias on history items
            for u, h in enumerate(histories[a:b]):
                rows, bias = history_scores(history_bias(len(h)), h)
                scores[u, rows] += bias
        return scores

    return score_rows


def scorer_ranks(scorer, data: SplitData, split: str = "test", remove_history: bool = False,
                 item_vecs: np.ndarray | None = None) -> np.ndarray:
    """Target ranks of a Scorer (ranker.scorers) on one split."""
    histories, targets = _split(data, split)
    score_rows = scorer_rows(scorer, data, histories, remove_history, item_vecs)
    return ranks_for_scores(score_rows, histories, targets, remove_history)


def history_model_ranks(score_histories, data: SplitData, split: str = "test", remove_history: bool = False,
                        batch: int = 1024) -> np.ndarray:
    """Target ranks of a model that scores raw histories (a peer such as SASRec):
    score_histories(list of int rows, oldest first) -> float[B, N]."""
    histories, targets = _split(data, split)
    return ranks_for_scores(lambda a, b: score_histories(histories[a:b]), histories, targets, remove_history, batch)


def popularity_ranks(data: SplitData, split: str = "test", remove_history: bool = False) -> np.ndarray:
    """Everyone gets the catalog by interaction count (train split, plus valid targets for test)."""
    histories, targets = _split(data, split)
    pop = data.popularity(include_valid=(split == "test")).astype(np.float32)
    return ranks_for_scores(lambda a, b: np.broadcast_to(pop, (b - a, len(pop))), histories, targets, remove_history)


def evaluate_ranks(ranks: np.ndarray, mask: np.ndarray | None = None, ks=DEFAULT_KS) -> EvalResult:
    r = ranks if mask is None else ranks[mask]
    return EvalResult(metrics_from_ranks(r, ks), users=int(len(r)))


def history_share(scorer, data: SplitData, split: str = "test", k: int = 10) -> float:
    """Share of the top-k slots (protocol view: history kept in the ranking) that hold an item of the
    user's own history: how much a model fills its list with what the shopper already has."""
    histories, targets = _split(data, split)
    if not len(targets):
        return 0.0
    item_vecs = scorer.item_vectors(data.item_ids, data.text_emb)
    in_vecs = scorer.history_vectors(data.item_ids, data.text_emb)
    in_vecs = item_vecs if in_vecs is None else in_vecs
    users = scorer.user_vectors([in_vecs[h] for h in histories])
    history_bias = getattr(scorer, "history_bias", None)
    hits = 0
    for s in range(0, len(targets), 1024):
        scores = users[s:s + 1024] @ item_vecs.T
        for u, h in enumerate(histories[s:s + 1024]):
            if history_bias is not None:
                rows, bias = history_scores(history_bias(len(h)), h)
                scores[u, rows] += bias
            top = np.argpartition(-scores[u], k)[:k]
            hits += int(np.isin(top, h).sum())
    return hits / (k * len(targets))
