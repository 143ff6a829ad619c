"""What the service and the evaluator need from a model, in numpy: item vectors and user vectors.

Two implementations: `ZeroShotScorer` (untuned MiniLM; user = recency-weighted mean of the
history's item vectors) and `TrainedScorer` (the towers of ranker.model). Both produce unit
vectors in one space, so score = inner product = cosine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np


def _normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class Scorer(Protocol):
    name: str
    dim: int

    def item_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        """Unit float32[n, dim] for items with these ids and frozen text vectors float32[n, 384]."""

    def history_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray | None:
        """What the user tower reads for these items, float32[n, dim]; None = the item vectors themselves."""

    def query_vector(self, text_emb: np.ndarray) -> np.ndarray:
        """A free-text query's frozen vector float32[384] -> unit float32[dim] in item space."""

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Each history is float32[h, dim] (history_vectors, or item vectors when those are None, oldest first, h >= 1) -> unit float32[B, dim]."""

    def history_bias(self, n: int) -> np.ndarray | None:
        """Score added to each of a length-n history's items (oldest first) when they are ranked too
        (the learned repeat bias, in score units); None = no bias. See `history_scores`."""


def history_scores(bias: np.ndarray | None, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of a history, the bias each gets): an item seen twice takes the bias of its most
    recent occurrence. rows: int[n] oldest first; bias: float[n] from Scorer.history_bias(n)."""
    rows = np.asarray(rows)
    if bias is None or not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    rev_rows, first = np.unique(rows[::-1], return_index=True)     # first in reversed order = most recent
    return rev_rows, np.asarray(bias, dtype=np.float32)[::-1][first]


def recency_mean(vectors: np.ndarray, decay: float = 0.5) -> np.ndarray:
    """Weighted mean of float32[h, d], weight decay**(steps back): the newest counts 1, the one before 0.5..."""
    h = len(vectors)
    w = decay ** np.arange(h - 1, -1, -1, dtype=np.float64)
    return (w[:, None] * vectors).sum(axis=0) / w.sum()


class ZeroShotScorer:
    """Untuned all-MiniLM-L6-v2: item = its sentence vector; user = recency-weighted mean."""

    name = "zero_shot"
    dim = 384

    def __init__(self, decay: float = 0.5):
        self.decay = decay

    def item_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        return _normalize(np.asarray(text_emb, dtype=np.float32).reshape(-1, self.dim))

    def history_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> None:
        return None

    def query_vector(self, text_emb: np.ndarray) -> np.ndarray:
        return _normalize(np.asarray(text_emb, dtype=np.float32).reshape(self.dim))

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return _normalize(np.stack([recency_mean(h, self.decay) for h in histories]))

    def history_bias(self, n: int) -> None:
        return None


NUMPY_TOWER_MAX_BATCH = 256
"""Batches up to this many histories (serving's) use the numpy last-step user tower; larger ones
(evaluation, thousands of users) torch's padded batch."""


def model_file(member: int) -> str:
    """Weights of ensemble member k: model.pt, model_1.pt, model_2.pt, ..."""
    return "model.pt" if member == 0 else f"model_{member}.pt"


