"""`explainrec eval-ranker`: the trained model, both baselines and any peers, side by side, in one run.

Three views of the test split (full ranking, leave-one-out, history = everything before the target):
  * protocol    - history items stay in the ranking (UniSRec/RecBole; the comparison protocol);
  * no_history  - history items removed (what serving does; lifts every method);
  * cold_target - protocol metrics on users whose target never occurs in the train split.
Peers (ranker.peers, e.g. SASRec) are trained here on the same split and ranked the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ranker.data import SplitData, load_split_data
from ranker.evaluate import cold_target_mask, evaluate_ranks, popularity_ranks, scorer_ranks
from ranker.scorers import ZeroShotScorer, load_scorer

METHODS = ("model", "popularity", "zero_shot")
VIEWS = ("cold_target", "no_history")


@dataclass
class EvalReport:
    views: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)   # view -> method -> metrics
    users: dict[str, int] = field(default_factory=dict)                            # view -> users evaluated
    seconds: float = 0.0
    peers: dict[str, dict] = field(default_factory=dict)                           # peer -> how its training went

    @property
    def methods(self) -> list[str]:
        return list(self.views["protocol"])

    def protocol_json(self) -> dict:
        """{"model": {...}, "popularity": {...}, "zero_shot": {...}[, "sasrec": {...}]} for the comparison
        protocol, then "cold_target" and "no_history", each a dict of the same methods in the same shape;
        with peers, "peers": {name: {train_s, epochs, best_epoch, stop_reason, ...}} last."""
        out: dict = {m: self.views["protocol"][m] for m in self.methods}
        for view in VIEWS:
            out[view] = {m: self.views[view][m] for m in self.methods}
        if self.peers:
            out["peers"] = self.peers
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
        for name, t in self.peers.items():
            lines.append(f"{name}: trained {t['train_s']:.0f}s on {t['device']} ({t['threads']} threads), "
                         f"{t['epochs']} epochs, best {t['best_epoch']} (valid ndcg@10 {t['valid_ndcg10']:.4f}), "
                         f"stopped by {t['stop_reason']}")
        lines.append(f"({self.seconds:.1f}s)")
        return "\n".join(lines)


def evaluate_all(data: SplitData, model_scorer, zero_shot=None, peers: Sequence = ()) -> EvalReport:
    """peers: ranker.peers.run.PeerRun, already trained and ranked on `data`."""
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
            **{p.name: p.ranks[remove] for p in peers},
        }
    for view, remove, mask in (("protocol", False, None), ("no_history", True, None), ("cold_target", False, cold)):
        report.views[view] = {m: {k: round(v, 5) for k, v in evaluate_ranks(r, mask).metrics.items()}
                              for m, r in ranks[remove].items()}
        report.users[view] = int(len(data.test_target) if mask is None else mask.sum())
    report.peers = {p.name: p.training_json() for p in peers}
    report.seconds = time.time() - t0
    return report


def run_eval(catalog, model_dir: Path, device: str | None = None, encoder=None, peers: Sequence[str] = (),
             peer_time_budget_s: float | None = None, progress: bool = False) -> EvalReport:
    """peers: names from ranker.peers.KNOWN_PEERS, each trained on this catalog's split before the evaluation."""
    from ranker.encoder import TextEncoder

    scorer = load_scorer(model_dir, device)
    data = load_split_data(catalog, encoder or TextEncoder(scorer.device))
    runs = []
    if peers:
        from ranker.peers.run import run_peer

        runs = [run_peer(name, data, peer_time_budget_s, device, progress) for name in peers]
    return evaluate_all(data, scorer, peers=runs)
