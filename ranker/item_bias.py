"""Evidence bias: what `retrain` makes of the events of items the towers have no residual for.

An item whose first events arrived after the serving model was trained (a new item) stays on its
text path in a retrain (ranker.retrain says why: residuals fitted from ~10 events ranked new items
worse). What those events do say reliably is how much the item is taken: on Amazon data an item's
event count predicts whether it is somebody's next item, and for warm items the residuals have
learned that, while the text path alone has not. So a retrain gives each such item a score offset

    bias = alpha * log(1 + events) + offset          (items without a residual and with >= 1 event)

with (alpha, offset) picked on the valid split: the pair that ranks best the valid users whose target
gets a bias, among those that keep the pooled valid NDCG@10 not below no bias and the warm valid users
(target not such an item) within one standard error of the serving model (the replay's own criterion,
on valid; without the serving model's ranks, of no bias). Every other item gets 0, so an item upserted
later, or one with no events, ranks as before.

The offset is served as one more inner-product dimension (item: its bias, user: 1), so the FAISS
index still serves score = user . item in one search. Measured in bench/bench_loop.py (README,
"The loop").
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ranker.metrics import ndcg_gains

log = logging.getLogger(__name__)

BIAS_FILE = "item_bias.json"
DEFAULT_ALPHAS = tuple(round(0.005 * k, 3) for k in range(1, 17))        # 0.005 .. 0.08
DEFAULT_OFFSETS = tuple(round(-0.01 * k, 2) for k in range(16, -3, -1))   # -0.16 .. 0.02


class ItemBiasScorer:
    """A one-dimensional Scorer member: item -> its bias (0 when it has none), user -> 1."""

    name = "item_bias"
    dim = 1

    def __init__(self, bias: dict[str, float]):
        self.bias = {str(k): float(v) for k, v in bias.items()}

    def item_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        return np.array([[self.bias.get(i, 0.0)] for i in item_ids], dtype=np.float32).reshape(-1, 1)

    def history_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> None:
        return None

    def query_vector(self, text_emb: np.ndarray) -> np.ndarray:
        return np.ones(1, dtype=np.float32)

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.ones((len(histories), 1), dtype=np.float32)

    def history_bias(self, n: int) -> None:
        return None


def evidence_bias(item_ids: Sequence[str], counts: np.ndarray, cold: np.ndarray, alpha: float,
                  offset: float) -> dict[str, float]:
    """{item id: alpha * log1p(count) + offset} for cold items (no residual) with >= 1 event."""
    counts = np.asarray(counts, dtype=np.float64)
    eligible = np.asarray(cold, dtype=bool) & (counts >= 1)
    return {item_ids[r]: round(float(alpha * np.log1p(counts[r]) + offset), 6) for r in np.flatnonzero(eligible)}


def with_bias(scorer, bias: dict[str, float]):
    """scorer + the bias member, as one ConcatScorer (no bias: the scorer itself)."""
    from ranker.scorers import ConcatScorer

    if not bias:
        return scorer
    members = scorer.members if isinstance(scorer, ConcatScorer) else [scorer]
    weights = scorer.weights if isinstance(scorer, ConcatScorer) else [1.0]
    return ConcatScorer([*members, ItemBiasScorer(bias)], [*weights, 1.0])


def _scores(scorer, data, hist: Sequence[np.ndarray]) -> np.ndarray:
    """float32[users, N]: the scorer's scores for these histories (repeat bias included)."""
    from ranker.evaluate import scorer_rows

    return scorer_rows(scorer, data, hist)(0, len(hist)).astype(np.float32, copy=False)


def _floor(gain: np.ndarray) -> float:
    """Mean per-user NDCG@10 minus one standard error (-inf for fewer than 2 users)."""
    return float(gain.mean() - gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) >= 2 else -np.inf