class TrainedScorer:
    """The trained towers (ranker.model.TwoTower) behind the Scorer interface."""

    name = "model"

    def __init__(self, model, item_rows: dict[str, int], device: str = "cpu"):
        import torch

        self.model = model.to(device).eval()
        self.item_rows = item_rows
        self.device = device
        self.dim = model.cfg.dim
        self.max_len = model.cfg.max_len
        self._torch = torch
        self._fast = None       # the numpy tower (built on first use), False where it does not apply
        self._repeat = None
        if getattr(model, "repeat", None) is not None:   # logits -> cosine units: divide by the scale
            with torch.inference_mode():
                self._repeat = (model.repeat / model.scale()).cpu().numpy().astype(np.float32)
        with torch.inference_mode():                     # rows the evidence gate left at zero
            residual = model.item.residual.weight[:-1]
            self._no_residual = (residual.abs().sum(dim=1) == 0).cpu().numpy()

    def cold(self, item_ids: Sequence[str]) -> np.ndarray:
        """bool[n]: items this model gives no residual (unknown to it, or without train events): they
        are ranked from their text alone."""
        rows = np.array([self.item_rows.get(i, -1) for i in item_ids], dtype=np.int64)
        out = rows < 0
        known = ~out
        out[known] = self._no_residual[rows[known]] if self.model.cfg.residual else True
        return out

    @classmethod
    def load(cls, model_dir: Path, device: str | None = None, member: int = 0) -> "TrainedScorer":
        import torch

        from ranker.encoder import default_device
        from ranker.model import ModelConfig, TwoTower

        model_dir = Path(model_dir)
        device = device or default_device()
        config = json.loads((model_dir / "config.json").read_text())
        model = TwoTower(ModelConfig(**config["model"]))
        model.load_state_dict(torch.load(model_dir / model_file(member), map_location="cpu", weights_only=True))
        item_ids = json.loads((model_dir / "item_ids.json").read_text())
        return cls(model, {i: r for r, i in enumerate(item_ids)}, device)

    def _run_tower(self, tower, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        torch = self._torch
        rows = torch.tensor([self.item_rows.get(i, -1) for i in item_ids], dtype=torch.long, device=self.device)
        out = []
        with torch.inference_mode():
            for s in range(0, len(item_ids), 4096):
                t = torch.as_tensor(np.asarray(text_emb[s:s + 4096], dtype=np.float32), device=self.device)
                out.append(tower(t, rows[s:s + 4096]).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def item_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        return self._run_tower(self.model.item, item_ids, text_emb)

    def history_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray | None:
        if self.model.item_in is None:
            return None
        return self._run_tower(self.model.item_in, item_ids, text_emb)

    def query_vector(self, text_emb: np.ndarray) -> np.ndarray:
        """Through the user tower's input item tower (zero residual): the text is a history step."""
        torch = self._torch
        tower = self.model.item_in or self.model.item
        with torch.inference_mode():
            t = torch.as_tensor(np.asarray(text_emb, dtype=np.float32).reshape(1, -1), device=self.device)
            return tower(t, None)[0].cpu().numpy().astype(np.float32)

    def history_bias(self, n: int) -> np.ndarray | None:
        if self._repeat is None:
            return None
        from ranker.model import REPEAT_EDGES

        steps_back = np.arange(n - 1, -1, -1)
        return self._repeat[np.searchsorted(REPEAT_EDGES, steps_back, side="right")]

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The user after each history. A serving-sized batch of non-empty histories on the CPU goes
        through the numpy last-step tower (ranker.user_tower_np: each shopper alone, a fraction of the
        work); larger batches (evaluation) through torch, padded, all steps at once."""
        if 0 < len(histories) <= NUMPY_TOWER_MAX_BATCH and all(len(h) for h in histories):
            fast = self._numpy_tower()
            if fast is not None:
                return fast.many(histories)
        return self._torch_user_vectors(histories)

    def _numpy_tower(self):
        if self._fast is None:
            from ranker.user_tower_np import NumpyUserTower

            self._fast = NumpyUserTower(self.model) \
                if self.device == "cpu" and NumpyUserTower.supports(self.model) else False
        return self._fast or None

    def _torch_user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for s in range(0, len(histories), 512):
                chunk = [h[-self.max_len:] for h in histories[s:s + 512]]
                L = max(len(h) for h in chunk)
                seq = np.zeros((len(chunk), L, self.dim), dtype=np.float32)
                valid = np.zeros((len(chunk), L), dtype=bool)
                for b, h in enumerate(chunk):
                    seq[b, :len(h)] = h
                    valid[b, :len(h)] = True
                u = self.model.last_user(torch.as_tensor(seq, device=self.device),
                                         torch.as_tensor(valid, device=self.device))
                out.append(u.cpu().numpy())
        return np.concatenate(out).astype(np.float32)


class ConcatScorer:
    """Sum of member scores with weights, as ONE inner product, so a single FAISS index serves it.

    item = [sqrt(w_k) * item_k], user = [sqrt(w_k) * user_k]: their inner product is sum_k w_k * score_k.
    Each member's user tower reads its own slice of the concatenated history vectors.
    Used for seed ensembles of the towers and for the blend with the zero-shot MiniLM.
    """

    name = "model"

    def __init__(self, members: Sequence, weights: Sequence[float]):
        if len(members) != len(weights) or not members:
            raise ValueError("members and weights must be non-empty and of equal length")
        if any(w < 0 for w in weights):
            raise ValueError(f"weights must be >= 0 (got {list(weights)})")
        self.members = list(members)
        self.weights = [float(w) for w in weights]
        self.roots = [float(np.sqrt(w)) for w in weights]
        self.dim = sum(m.dim for m in self.members)
        self.device = next((m.device for m in self.members if hasattr(m, "device")), "cpu")
        self._stacked = None      # the members' numpy towers as one (built on first use), False: not possible

    def _stacked_tower(self):
        """(tower, first member, member after the last): the longest run of trained members whose
        numpy towers share one shape (a seed ensemble; a zero-shot blend member stays apart), or None."""
        if self._stacked is None:
            from ranker.user_tower_np import StackedUserTower

            towers = [m._numpy_tower() if isinstance(m, TrainedScorer) else None for m in self.members]
            best = (0, 0)
            for a in range(len(towers)):
                b = a
                while b < len(towers) and towers[b] is not None:
                    b += 1
                while b - a > 1 and not StackedUserTower.compatible(towers[a:b]):
                    b -= 1
                if b - a > best[1] - best[0]:
                    best = (a, b)
            a, b = best
            self._stacked = (StackedUserTower(towers[a:b], self.roots[a:b]), a, b) if b - a > 1 else False
        return self._stacked or None

    def item_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        return np.concatenate([r * m.item_vectors(item_ids, text_emb) for m, r in zip(self.members, self.roots)],
                              axis=1).astype(np.float32)

    def history_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        parts = []
        for m in self.members:
            h = m.history_vectors(item_ids, text_emb)
            parts.append(m.item_vectors(item_ids, text_emb) if h is None else h)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def query_vector(self, text_emb: np.ndarray) -> np.ndarray:
        return np.concatenate([m.query_vector(text_emb) for m in self.members]).astype(np.float32)

    def history_bias(self, n: int) -> np.ndarray | None:
        """The members' biases, weighted like their scores (members without one add nothing)."""
        parts = [(w, m.history_bias(n)) for m, w in zip(self.members, self.weights)]
        parts = [(w, b) for w, b in parts if b is not None]
        if not parts:
            return None
        return np.sum([w * b for w, b in parts], axis=0).astype(np.float32)

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        run = None
        if 0 < len(histories) <= NUMPY_TOWER_MAX_BATCH and all(len(h) for h in histories):
            run = self._stacked_tower()     # the trained members in one numpy pass (ranker.user_tower_np)
        out, start = [], 0
        for k, (m, r) in enumerate(zip(self.members, self.roots)):
            if run is not None and run[1] <= k < run[2]:
                if k == run[1]:
                    stop = start + run[0].m * run[0].dim
                    out.append(run[0].many([h[:, start:stop] for h in histories]))
            else:
                out.append(r * m.user_vectors([h[:, start:start + m.dim] for h in histories]))
            start += m.dim
        return np.concatenate(out, axis=1).astype(np.float32)


class ColdBoostedZeroShot(ZeroShotScorer):
    """The zero-shot member of a blend whose item side is `boost` times longer for the model's own cold
    items (in its item rows without a residual: no train events), so the text match counts more where
    the towers know nothing else. The user side is the plain zero-shot user, so this stays one inner
    product (FAISS serves it) and only those items' scores change.

    Not boosted: items upserted after training (unknown to the model) and `skip` (a retrain's new items,
    which have events and get the evidence bias of ranker.item_bias instead). The boost is picked on
    valid for the few cold items of the training catalog; applied to 438 items upserted at once (10% of
    Scientific, `bench/bench_loop.py --seed 1`, boost 3) it put them above the warm targets: warm test
    NDCG@10 .0807 -> .0282 (README, "The loop")."""

    def __init__(self, model, boost: float, decay: float = 0.5, skip: Sequence[str] = ()):
        super().__init__(decay)
        self.model = model
        self.boost = float(boost)
        self.skip = frozenset(skip)

    def boosted(self, item_ids: Sequence[str]) -> np.ndarray:
        """bool[n]: the items whose zero-shot part is multiplied by the boost."""
        ours = np.array([i in self.model.item_rows and i not in self.skip for i in item_ids], dtype=bool)
        return self.model.cold(item_ids) & ours

    def item_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:
        vecs = super().item_vectors(item_ids, text_emb)
        vecs[self.boosted(item_ids)] *= self.boost
        return vecs

    def history_vectors(self, item_ids: Sequence[str], text_emb: np.ndarray) -> np.ndarray:  # type: ignore[override]
        return super().item_vectors(item_ids, text_emb)


def BlendScorer(model, weight: float, zero_shot: ZeroShotScorer | None = None, cold_boost: float = 1.0,
                cold_skip: Sequence[str] = ()) -> ConcatScorer:
    """score = model + weight * zero-shot MiniLM (model may itself be a ConcatScorer ensemble); with
    cold_boost != 1, the zero-shot part of the model's cold items (see ColdBoostedZeroShot, which leaves
    out cold_skip) is multiplied by it."""
    members = model.members if isinstance(model, ConcatScorer) else [model]
    weights = model.weights if isinstance(model, ConcatScorer) else [1.0]
    if zero_shot is None:
        zero_shot = (ColdBoostedZeroShot(members[0], cold_boost, skip=cold_skip) if cold_boost != 1.0
                     else ZeroShotScorer())
    return ConcatScorer([*members, zero_shot], [*weights, weight])


def load_scorer(model_dir: Path, device: str | None = None):
    """The scorer a model directory describes: the tower ensemble, blended with zero-shot MiniLM if chosen,
    plus the evidence bias of items without a residual if a retrain gave them one (ranker.item_bias)."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    members = [TrainedScorer.load(model_dir, device, member=k) for k in range(int(config.get("ensemble", 1)))]
    scorer = members[0] if len(members) == 1 else ConcatScorer(members, [1.0] * len(members))
    weight = float(config.get("blend_weight", 0.0))
    if weight > 0:
        scorer = BlendScorer(scorer, weight, cold_boost=float(config.get("cold_boost", 1.0)),
                             cold_skip=config.get("cold_boost_skip", ()))
    from ranker.item_bias import load_bias, with_bias      # a retrain's evidence bias, if it wrote one

    return with_bias(scorer, load_bias(model_dir))
