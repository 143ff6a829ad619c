"""Trains SASRec the way RecBole's Trainer does: Adam, cross-entropy over every item, one full-ranking
valid NDCG@10 per epoch, early stopping (a tie counts as progress; stop once more than `stopping_step`
epochs in a row did not reach the best), the best epoch's weights kept. Plus a wall-clock budget,
so a CPU run ends: no new epoch starts once `time_budget_s` is spent."""
from __future__ import annotations

import copy
import json
import logging
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ranker.data import SplitData
from ranker.evaluate import evaluate_ranks, history_model_ranks
from ranker.peers.config import SASRecConfig
from ranker.peers.examples import batches, prefix_examples
from ranker.peers.sasrec import SASRec
from ranker.peers.score import SASRecScores

log = logging.getLogger(__name__)


@dataclass
class FitSummary:
    """How a peer's training went (what eval-ranker's JSON reports under "peers")."""

    train_s: float                      # wall clock of the whole fit, valid passes included
    epochs: int                         # epochs run
    best_epoch: int                     # the one whose weights are kept (1-based)
    stop_reason: str                    # "early_stopping", "time_budget" or "max_epochs"
    valid_ndcg10: float                 # at the best epoch
    examples: int                       # training examples (prefix -> next item) per epoch
    device: str
    threads: int
    history: list[dict] = field(default_factory=list)   # per epoch: loss, train_s, valid ndcg@10


def fit_sasrec(data: SplitData, cfg: SASRecConfig, progress: bool = False) -> tuple[SASRec, FitSummary]:
    """Trains on data.train_seqs, selects on the valid split. Returns (the best model, in eval mode; summary)."""
    from ranker.encoder import default_device
    from ranker.train import cpu_threads

    t_start = time.time()
    device = cfg.device or default_device()
    threads = torch.get_num_threads()
    if device == "cpu":
        threads = cpu_threads(cfg.threads)
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    examples = prefix_examples(data.train_seqs, cfg.max_seq_length)
    model = SASRec(data.n_items, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scores = SASRecScores(model, device)
    best_state, best, best_epoch, since_best = copy.deepcopy(model.state_dict()), -1.0, 0, 0
    history: list[dict] = []
    stop_reason = "max_epochs"
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.time()
        model.train()
        total, steps = 0.0, 0
        for seqs, lengths, targets in batches(examples, cfg.train_batch_size, rng):
            users = model.users(torch.as_tensor(seqs, device=device), torch.as_tensor(lengths, device=device))
            loss = F.cross_entropy(model.logits(users), torch.as_tensor(targets, device=device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
        train_s = time.time() - t0
        valid = evaluate_ranks(history_model_ranks(scores, data, "valid", batch=cfg.eval_batch_size)).score
        row = {"epoch": epoch, "loss": round(total / max(steps, 1), 5), "train_s": round(train_s, 2),
               "valid_ndcg@10": round(valid, 5)}
        history.append(row)
        if progress:
            print("sasrec " + json.dumps(row), file=sys.stderr, flush=True)
        if valid >= best:
            best, best_epoch, since_best = valid, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
            if since_best > cfg.stopping_step:
                stop_reason = "early_stopping"
                break
        if time.time() - t_start > cfg.time_budget_s:
            log.info("sasrec: time budget of %.0fs spent after epoch %d", cfg.time_budget_s, epoch)
            stop_reason = "time_budget"
            break
    model.load_state_dict(best_state)
    model.eval()
    summary = FitSummary(train_s=round(time.time() - t_start, 1), epochs=len(history), best_epoch=best_epoch,
                         stop_reason=stop_reason, valid_ndcg10=round(best, 5), examples=len(examples),
                         device=device, threads=threads, history=history)
    return model, summary
