"""Training loss: softmax cross-entropy over the whole catalog (no sampled negatives).

With a few thousand items the full softmax is cheaper than mining negatives and is the
unbiased version of in-batch negatives (which over-penalise popular items).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def full_softmax_loss(users: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                      scale: torch.Tensor | float, logit_bias=None) -> torch.Tensor:
    """users: unit float[P, d]; items: unit float[N, d]; targets: long[P] rows of items. Mean CE over P.

    logit_bias: optional sparse (position long[K], item long[K], value float[K]) added to those logits
    (the repeat bias on history items, ranker.model.history_logit_bias)."""
    logits = scale * (users @ items.T)
    if logit_bias is not None:
        position, item, value = logit_bias
        logits = logits.index_put((position, item), value, accumulate=True)
    return F.cross_entropy(logits, targets)