def choose_evidence_bias(scorer, data, counts: np.ndarray, cold: np.ndarray,
                         alphas: Sequence[float] = DEFAULT_ALPHAS, offsets: Sequence[float] = DEFAULT_OFFSETS,
                         reference_ranks: np.ndarray | None = None):
    """Picks (alpha, offset) on valid: the best NDCG@10 of the valid users whose target gets a bias,
    among the pairs that keep the pooled valid NDCG@10 not below no bias and the other (warm) valid
    users within one standard error of the serving model (the replay's own criterion, applied to valid).
    counts: float[N] events per item row; cold: bool[N] rows without a residual.
    reference_ranks: int[valid users], the serving model's valid target ranks (retrain's "before").
    The warm floor is the lower of its warm users' NDCG@10 and this scorer's without a bias, each minus
    one standard error: a fine-tune that raised the warm users may spend that gain on the new items,
    never more (measured in the replay, README "The loop": the floor of no bias alone kept new items
    at x1.5, .0562 -> .0842, while warm rose .0809 -> .0824). Without it, the floor is no bias's.
    Returns (scorer with the bias, bias by item id, a summary dict for config.json)."""
    eligible = np.asarray(cold, dtype=bool) & (np.asarray(counts) >= 1)
    if not eligible.any() or not len(data.valid_target):
        return scorer, {}, {"alpha": 0.0, "offset": 0.0, "items": 0}
    targets = data.valid_target
    base = _scores(scorer, data, data.valid_hist)
    t_score = base[np.arange(len(targets)), targets]
    # the rank of a target is the items scoring above it. For a user whose target gets no bias, the
    # unbiased items above it never change: only the biased columns are compared again for each pair
    # (a biased target moves against every item).
    cols = np.flatnonzero(eligible)
    above_fixed = (base[:, ~eligible] > t_score[:, None]).sum(axis=1)
    sub = base[:, cols]
    lp = np.log1p(np.asarray(counts, dtype=np.float64)[cols]).astype(np.float32)
    col_of = np.full(data.n_items, -1)
    col_of[cols] = np.arange(len(cols))
    tcol = col_of[targets]
    biased = tcol >= 0
    warm = ~biased

    fixed_of_biased = base[biased][:, ~eligible]

    def gains(shift: np.ndarray) -> np.ndarray:
        t = t_score + np.where(biased, shift[np.maximum(tcol, 0)], 0.0)
        above = above_fixed.copy()
        above[biased] = (fixed_of_biased > t[biased][:, None]).sum(axis=1)
        return ndcg_gains(above + ((sub + shift[None]) > t[:, None]).sum(axis=1), 10)

    def summary3(gain: np.ndarray) -> tuple[float, float, float]:   # (all, warm, biased-target users)
        return (float(gain.mean()), float(gain[warm].mean()) if warm.any() else 0.0,
                float(gain[biased].mean()) if biased.any() else 0.0)

    base_gain = gains(np.zeros(len(cols), np.float32))
    floor = _floor(base_gain[warm])
    serving_floor = None
    if reference_ranks is not None:
        if len(reference_ranks) != len(targets):
            raise ValueError(f"reference_ranks: {len(reference_ranks)} ranks for {len(targets)} valid users")
        serving_floor = _floor(ndcg_gains(reference_ranks, 10)[warm])
        floor = min(floor, serving_floor)
    results = {(0.0, 0.0): summary3(base_gain)}
    for alpha in alphas:
        for offset in offsets:
            results[(alpha, offset)] = summary3(gains((alpha * lp + offset).astype(np.float32)))
    pooled0 = results[(0.0, 0.0)][0]
    allowed = [k for k, v in results.items() if v[1] >= floor and v[0] >= pooled0]
    alpha, offset = max(allowed, key=lambda k: (round(results[k][2], 6), round(results[k][0], 6), -abs(k[0])))
    bias = evidence_bias(data.item_ids, counts, cold, alpha, offset) if alpha or offset else {}
    table = {f"{a},{o}": {"ndcg@10": round(v[0], 5), "warm_ndcg@10": round(v[1], 5), "biased_ndcg@10": round(v[2], 5)}
             for (a, o), v in results.items() if (a, o) in ((0.0, 0.0), (alpha, offset)) or v[1] >= floor}
    log.info("evidence bias: %d items with events and no residual, %d valid users with such a target; "
             "alpha=%s offset=%s (their valid ndcg@10 %.5f vs %.5f without; pooled %.5f vs %.5f; warm floor %.5f)", len(cols),
             int(biased.sum()), alpha, offset, results[(alpha, offset)][2], results[(0.0, 0.0)][2],
             results[(alpha, offset)][0], pooled0, floor)
    summary = {"alpha": alpha, "offset": offset, "items": len(bias), "valid_users": int(biased.sum()),
               "warm_floor": round(float(floor), 5) if np.isfinite(floor) else None,
               "serving_warm_floor": (round(float(serving_floor), 5)
                                      if serving_floor is not None and np.isfinite(serving_floor) else None),
               "valid": table}
    return with_bias(scorer, bias), bias, summary


def leave_one_out_ranks(scorer, data, hist: Sequence[np.ndarray], targets: np.ndarray, counts: np.ndarray,
                        bias: dict[str, float], alpha: float, offset: float) -> np.ndarray:
    """Target ranks where each target's bias is recounted without the user's own event (counts - 1 for
    that target only): measuring on held-out events that the bias counted, no target counts itself."""
    from ranker.metrics import target_ranks

    scores = _scores(scorer, data, hist)
    counts = np.asarray(counts, dtype=np.float64)
    for u, t in enumerate(targets):
        full = bias.get(data.item_ids[t])
        if full is not None:
            n = counts[t] - 1
            scores[u, t] += (alpha * np.log1p(n) + offset if n >= 1 else 0.0) - full
    return target_ranks(scores, targets)


def write_bias(model_dir: Path, bias: dict[str, float]) -> None:
    (Path(model_dir) / BIAS_FILE).write_text(json.dumps(bias))


def load_bias(model_dir: Path) -> dict[str, float]:
    """The version's bias by item id ({} when it has none). A file that does not parse fails the load."""
    path = Path(model_dir) / BIAS_FILE
    if not path.exists():
        return {}
    bias = json.loads(path.read_text())
    if not isinstance(bias, dict) or not all(isinstance(v, (int, float)) for v in bias.values()):
        raise ValueError(f"{path}: expected a JSON object of item id -> number")
    return bias
