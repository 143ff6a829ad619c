"""A trained SASRec as the evaluator sees it: histories (catalog rows) -> scores over the catalog."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ranker.peers.examples import pad_histories
from ranker.peers.sasrec import SASRec


class SASRecScores:
    """Callable: histories (int rows, oldest first, each non-empty) -> float32[B, N] (row order of the catalog)."""

    def __init__(self, model: SASRec, device: str):
        self.model = model
        self.device = device

    @torch.no_grad()
    def __call__(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            seqs, lengths = pad_histories(histories, self.model.cfg.max_seq_length)
            users = self.model.users(torch.as_tensor(seqs, device=self.device), torch.as_tensor(lengths, device=self.device))
            return self.model.logits(users)[:, 1:].float().cpu().numpy()     # drop the padding id
        finally:
            self.model.train(was_training)
