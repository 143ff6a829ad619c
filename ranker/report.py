"""`explainrec eval-ranker`: the trained model and both baselines, side by side, in one run.

Three views of the test split (full ranking, leave-one-out, history = everything before the target):
  * protocol    - history items stay in the ranking (UniSRec/RecBole; the comparison protocol);
  * no_history  - history items removed (what serving does; lifts every method);
  * cold_target - protocol metrics on users whose target never occurs in the train split.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ranker.data import SplitData, load_split_data
from ranker.evaluate import cold_target_mask, evaluate_ranks, popularity_ranks, scorer_ranks
from ranker.scorers import ZeroShotScorer, load_scorer

METHODS = ("model", "popularity", "zero_shot")


@dataclass
class EvalReport:
    views: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)   # view -> method -> metrics
    users: dict[str, int] = field(default_factory=dict)                            # view -> users evaluated
    seconds: float = 0.0

    def protocol_json(self) -> dict:
        """{"model": {...}, "popularity": {...}, "zero_shot": {...}} for the comparison protocol, then
        "cold_target" and "no_history", each a dict of the same three methods in the same shape."""
        out: dict = {m: self.views["protocol"][m] for m in METHODS}
        for view in ("cold_target", "no_history"):
            out[view] = {m: self.views[view][m] for m in METHODS}
        return out

    def table(self) -> str:
        lines = []
        for view, methods in self.views.items():
            lines.append(f"[{view}] test users: {self.users[view]}")
            keys = list(next(iter(methods.values())).keys())
            lines.append(f"{'method':<12}" + "".join(f"{k:>11}" for k in keys))
            for m, metrics in methods.items():
                lines.append(f"{m:<12}" + "".join(f"{metrics[k]:>11.4f}" for k in keys))
            lines.append("")
        lines.append(f"({self.seconds:.1f}s)")
        return "\n".join(lines)


def evaluate_all(data: SplitData, model_scorer, zero_shot=None) -> EvalReport:
    t0 = time.time()
    zero_shot = zero_shot or ZeroShotScorer()
    report = EvalReport()
    cold = cold_target_mask(data, "test")
    ranks = {}
    for remove in (False, True):
        ranks[remove] = {
            "model": scorer_ranks(model_scorer, data, "test", remove_history=remove),
            "popularity": popularity_ranks(data, "test", remove_history=remove),
            "zero_shot": scorer_ranks(zero_shot, data, "test", remove_history=remove),
        }
    for view, remove, mask in (("protocol", False, None), ("no_history", True, None), ("cold_target", False, cold)):
        report.views[view] = {m: {k: round(v, 5) for k, v in evaluate_ranks(ranks[remove][m], mask).metrics.items()}
                              for m in METHODS}
        report.users[view] = int(len(data.test_target) if mask is None else mask.sum())
    report.seconds = time.time() - t0
    return report


def run_eval(catalog, model_dir: Path, device: str | None = None, encoder=None) -> EvalReport:
    from ranker.encoder import TextEncoder

    scorer = load_scorer(model_dir, device)
    data = load_split_data(catalog, encoder or TextEncoder(scorer.device))
    return evaluate_all(data, scorer)
