"""The causal transformer encoder SASRec reads a sequence with: BERT-style post-LayerNorm blocks as in
RecBole's `TransformerEncoder` (the SASRec paper's 1x1 convolutions as Linear layers).

Per block: x = LN(x + Dropout(Dense(Attention(x)))), then x = LN(x + Dropout(W2 act(W1 x))).
Dropout on the attention probabilities; masked scores get -10000 added before the softmax.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -10000.0     # added to the score of a key a query may not see (RecBole's value)


def causal_padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """valid: bool[B, L] (False = padding) -> additive float[B, 1, L, L]: query i sees keys j <= i that are items."""
    L = valid.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=valid.device).tril()
    allowed = valid[:, None, None, :] & causal[None, None]
    return torch.zeros(allowed.shape, device=valid.device).masked_fill(~allowed, MASKED)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, hidden_dropout: float, attn_dropout: float, eps: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.attn_dropout = attn_dropout
        self.out_dropout = nn.Dropout(hidden_dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, L, H = x.shape
        return x.view(B, L, self.heads, H // self.heads).transpose(1, 2)        # [B, heads, L, H/heads]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: float[B, L, H]; mask: additive float[B, 1, L, L] -> float[B, L, H]."""
        # scaled_dot_product_attention: softmax(q k^T / sqrt(d) + mask), dropout on the probabilities, @ v
        ctx = F.scaled_dot_product_attention(self._split(self.query(x)), self._split(self.key(x)),
                                             self._split(self.value(x)), attn_mask=mask,
                                             dropout_p=self.attn_dropout if self.training else 0.0)
        ctx = ctx.transpose(1, 2).reshape(x.shape)
        return self.norm(self.out_dropout(self.dense(ctx)) + x)


class FeedForward(nn.Module):
    def __init__(self, hidden: int, inner: int, dropout: float, eps: float):
        super().__init__()
        self.dense_1 = nn.Linear(hidden, inner)
        self.dense_2 = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # exact (erf) GELU, RecBole's "gelu"
        return self.norm(self.dropout(self.dense_2(F.gelu(self.dense_1(x)))) + x)


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, hidden_dropout: float, attn_dropout: float, eps: float):
        super().__init__()
        self.attention = SelfAttention(hidden, heads, hidden_dropout, attn_dropout, eps)
        self.feed_forward = FeedForward(hidden, inner, hidden_dropout, eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attention(x, mask))


class TransformerEncoder(nn.Module):
    def __init__(self, n_layers: int, hidden: int, heads: int, inner: int, hidden_dropout: float,
                 attn_dropout: float, eps: float):
        super().__init__()
        self.blocks = nn.ModuleList(Block(hidden, heads, inner, hidden_dropout, attn_dropout, eps)
                                    for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x
