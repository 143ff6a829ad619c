"""The user tower's answer for serving, in numpy: only the last step, one shopper at a time.

`TwoTower.last_user` runs the whole causal transformer over every step of a right-padded batch
and keeps the last step. Serving needs only that step, and in the last layer the last step is
one attention query plus one feed-forward row: the other steps there only give keys and values.
So this computes, per shopper and with no padding: every layer but the last over all steps, then
the last layer's keys and values for all steps and its query, attention and feed-forward for
the last step alone. The same maths as torch in eval mode (no dropout), to float rounding
(`tests/test_user_tower_np.py`), at a fraction of the work and without torch's per-call overhead
(a serving batch is 1-32 shoppers of a few to 50 steps).

One shopper at a time on purpose: a shopper's vector then depends only on their history, never
on who else is in the batch, so a batched Recommend is bit-for-bit the same as a lone one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from scipy.special import erf

_SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))


def _gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU torch's TransformerEncoderLayer uses for activation="gelu"."""
    return np.float32(0.5) * x * (np.float32(1.0) + erf(x * _SQRT_HALF))


def _standardize(x: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm without its affine part (folded into the next product where there is one)."""
    inv_d = np.float32(1.0 / x.shape[-1])
    xc = x - x.sum(axis=-1, keepdims=True) * inv_d
    return xc / np.sqrt((xc * xc).sum(axis=-1, keepdims=True) * inv_d + np.float32(eps))


def _unit(x: np.ndarray) -> np.ndarray:
    """F.normalize: x / max(||x||, 1e-12)."""
    return x / max(float(np.sqrt(x @ x)), 1e-12)


def _split_heads(wkv: np.ndarray, bkv: np.ndarray, d: int, heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The key and value weights per head, [..., H, d, hd] each, and the value bias [..., H, 1, hd]
    (leading axes: the members of a stacked tower)."""
    lead, hd = wkv.shape[:-2], d // heads

    def per_head(w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(w.reshape(*lead, d, heads, hd), -2, -3))

    return per_head(wkv[..., :d]), per_head(wkv[..., d:]), np.ascontiguousarray(bkv[..., d:].reshape(*lead, heads, 1, hd))


def _last_step_heads(xs: np.ndarray, q: np.ndarray, wk: np.ndarray, wv: np.ndarray, bv: np.ndarray) -> np.ndarray:
    """Attention of the last step's query over every step, per head, without every step's key and
    value (n x d x 2d of work for up to 50 steps): q . (x_t Wk + bk) = x_t . (Wk q) + q . bk, and q . bk
    is the same for every step, so softmax drops it; the values' weighted sum is (sum_t a_t x_t) Wv
    + bv, as the weights sum to one. xs [..., n, d] standardized steps; q [..., H, 1, hd] (scaled);
    wk, wv [..., H, d, hd]; bv [..., H, 1, hd]. Returns [..., H, hd]."""
    r = np.swapaxes(wk @ np.swapaxes(q, -1, -2), -1, -3)[..., 0, :, :]   # [..., d, H]: Wk q per head
    scores = xs @ r                                                        # [..., n, H]
    scores = np.exp(scores - scores.max(axis=-2, keepdims=True))
    scores /= scores.sum(axis=-2, keepdims=True)
    mixed = np.swapaxes(scores, -1, -2) @ xs                               # [..., H, d]
    return (mixed[..., :, None, :] @ wv + bv)[..., 0, :]                   # [..., H, hd]


@dataclass(frozen=True)
class _Layer:
    """One pre-norm encoder layer, weights transposed for `x @ w` and each LayerNorm's scale and
    shift folded into the product after it: LN(x) @ W + b = std(x) @ (g * W) + (beta @ W + b)."""
    wq: np.ndarray      # [d, d]
    bq: np.ndarray
    wkv: np.ndarray     # [d, 2d]: keys and values in one product
    bkv: np.ndarray
    wo: np.ndarray      # [d, d]
    bo: np.ndarray
    w1: np.ndarray      # [d, ff]
    b1: np.ndarray
    w2: np.ndarray      # [ff, d]
    b2: np.ndarray
    eps1: float
    eps2: float


def _fold(g: np.ndarray, beta: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(g * W, beta @ W + b) for W [in, out] (float64 while folding, float32 after)."""
    w64 = w.astype(np.float64)
    return (np.ascontiguousarray((g.astype(np.float64)[:, None] * w64).astype(np.float32)),
            (beta.astype(np.float64) @ w64 + b).astype(np.float32))


class NumpyUserTower:
    """`last_user` of a TwoTower in eval mode. Build with `NumpyUserTower.supports(model)` first."""

    def __init__(self, model):
        import torch

        tower = model.user
        cfg = model.cfg
        self.dim, self.heads, self.max_len = cfg.dim, cfg.heads, cfg.max_len
        self.head_dim = cfg.dim // cfg.heads
        self.cosine = cfg.score == "cosine"
        self.recency_mix, self.decay = cfg.recency_mix, cfg.recency_decay

        def arr(t: "torch.Tensor") -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().float().numpy())

        with torch.inference_mode():
            self.pos = arr(tower.pos.weight)
            self.mix = float(tower.mix)
            self.final_g, self.final_b = arr(tower.norm.weight), arr(tower.norm.bias)
            self.final_eps = float(tower.norm.eps)
            self.layers = []
            d = cfg.dim
            for layer in tower.encoder.layers:
                w_in, b_in = arr(layer.self_attn.in_proj_weight).T, arr(layer.self_attn.in_proj_bias)
                g1, beta1 = arr(layer.norm1.weight), arr(layer.norm1.bias)
                wq, bq = _fold(g1, beta1, w_in[:, :d], b_in[:d])
                wkv, bkv = _fold(g1, beta1, w_in[:, d:], b_in[d:])
                w1, b1 = _fold(arr(layer.norm2.weight), arr(layer.norm2.bias), arr(layer.linear1.weight).T,
                               arr(layer.linear1.bias))
                self.layers.append(_Layer(
                    wq=wq, bq=bq, wkv=wkv, bkv=bkv,
                    wo=np.ascontiguousarray(arr(layer.self_attn.out_proj.weight).T),
                    bo=arr(layer.self_attn.out_proj.bias), w1=w1, b1=b1,
                    w2=np.ascontiguousarray(arr(layer.linear2.weight).T), b2=arr(layer.linear2.bias),
                    eps1=float(layer.norm1.eps), eps2=float(layer.norm2.eps)))
        self._recency: dict[int, np.ndarray] = {}
        self._head_weights: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @staticmethod
    def supports(model) -> bool:
        """True when the tower is the one this mirrors: torch's pre-norm TransformerEncoderLayer with
        GELU, no final encoder norm, and the model in eval mode (dropout off)."""
        import torch.nn.functional as F

        tower = getattr(model, "user", None)
        encoder = getattr(tower, "encoder", None)
        if tower is None or encoder is None or getattr(encoder, "norm", None) is not None or model.training:
            return False
        return all(getattr(layer, "activation", None) is F.gelu and layer.norm_first and layer.self_attn.batch_first
                   and layer.self_attn.in_proj_weight is not None for layer in encoder.layers)

    def _recency_weights(self, n: int) -> np.ndarray:
        w = self._recency.get(n)
        if w is None:
            w = (self.decay ** np.arange(n - 1, -1, -1, dtype=np.float64))
            w = (w / w.sum()).astype(np.float32)
            self._recency[n] = w
        return w

    def _attend(self, L: _Layer, xs: np.ndarray) -> np.ndarray:
        """Causal self-attention over the standardized steps xs [n, d]: every step's output [n, d]."""
        n, H, hd = len(xs), self.heads, self.head_dim
        kv = xs @ L.wkv + L.bkv
        k, v = kv[:, :self.dim].reshape(n, H, hd), kv[:, self.dim:].reshape(n, H, hd)
        q = (xs @ L.wq + L.bq).reshape(n, H, hd)
        scores = np.einsum("thd,shd->hts", q, k) * np.float32(1.0 / math.sqrt(hd))
        scores = np.where(np.triu(np.ones((n, n), dtype=bool), 1)[None], np.float32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        return np.einsum("hts,shd->thd", scores, v).reshape(n, self.dim) @ L.wo + L.bo

    def _attend_last(self, L: _Layer, xs: np.ndarray) -> np.ndarray:
        """The same for the last step only [d]: one query against every step's key and value,
        without computing the keys and values (see `_last_step_heads`)."""
        wk, wv, bv = self._heads(L)
        q = (xs[-1] @ L.wq + L.bq).reshape(self.heads, 1, self.head_dim) * np.float32(1.0 / math.sqrt(self.head_dim))
        out = _last_step_heads(xs, q, wk, wv, bv)                                    # [H, hd]
        return out.reshape(self.dim) @ L.wo + L.bo

    def _heads(self, L: _Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hit = self._head_weights.get(id(L))
        if hit is None:
            hit = self._head_weights[id(L)] = _split_heads(L.wkv, L.bkv, self.dim, self.heads)
        return hit

    def _feed_forward(self, L: _Layer, x: np.ndarray) -> np.ndarray:
        return _gelu(_standardize(x, L.eps2) @ L.w1 + L.b1) @ L.w2 + L.b2

    def one(self, steps: np.ndarray) -> np.ndarray:
        """The user after the whole history: steps float32[n >= 1, d], oldest first (the last max_len count)."""
        seq = np.asarray(steps, dtype=np.float32)[-self.max_len:]
        n = len(seq)
        x = seq + self.pos[:n]
        for L in self.layers[:-1]:
            x = x + self._attend(L, _standardize(x, L.eps1))
            x = x + self._feed_forward(L, x)
        L = self.layers[-1]
        x = x[-1] + self._attend_last(L, _standardize(x, L.eps1))
        x = x + self._feed_forward(L, x)
        h = _standardize(x, self.final_eps) * self.final_g + self.final_b
        if self.recency_mix:
            h = h + np.float32(self.mix) * _unit(self._recency_weights(n) @ seq)
        return _unit(h) if self.cosine else h

    def many(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self.one(h) for h in histories]).astype(np.float32) if len(histories) \
            else np.zeros((0, self.dim), np.float32)


class StackedUserTower:
    """Several members' towers of one shape (a seed ensemble) run as one: their weights stacked on a
    leading axis, so each numpy call does every member's step at once (half the calls for two
    members). Still one shopper at a time: batch-independent like NumpyUserTower."""

    def __init__(self, towers: Sequence[NumpyUserTower], scales: Sequence[float]):
        t0 = towers[0]
        self.m, self.dim, self.heads, self.head_dim = len(towers), t0.dim, t0.heads, t0.head_dim
        self.max_len, self.cosine, self.recency_mix = t0.max_len, t0.cosine, t0.recency_mix
        self._recency_weights = t0._recency_weights
        stack = lambda get: np.ascontiguousarray(np.stack([get(t) for t in towers]))  # noqa: E731
        self.pos = stack(lambda t: t.pos)                                    # [m, max_len, d]
        self.mix = stack(lambda t: np.float32(t.mix))[:, None]              # [m, 1]
        self.final_g, self.final_b = stack(lambda t: t.final_g), stack(lambda t: t.final_b)
        self.final_eps = t0.final_eps
        self.scales = np.asarray(scales, dtype=np.float32)[:, None]          # ConcatScorer's sqrt(weight)
        self.layers = [_Layer(*(stack(lambda t, f=f: getattr(t.layers[i], f)) for f in
                                ("wq", "bq", "wkv", "bkv", "wo", "bo", "w1", "b1", "w2", "b2")),
                              eps1=towers[0].layers[i].eps1, eps2=towers[0].layers[i].eps2)
                       for i in range(len(t0.layers))]
        self._heads = {id(L): _split_heads(L.wkv, L.bkv, self.dim, self.heads) for L in self.layers}

    @staticmethod
    def compatible(towers: Sequence[NumpyUserTower]) -> bool:
        t0 = towers[0]
        key = lambda t: (t.dim, t.heads, t.max_len, t.cosine, t.recency_mix, t.decay, len(t.layers),  # noqa: E731
                         t.final_eps, tuple((L.eps1, L.eps2, L.w1.shape) for L in t.layers))
        return len(towers) > 1 and all(key(t) == key(t0) for t in towers)

    def _attend(self, L: _Layer, xs: np.ndarray) -> np.ndarray:
        m, n, H, hd = self.m, xs.shape[1], self.heads, self.head_dim
        kv = xs @ L.wkv + L.bkv[:, None]
        k, v = kv[..., :self.dim].reshape(m, n, H, hd), kv[..., self.dim:].reshape(m, n, H, hd)
        q = (xs @ L.wq + L.bq[:, None]).reshape(m, n, H, hd)
        scores = np.einsum("mthd,mshd->mhts", q, k) * np.float32(1.0 / math.sqrt(hd))
        scores = np.where(np.triu(np.ones((n, n), dtype=bool), 1), np.float32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        return np.einsum("mhts,mshd->mthd", scores, v).reshape(m, n, self.dim) @ L.wo + L.bo[:, None]

    def _attend_last(self, L: _Layer, xs: np.ndarray) -> np.ndarray:
        """[m, n, d] standardized steps -> [m, 1, d]: the last step's attention output per member."""
        m, H, hd = self.m, self.heads, self.head_dim
        wk, wv, bv = self._heads[id(L)]
        q = (xs[:, -1:] @ L.wq + L.bq[:, None]).reshape(m, H, 1, hd) * np.float32(1.0 / math.sqrt(hd))
        out = _last_step_heads(xs, q, wk, wv, bv)                                  # [m, H, hd]
        return out.reshape(m, 1, self.dim) @ L.wo + L.bo[:, None]

    def _feed_forward(self, L: _Layer, x: np.ndarray) -> np.ndarray:
        return _gelu(_standardize(x, L.eps2) @ L.w1 + L.b1[:, None]) @ L.w2 + L.b2[:, None]

    def one(self, steps: np.ndarray) -> np.ndarray:
        """steps float32[n >= 1, m * d] (the members' slices side by side) -> the members' users, each
        times its scale, side by side [m * d]."""
        seq = np.asarray(steps, dtype=np.float32)[-self.max_len:]
        n = len(seq)
        seq = seq.reshape(n, self.m, self.dim).transpose(1, 0, 2)                  # [m, n, d]
        x = seq + self.pos[:, :n]
        for L in self.layers[:-1]:
            x = x + self._attend(L, _standardize(x, L.eps1))
            x = x + self._feed_forward(L, x)
        L = self.layers[-1]
        x = x[:, -1:] + self._attend_last(L, _standardize(x, L.eps1))
        x = (x + self._feed_forward(L, x))[:, 0]                                     # [m, d]
        h = _standardize(x, self.final_eps) * self.final_g + self.final_b
        if self.recency_mix:
            recent = self._recency_weights(n) @ seq                                   # [m, d]
            h = h + self.mix * recent / np.maximum(np.sqrt((recent * recent).sum(axis=1, keepdims=True)), 1e-12)
        if self.cosine:
            h = h / np.maximum(np.sqrt((h * h).sum(axis=1, keepdims=True)), 1e-12)
        return (h * self.scales).reshape(self.m * self.dim)

    def many(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self.one(h) for h in histories]).astype(np.float32)
