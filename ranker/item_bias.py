"""Evidence bias: what `retrain` makes of the events of items the towers have no residual for.

An item whose first events arrived after the serving model was trained (a new item) stays on its
text path in a retrain (ranker.retrain says why: residuals fitted from ~10 events ranked new items
worse). What those events do say reliably is how much the item is taken: on Amazon data an item's
event count predicts whether it is somebody's next item, and for warm items the residuals have
learned that, while the text path alone has not. So a retrain gives each such item a score offset

    bias = alpha * log(1 + events) + offset          (items without a residual and with >= 1 event)

with (alpha, offset) picked on the valid split: the pair with the best pooled valid NDCG@10 among
those that keep the warm valid users (target not such an item) within one standard error of no
bias. Every other item gets 0, so an item upserted later, or one with no events, ranks as before.

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

log = logging.getLogger(__name__)

BIAS_FILE = "item_bias.json"
DEFAULT_ALPHAS = (0.01, 0.02, 0.03, 0.04, 0.06)
DEFAULT_OFFSETS = (-0.1, -0.08, -0.06, -0.04, -0.02, 0.0)


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


def rebias(scorer, bias: dict[str, float]):
    """The scorer with its evidence bias (if any) replaced by this one."""
    from ranker.scorers import ConcatScorer

    if isinstance(scorer, ConcatScorer) and isinstance(scorer.members[-1], ItemBiasScorer):
        members, weights = scorer.members[:-1], scorer.weights[:-1]
        scorer = members[0] if len(members) == 1 and weights[0] == 1.0 else ConcatScorer(members, weights)
    return with_bias(scorer, bias)


def _valid_scores(scorer, data) -> np.ndarray:
    """float32[valid users, N]: the scorer's valid scores (repeat bias included), computed once."""
    from ranker.scorers import history_scores

    item_vecs = scorer.item_vectors(data.item_ids, data.text_emb)
    in_vecs = scorer.history_vectors(data.item_ids, data.text_emb)
    in_vecs = item_vecs if in_vecs is None else in_vecs
    users = scorer.user_vectors([in_vecs[h] for h in data.valid_hist])
    scores = users @ item_vecs.T
    history_bias = getattr(scorer, "history_bias", None)
    if history_bias is not None:
        for u, h in enumerate(data.valid_hist):
            rows, b = history_scores(history_bias(len(h)), h)
            scores[u, rows] += b
    return scores.astype(np.float32, copy=False)


def _per_user_ndcg(ranks: np.ndarray) -> np.ndarray:
    return np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)


def choose_evidence_bias(scorer, data, counts: np.ndarray, cold: np.ndarray,
                         alphas: Sequence[float] = DEFAULT_ALPHAS, offsets: Sequence[float] = DEFAULT_OFFSETS):
    """Picks (alpha, offset) on valid (see the module docstring). counts: float[N] events per item row
    (what the model is trained on); cold: bool[N] rows without a residual.
    Returns (scorer with the bias, bias by item id, a summary dict for config.json)."""
    from ranker.metrics import target_ranks

    eligible = np.asarray(cold, dtype=bool) & (np.asarray(counts) >= 1)
    if not eligible.any() or not len(data.valid_target):
        return scorer, {}, {"alpha": 0.0, "offset": 0.0, "items": 0}
    base = _valid_scores(scorer, data)
    lp = np.log1p(np.asarray(counts, dtype=np.float64)).astype(np.float32)
    warm = ~eligible[data.valid_target]
    base_gain = _per_user_ndcg(target_ranks(base, data.valid_target))
    n_warm = int(warm.sum())
    floor = (base_gain[warm].mean() - base_gain[warm].std(ddof=1) / np.sqrt(n_warm)) if n_warm >= 2 else -np.inf

    def summary3(gain: np.ndarray) -> tuple[float, float, float]:   # (all, warm, biased-target users)
        return (float(gain.mean()), float(gain[warm].mean()) if warm.any() else 0.0,
                float(gain[~warm].mean()) if (~warm).any() else 0.0)

    results = {(0.0, 0.0): summary3(base_gain)}
    for alpha in alphas:
        for offset in offsets:
            shift = np.where(eligible, alpha * lp + offset, 0.0).astype(np.float32)
            gain = _per_user_ndcg(target_ranks(base + shift[None], data.valid_target))
            results[(alpha, offset)] = summary3(gain)
    allowed = [k for k, v in results.items() if v[1] >= floor]
    alpha, offset = max(allowed, key=lambda k: (round(results[k][0], 6), -abs(k[0]), -abs(k[1])))
    bias = evidence_bias(data.item_ids, counts, cold, alpha, offset) if alpha or offset else {}
    table = {f"{a},{o}": {"ndcg@10": round(v[0], 5), "warm_ndcg@10": round(v[1], 5), "biased_ndcg@10": round(v[2], 5)}
             for (a, o), v in results.items()}
    log.info("evidence bias: %d items with events and no residual, %d valid users with such a target; "
             "alpha=%s offset=%s (valid ndcg@10 %.5f vs %.5f without)", int(eligible.sum()), int((~warm).sum()),
             alpha, offset, results[(alpha, offset)][0], results[(0.0, 0.0)][0])
    summary = {"alpha": alpha, "offset": offset, "items": len(bias), "valid_users": int((~warm).sum()),
               "warm_floor": round(float(floor), 5) if np.isfinite(floor) else None, "valid": table}
    return with_bias(scorer, bias), bias, summary


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
