"""One peer, trained and ranked: what eval-ranker puts beside the model."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ranker.data import SplitData
from ranker.evaluate import history_model_ranks
from ranker.peers.config import SASRecConfig
from ranker.peers.fit import FitSummary, fit_sasrec
from ranker.peers.score import SASRecScores


@dataclass
class PeerRun:
    name: str
    ranks: dict[bool, np.ndarray]       # remove_history -> test target ranks
    summary: FitSummary
    config: dict

    def training_json(self) -> dict:
        """Training time, epochs, stop reason, valid score and the hyper-parameters (eval-ranker's "peers")."""
        return {**asdict(self.summary), "config": self.config}


def run_peer(name: str, data: SplitData, time_budget_s: float | None = None, device: str | None = None,
             progress: bool = False, **overrides) -> PeerRun:
    """Trains peer `name` on data's train split (selected on valid) and ranks the test split both ways."""
    if name != "sasrec":
        raise ValueError(f"unknown peer {name!r}")
    values = dict(overrides)
    if time_budget_s is not None:
        values["time_budget_s"] = time_budget_s
    if device:
        values["device"] = device
    cfg = SASRecConfig(**values)
    model, summary = fit_sasrec(data, cfg, progress)
    scores = SASRecScores(model, summary.device)
    ranks = {remove: history_model_ranks(scores, data, "test", remove_history=remove, batch=cfg.eval_batch_size)
             for remove in (False, True)}
    return PeerRun(name, ranks, summary, asdict(cfg))
