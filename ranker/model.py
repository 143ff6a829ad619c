"""The two towers, in torch. No data loading, no loss, no index here.

Item tower: frozen MiniLM text vector (384) -> learned linear projection (dim) + a learned
per-item residual vector (zero for items the model never saw: cold start) -> L2 norm.
User tower: the ordered history of item-tower vectors (oldest first, at most max_len) plus
position embeddings -> a small causal transformer (SASRec-style); its output at step t is mixed
with the recency-weighted mean of the items up to t (weight 0.5 per step back, the zero-shot
user) -> L2 norm. A text query is projected by the item tower (zero residual) and enters the
user tower as the most recent history step.
Scores are cosine(user, item) in [-1, 1]; training multiplies them by a learned scale.
Repeat bias (`repeat_bias`): a learned logit added to items already in the history, one value per
how-long-ago bucket (REPEAT_EDGES), so the model learns from the catalog whether shoppers take the
same item again (consumables) or never do (films, durable goods) instead of the recency skip path
pulling the shopper's own items to the top.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

REPEAT_EDGES = (1, 2, 3, 4, 5, 10, 20)
"""Steps back (0 = the newest history item) bucketed as 0, 1, 2, 3, 4, 5-9, 10-19, 20+."""


@dataclass(frozen=True)
class ModelConfig:
    n_items: int
    """Items with a learned residual (the training catalog); rows n_items.. are cold (zero residual)."""
    text_dim: int = 384
    """Width of the frozen text vectors (MiniLM: 384)."""
    dim: int = 256
    """Width of the shared item/user space and of the FAISS index."""
    max_len: int = 50
    """Most recent history items the user tower reads."""
    layers: int = 1
    """Transformer layers in the user tower."""
    heads: int = 2
    """Attention heads per layer."""
    dropout: float = 0.4
    """Dropout inside the user tower and on its inputs."""
    recency_decay: float = 0.5
    """Weight multiplier per step back for the recency-mean skip path."""
    score: str = "cosine"
    """"cosine" (unit towers, learned logit scale) or "dot" (raw inner product: item norms can carry popularity)."""
    recency_mix: bool = True
    """Add the recency-weighted mean of the history to the transformer output (the zero-shot user as a skip path)."""
    residual: bool = True
    """Learn a per-item residual vector on top of the projected text vector."""
    repeat_bias: bool = False
    """Learn a logit bias on items already in the history, by how long ago (see REPEAT_EDGES). False for
    models written before it existed."""
    tied: bool = False
    """The user tower reads the item tower's vectors (True) or its own input item tower (False), so the user
    need not sit next to the items it has already seen."""

    def __post_init__(self) -> None:
        if self.n_items < 0:
            raise ValueError(f"n_items must be >= 0 (got {self.n_items})")
        if self.dim < 8 or self.dim % self.heads:
            raise ValueError(f"dim must be >= 8 and divisible by heads (got dim={self.dim}, heads={self.heads})")
        if not 1 <= self.max_len <= 1000:
            raise ValueError(f"max_len must be in 1..1000 (got {self.max_len})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.score not in ("cosine", "dot"):
            raise ValueError(f"score must be 'cosine' or 'dot' (got {self.score!r})")
        if not 0.0 < self.recency_decay <= 1.0:
            raise ValueError(f"recency_decay must be in (0, 1] (got {self.recency_decay})")

    def to_dict(self) -> dict:
        return asdict(self)


class ItemTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.text_dim, cfg.dim)
        # Row n_items is the cold-start row: zero and never updated (padding_idx).
        self.residual = nn.Embedding(cfg.n_items + 1, cfg.dim, padding_idx=cfg.n_items)
        nn.init.zeros_(self.residual.weight)

    def forward(self, text: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """text: float[n, text_dim]; rows: long[n] residual rows (-1 or >= n_items = cold). -> unit float[n, dim]."""
        x = self.proj(text)
        if rows is not None and self.cfg.residual:
            rows = torch.where((rows < 0) | (rows >= self.cfg.n_items), torch.full_like(rows, self.cfg.n_items), rows)
            x = x + self.residual(rows)
        return F.normalize(x, dim=-1) if self.cfg.score == "cosine" else x


def recency_weights(length: int, decay: float, device=None) -> torch.Tensor:
    """float[L, L]: row t holds decay**(t-s) for s <= t, rows summing to 1 (causal recency mean)."""
    t = torch.arange(length, device=device)
    diff = (t[:, None] - t[None, :]).float()
    w = torch.where(diff >= 0, decay ** diff.clamp(min=0), torch.zeros_like(diff))
    return w / w.sum(dim=1, keepdim=True)


class UserTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, dim_feedforward=2 * cfg.dim, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.mix = nn.Parameter(torch.tensor(1.0))   # weight of the recency-mean skip path

    def forward(self, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """seq: float[B, L, dim] item vectors, oldest first, right-padded; valid: bool[B, L].

        Returns unit float[B, L, dim]: position t is the user after seeing items 0..t.
        """
        B, L, _ = seq.shape
        x = self.drop(seq * valid[..., None]) + self.pos(torch.arange(L, device=seq.device))[None]
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), diagonal=1)
        h = self.encoder(x, mask=causal, src_key_padding_mask=~valid, is_causal=True)
        h = self.norm(h)
        if self.cfg.recency_mix:
            recent = torch.einsum("ts,bsd->btd", recency_weights(L, self.cfg.recency_decay, seq.device),
                                  seq * valid[..., None])
            h = h + self.mix * F.normalize(recent, dim=-1)
        return F.normalize(h, dim=-1) if self.cfg.score == "cosine" else h


class TwoTower(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.item = ItemTower(cfg)
        self.item_in = None if cfg.tied else ItemTower(cfg)
        self.user = UserTower(cfg)
        self.log_scale = nn.Parameter(torch.tensor(3.0))   # logits = exp(log_scale) * cosine; e^3 ~ 20
        # logit added to a history item, per steps-back bucket; starts neutral, the data decides
        self.repeat = nn.Parameter(torch.zeros(len(REPEAT_EDGES) + 1)) if cfg.repeat_bias else None

    def scale(self) -> torch.Tensor:
        if self.cfg.score == "dot":
            return torch.ones((), device=self.log_scale.device)
        return self.log_scale.clamp(max=4.6).exp()      # at most ~100

    def input_items(self, text: torch.Tensor, rows: torch.Tensor | None, items: torch.Tensor | None = None) -> torch.Tensor:
        """The vectors the user tower reads for these items (the item tower's own when tied)."""
        if self.item_in is None:
            return items if items is not None else self.item(text, rows)
        return self.item_in(text, rows)

    def last_user(self, seq: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The user after the whole (right-padded) sequence: float[B, dim] (unit for cosine models)."""
        out = self.user(seq, valid)
        last = valid.long().sum(dim=1).clamp(min=1) - 1
        return out[torch.arange(out.shape[0], device=out.device), last]


def repeat_bucket(steps_back):
    """Bucket index of REPEAT_EDGES for steps back (a long tensor)."""
    return torch.bucketize(steps_back, torch.tensor(REPEAT_EDGES, device=steps_back.device), right=True)


def history_logit_bias(model: TwoTower, inp: torch.Tensor, inp_valid: torch.Tensor, target_valid: torch.Tensor):
    """The repeat bias of one training batch as a sparse triple (target position, item row, logit):
    for every target position (the rows of users[target_valid]), each item of its prefix gets the
    bias of its most recent occurrence. None when the model has no repeat bias.

    inp: long[B, L] item rows, oldest first, right-padded; inp_valid / target_valid: bool[B, L]."""
    if model.repeat is None:
        return None
    B, L = inp.shape
    t, s = torch.tril_indices(L, L, device=inp.device)              # every (t, s) with s <= t
    ok = target_valid[:, t] & inp_valid[:, s]                        # [B, pairs]
    b, k = ok.nonzero(as_tuple=True)
    t, s = t[k], s[k]
    position = (target_valid.flatten().long().cumsum(0) - 1).view(B, L)[b, t]
    item = inp[b, s]
    # keep the most recent occurrence of an item in each prefix: sort by (position, item, s), keep the last
    key = (position * max(model.cfg.n_items, 1) + item) * L + s
    key, order = torch.sort(key)
    pair = key // L
    last = torch.ones_like(pair, dtype=torch.bool)
    last[:-1] = pair[1:] != pair[:-1]
    order = order[last]
    steps = (t - s)[order]
    return position[order], item[order], model.repeat[repeat_bucket(steps)]
