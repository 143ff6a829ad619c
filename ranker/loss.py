"""Training losses: softmax cross-entropy over the whole catalog, or over sampled negatives with a
logQ correction when the catalog is too big for that (`TrainConfig.full_softmax_max_items`).

Full softmax: with a few thousand items it is cheap and exact (the unbiased version of in-batch
negatives, which over-penalise popular items).

Sampled softmax (Jean et al. 2015; the logQ correction of Yi et al. 2019): K negatives are drawn
with replacement from a proposal q (`NegativeSampler`: popularity mixed with uniform), and each
negative's logit is lowered by log(K q_j), its expected count. Then sum_j exp(s_j - log(K q_j))
over the draws is an unbiased estimate of the full partition sum, so the loss tends to the full
softmax's as K grows, whatever q is; without the correction popular items would be pushed down
for being drawn often. A draw equal to the position's own target (an accidental hit) is masked:
the target is already in the positive column. Cost: P x K logits instead of P x N, and the item
towers run only on the rows a step touches.
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


def sampled_softmax_loss(users: torch.Tensor, pos_items: torch.Tensor, neg_items: torch.Tensor,
                         neg_log_count: torch.Tensor, target_rows: torch.Tensor, neg_rows: torch.Tensor,
                         scale: torch.Tensor | float, logit_bias=None) -> torch.Tensor:
    """users: float[P, d]; pos_items: float[P, d] each position's target vector; neg_items: float[K, d]
    negatives shared by the batch; neg_log_count: float[K] log(K q_j) of each draw; target_rows: long[P]
    and neg_rows: long[K] catalog rows (a draw equal to the position's target is masked). Mean CE over P.

    logit_bias: as in full_softmax_loss, by (position, catalog row): added to the positive where the row is
    the position's target and to every draw of that row among the negatives."""
    pos = scale * (users * pos_items).sum(dim=-1)                               # [P]
    neg = scale * (users @ neg_items.T) - neg_log_count[None]                   # [P, K]
    if logit_bias is not None:
        position, row, value = logit_bias
        hit = row == target_rows[position]
        pos = pos.index_put((position[hit],), value[hit], accumulate=True)
        # every column j with neg_rows[j] == row: sorted draws, a [lo, hi) range per bias entry
        sorted_rows, order = torch.sort(neg_rows)
        lo = torch.searchsorted(sorted_rows, row)
        count = torch.searchsorted(sorted_rows, row, right=True) - lo
        entry = torch.repeat_interleave(torch.arange(len(row), device=row.device), count)
        offset = torch.arange(len(entry), device=row.device) - torch.repeat_interleave(count.cumsum(0) - count, count)
        neg = neg.index_put((position[entry], order[lo[entry] + offset]), value[entry], accumulate=True)
    neg = neg.masked_fill(neg_rows[None] == target_rows[:, None], float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(users), dtype=torch.long, device=users.device))


class NegativeSampler:
    """Draws negatives with replacement from q = (1 - uniform) * popularity share + uniform / N.

    Popular items are the hard negatives (they are what a half-trained model ranks high); the uniform
    part keeps every item in reach (the mixed negatives of Yang et al. 2020) and bounds log q from below.
    popularity: float[N] train counts (smoothed by +1 so no item has q = 0 through it)."""

    def __init__(self, popularity, k: int, uniform: float = 0.5, device: str | torch.device = "cpu",
                 generator: torch.Generator | None = None):
        if k < 1:
            raise ValueError(f"negatives must be >= 1 (got {k})")
        if not 0.0 <= uniform <= 1.0:
            raise ValueError(f"uniform share must be in [0, 1] (got {uniform})")
        pop = torch.as_tensor(popularity, dtype=torch.float64) + 1.0
        n = len(pop)
        self.q = ((1.0 - uniform) * pop / pop.sum() + uniform / n).to(device=device, dtype=torch.float32)
        self._cdf = torch.cumsum(pop / pop.sum(), 0).to(device=device, dtype=torch.float32)
        self.k, self.n, self.uniform, self.device, self.generator = k, n, uniform, device, generator

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows long[K], log expected count float[K] = log(K q_row))."""
        g = self.generator
        by_pop = torch.searchsorted(self._cdf, torch.rand(self.k, device=self.device, generator=g)).clamp(max=self.n - 1)
        uniform = torch.randint(0, self.n, (self.k,), device=self.device, generator=g)
        pick = torch.rand(self.k, device=self.device, generator=g) < self.uniform
        rows = torch.where(pick, uniform, by_pop)
        return rows, torch.log(self.k * self.q[rows])
