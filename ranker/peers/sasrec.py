"""SASRec (Kang & McAuley, ICDM 2018) as RecBole 1.2.1 builds it: item + learned position embeddings,
LayerNorm, dropout, a causal transformer encoder; the output at the newest position is the user, and
its inner product with the (tied) item embedding table scores every item.

Item ids are catalog rows + 1; id 0 is padding (its embedding is initialised like the others, as in
RecBole, but never trained as an input and never ranked).
"""
from __future__ import annotations

import torch
from torch import nn

from ranker.peers.config import SASRecConfig
from ranker.peers.transformer import TransformerEncoder, causal_padding_mask

PAD = 0


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        """n_items: catalog size (the embedding table has n_items + 1 rows, row 0 = padding)."""
        super().__init__()
        self.cfg = cfg
        self.item_embedding = nn.Embedding(n_items + 1, cfg.hidden_size, padding_idx=PAD)
        self.position_embedding = nn.Embedding(cfg.max_seq_length, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.encoder = TransformerEncoder(cfg.n_layers, cfg.hidden_size, cfg.n_heads, cfg.inner_size,
                                          cfg.hidden_dropout, cfg.attn_dropout, cfg.layer_norm_eps)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # RecBole: normal(0, initializer_range) for Linear and Embedding (the padding row too), zero
        # biases, LayerNorm = identity
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.cfg.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """seq: long[B, L] item ids, oldest first, right-padded with 0; lengths: long[B] >= 1 -> users float[B, H]."""
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.dropout(self.norm(self.item_embedding(seq) + self.position_embedding(positions)[None]))
        x = self.encoder(x, causal_padding_mask(seq != PAD))
        return x[torch.arange(len(seq), device=seq.device), lengths - 1]

    def users(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """forward() in groups of similar length, each cut to its longest row: the same outputs (padding is
        masked), but a batch of mostly short prefixes no longer pays for its longest one at every row."""
        if len(seq) <= 1:
            return self.forward(seq, lengths)
        group = torch.ceil(torch.log2(lengths.float())).long()      # lengths 1 | 2 | 3-4 | 5-8 | ... share a group
        out = torch.empty(len(seq), self.cfg.hidden_size, device=seq.device)
        for g in torch.unique(group).tolist():
            rows = torch.nonzero(group == g).squeeze(1)
            sub_len = lengths[rows]
            out[rows] = self.forward(seq[rows, :int(sub_len.max())], sub_len)
        return out

    def logits(self, users: torch.Tensor) -> torch.Tensor:
        """users float[B, H] -> float[B, n_items + 1] over every id, padding included (RecBole's CE)."""
        return users @ self.item_embedding.weight.T
