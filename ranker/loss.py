"""Training loss: softmax cross-entropy over the whole catalog (no sampled negatives).

With a few thousand items the full softmax is cheaper than mining negatives and is the
unbiased version of in-batch negatives (which over-penalise popular items).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def full_softmax_loss(users: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                      scale: torch.Tensor | float) -> torch.Tensor:
    """users: unit float[P, d]; items: unit float[N, d]; targets: long[P] rows of items. Mean CE over P."""
    logits = scale * (users @ items.T)
    return F.cross_entropy(logits, targets)
