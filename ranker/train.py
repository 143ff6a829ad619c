"""`explainrec train`: fit the towers on the train split, pick the epoch on valid, write the model dir.

Every prefix of a user's train sequence predicts the next item (one causal pass per user gives
all prefixes), with a softmax over the whole catalog, or, above `full_softmax_max_items`, over
sampled negatives with a logQ correction (ranker.loss), so an epoch stops costing users x items. MiniLM stays frozen: its item vectors are
computed once (and cached); what trains is the projection, the per-item residuals and the user
tower, which is what makes a CPU epoch take seconds instead of hours.

Model directory (store.paths.model_dir): config.json (configs, metrics, timings), model.pt
(tower weights), item_ids.json (residual rows), text_emb.npy (frozen MiniLM item vectors),
item_vectors.npy + index_ids.json + index.faiss/.json (the serving index).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from core.settings import Settings, setting

log = logging.getLogger(__name__)

REPEAT_LR = 0.05
"""AdamW learning rate of the repeat bias (ranker.model.REPEAT_EDGES), a handful of logits."""


@dataclass(frozen=True)
class TrainConfig(Settings):
    """Every field is a flag of `explainrec train`, an env var EXPLAINREC_TRAIN_<FIELD> and a key of a
    TOML file's [train] table (`core.settings`)."""

    ENV_PREFIX: ClassVar[str] = "EXPLAINREC_TRAIN_"
    TOML_TABLE: ClassVar[str] = "train"

    epochs: int = setting(60, 'Upper bound on passes over the train split (early stopping usually ends sooner).')
    batch_size: int = setting(128, 'Users per optimisation step (each contributes all its prefixes).')
    lr: float = setting(3e-4, 'AdamW learning rate.')
    weight_decay: float = setting(0.0, 'AdamW weight decay on the towers.')
    dim: int = setting(256, 'Width of the item/user space (and of the FAISS index).')
    layers: int = setting(1, 'Transformer layers in the user tower.')
    heads: int = setting(2, 'Attention heads.')
    dropout: float = setting(0.4, 'Dropout in the user tower.')
    max_len: int = setting(50, 'Most recent history items the user tower reads.')
    score: str = setting("cosine", '"cosine" or "dot" (see ranker.model.ModelConfig).')
    recency_mix: bool = setting(True, 'Recency-mean skip path in the user tower.')
    residual: bool = setting(True, 'Per-item residual vectors.')
    repeat_bias: bool = setting(True, 'Learn a logit bias on items already in the history, by how long ago, so '
                                      'the model learns whether shoppers of this catalog take the same item '
                                      'again (ranker.model.REPEAT_EDGES).')
    tied: bool = setting(False, "User tower reads the item tower's vectors (True) or a separate input item "
                                'tower (False).')
    residual_dropout: float = setting(0.3, "Per step, each item's residual is dropped with this probability "
                                           '(DropoutNet-style), so the projected text vector alone must rank '
                                           'it: what a new item has. 0 = always use the residual.')
    residual_min_events: int = setting(1, 'Items with fewer train events than this never get a residual '
                                          '(evidence gate): they are served, like an item added after training, '
                                          'from their text alone.')
    patience: int = setting(4, 'Stop after this many epochs without a better valid NDCG@10.')
    time_budget_s: float = setting(600.0, 'Per ensemble member: stop starting new epochs after this many '
                                          'seconds (bounds a CPU run).')
    max_users: int = setting(0, 'Train on at most this many users (0 = all); for smoke tests.')
    blend_weights: str = setting("0,0.1,0.25,0.5,1", 'Weights w tried for score = model + w * zero-shot MiniLM '
                                                     '(picked on valid; 0 = model alone).')
    cold_boosts: str = setting("1,1.5,2,3", "Boosts tried for the zero-shot part of cold items (no residual) in the "
                                            'blend, picked on valid without warm loss (ranker.cold).')
    threads: int = setting(0, 'CPU threads for torch; 0 = auto (1 when the CPU is already busy: spinning OpenMP '
                              'threads on an oversubscribed 2-core machine made a step 5x slower than one '
                              'thread).')
    ensemble: int = setting(2, 'Towers trained with seeds seed, seed+1, ...; their scores are summed (one '
                               'concatenated vector each side).')
    seed: int = setting(0, 'Seed for torch and numpy (member k uses seed + k).')
    device: str = setting("", '"cuda", "cpu" or "" (CUDA when present).')
    dismiss_weight: float = setting(1.0, 'Weight of the unlikelihood loss on dismissed items (retrain; 0 = '
                                         'ignore dismissals).')
    new_weight: int = setting(2, 'Retrain: users with live events or feedback are seen this many times per '
                                 'epoch.')
    hard_deadline: bool = setting(False, "Stop inside an epoch when time_budget_s is spent (retrain's bound), "
                                         'not only between epochs.')
    full_softmax_max_items: int = setting(10_000, 'Catalogs up to this many items train with the full softmax; '
                                                  'bigger ones with sampled softmax + logQ correction (a full '
                                                  'epoch costs users x items; see ranker/README.md for the '
                                                  'measured crossover). 0 = always sampled.')
    negatives: int = setting(2048, 'Sampled softmax: negatives drawn per step, shared by the batch.')
    negative_uniform: float = setting(0.5, 'Sampled softmax: share of the negatives drawn uniformly; the rest '
                                           'by popularity (the hard ones).')
    length_buckets: str = setting("auto", '"on": batch users of similar history length together (sorted within '
                                          'windows of 50 batches, batches shuffled; the user tower pads far less, '
                                          'an epoch costs about half); "off": random batches; "auto": on where '
                                          'the catalog trains on sampled softmax (on Scientific, full softmax, '
                                          'on cost .003 of valid NDCG@10 over 10 epochs).')

    def model_config(self, n_items: int, text_dim: int):
        """The towers' config: every ModelConfig field this config also has is taken from it by name."""
        from ranker.model import ModelConfig

        shared = {f.name for f in dataclasses.fields(ModelConfig)} & {f.name for f in dataclasses.fields(self)}
        return ModelConfig(n_items=n_items, text_dim=text_dim, **{k: getattr(self, k) for k in shared})

    def bucketed(self, n_items: int) -> bool:
        """Whether batches group users of similar history length (length_buckets)."""
        return self.length_buckets == "on" or (self.length_buckets == "auto" and self.sampled_softmax(n_items))

    def sampled_softmax(self, n_items: int) -> bool:
        """Whether a catalog of n_items trains on sampled negatives (above the threshold) or the full softmax."""
        return n_items > self.full_softmax_max_items

    def __post_init__(self) -> None:
        self.check_types()
        if self.dismiss_weight < 0:
            raise ValueError(f"dismiss_weight must be >= 0 (got {self.dismiss_weight})")
        for name in ("epochs", "batch_size", "dim", "layers", "heads", "max_len", "patience", "ensemble", "new_weight",
                     "negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr})")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")
        if not 0 <= self.residual_dropout < 1:
            raise ValueError(f"residual_dropout must be in [0, 1) (got {self.residual_dropout})")
        if self.residual_min_events < 0:
            raise ValueError(f"residual_min_events must be >= 0 (got {self.residual_min_events})")
        if self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be > 0 (got {self.time_budget_s})")
        try:
            weights = [float(w) for w in self.blend_weights.split(",") if w.strip()]
        except ValueError:
            raise ValueError(f"blend_weights must be comma-separated numbers (got {self.blend_weights!r})") from None
        if any(w < 0 for w in weights):
            raise ValueError(f"blend_weights must be >= 0 (got {self.blend_weights!r})")
        if self.full_softmax_max_items < 0:
            raise ValueError(f"full_softmax_max_items must be >= 0 (got {self.full_softmax_max_items})")
        if self.length_buckets not in ("auto", "on", "off"):
            raise ValueError(f"length_buckets must be 'auto', 'on' or 'off' (got {self.length_buckets!r})")
        if not 0 <= self.negative_uniform <= 1:
            raise ValueError(f"negative_uniform must be in [0, 1] (got {self.negative_uniform})")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (got {self.threads})")
        if self.max_users < 0:
            raise ValueError(f"max_users must be >= 0 (got {self.max_users})")
        if self.device not in ("", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be '', 'cpu' or 'cuda[:n]' (got {self.device!r})")


BUCKET_WINDOW = 50     # batches per length-sorting window: similar lengths, yet a shuffled mix of users


def _batches(seqs: list[np.ndarray], batch_size: int, max_len: int, rng: np.random.Generator,
             order: np.ndarray | None = None, buckets: bool = False):
    """Yields (seq indices, rows long[B, L+1] right-padded with 0, valid bool[B, L+1]) over a shuffled epoch.

    order: the sequence indices of one epoch (default: each sequence once); shuffled here.
    buckets: within each window of BUCKET_WINDOW batches, users are sorted by history length before
    batching and the batches are then shuffled, so a batch pads to a length near its users' own
    (on Scientific-like data the longest of 128 random users is ~4x the median)."""
    order = rng.permutation(len(seqs)) if order is None else rng.permutation(order)
    starts = list(range(0, len(order), batch_size))
    if buckets:
        window = batch_size * BUCKET_WINDOW
        lengths = np.array([min(len(seqs[i]), max_len + 1) for i in order])
        for w in range(0, len(order), window):
            sl = slice(w, w + window)
            order[sl] = order[sl][np.argsort(lengths[sl], kind="stable")]
        starts = [starts[i] for i in rng.permutation(len(starts))]
    for s in starts:
        idx = order[s:s + batch_size]
        chunk = [seqs[i][-(max_len + 1):] for i in idx]
        L = max(len(c) for c in chunk)
        rows = np.zeros((len(chunk), L), dtype=np.int64)
        valid = np.zeros((len(chunk), L), dtype=bool)
        for b, c in enumerate(chunk):
            rows[b, :len(c)] = c
            valid[b, :len(c)] = True
        yield idx, rows, valid


def cpu_threads(requested: int) -> int:
    import os

    if requested:
        return requested
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= cores - 0.5 else cores


def choose_blend(scorer, data, weights: list[float]):
    """Picks w in score = model + w * zero-shot on the valid split. Returns (scorer, w, {w: valid ndcg@10})."""
    from ranker.evaluate import evaluate_ranks, scorer_ranks
    from ranker.scorers import BlendScorer

    if len(weights) == 1:   # nothing to choose (retrain keeps its parent's weight): no valid pass
        w = weights[0]
        return (BlendScorer(scorer, w) if w > 0 else scorer), w, {}
    results = {}
    best: tuple = (None, -1.0, 0.0)
    for w in weights:
        s = BlendScorer(scorer, w) if w > 0 else scorer
        score = evaluate_ranks(scorer_ranks(s, data, "valid")).score
        results[w] = round(score, 5)
        if score > best[1]:
            best = (s, score, w)
    return best[0], best[2], results


def residual_rows(all_rows, evidence, p: float, generator=None):
    """The residual rows for one training step: -1 (no residual) for items without evidence and,
    with probability p, for any other item (residual dropout), so the text path learns to rank alone."""
    import torch

    keep = evidence
    if p > 0:
        keep = keep & (torch.rand(all_rows.shape, device=all_rows.device, generator=generator) >= p)
    return torch.where(keep, all_rows, torch.full_like(all_rows, -1))


def dismissal_loss(users, items, negatives, scale):
    """Unlikelihood of dismissed items: mean over users of -log(1 - p(dismissed)) under the full
    softmax, so a dismissed item is pushed down without being made the opposite of the user."""
    import torch

    logp = torch.log_softmax(scale * (users @ items.T), dim=-1)            # [U, N]
    terms = [-torch.log1p(-logp[u, n].exp().clamp(max=1 - 1e-6)).mean() for u, n in enumerate(negatives)]
    return torch.stack(terms).mean()


def sampled_dismissal_loss(users, dismissed, neg_items, neg_log_count, neg_rows, scale):
    """dismissal_loss with the partition sum estimated from the step's sampled negatives (see ranker.loss).

    users: float[U, d]; dismissed: per user (vectors float[m, d], rows long[m])."""
    import torch

    terms = []
    for u, (vecs, rows) in zip(users, dismissed):
        s_n = scale * (vecs @ u)                                           # [m]
        neg = scale * (neg_items @ u) - neg_log_count                      # [K]
        neg = neg[None].masked_fill(neg_rows[None] == rows[:, None], float("-inf"))   # [m, K]
        logp = s_n - torch.logsumexp(torch.cat([s_n[:, None], neg], dim=1), dim=1)
        terms.append(-torch.log1p(-logp.exp().clamp(max=1 - 1e-6)).mean())
    return torch.stack(terms).mean()


class _FullSoftmaxStep:
    """One step's loss over the whole catalog: both item towers run on all N items."""

    def __init__(self, model, text, evidence, cfg: TrainConfig):
        import torch

        self.model, self.text, self.evidence, self.cfg = model, text, evidence, cfg
        self.all_rows = torch.arange(len(text), device=text.device)

    def __call__(self, rows_t, valid_t, dismissed):
        from ranker.loss import full_softmax_loss
        from ranker.model import history_logit_bias

        model = self.model
        step_rows = residual_rows(self.all_rows, self.evidence, self.cfg.residual_dropout)
        items = model.item(self.text, step_rows)                      # [N, d], through the item tower
        inp, inp_valid = rows_t[:, :-1], valid_t[:, :-1]
        target, target_valid = rows_t[:, 1:], valid_t[:, 1:]
        inputs = model.input_items(self.text, step_rows, items)       # [N, d] what the user tower reads
        users = model.user(inputs[inp], inp_valid)                    # [B, L, d]
        loss = full_softmax_loss(users[target_valid], items, target[target_valid], model.scale(),
                                 history_logit_bias(model, inp, inp_valid, target_valid))
        if dismissed:
            import torch

            last = inp_valid.long().sum(dim=1) - 1
            u = torch.stack([users[b, last[b]] for b, _ in dismissed])
            neg = [torch.as_tensor(n, device=items.device) for _, n in dismissed]
            loss = loss + self.cfg.dismiss_weight * dismissal_loss(u, items, neg, model.scale())
        return loss


class _SampledSoftmaxStep:
    """One step's loss over sampled negatives (ranker.loss): the item towers run only on the rows this
    step touches (history inputs, targets, negatives, dismissed items), never on the whole catalog,
    and no [positions, N] logit matrix exists, so the cost per step does not grow with the catalog."""

    def __init__(self, model, text, evidence, cfg: TrainConfig, popularity):
        from ranker.loss import NegativeSampler

        self.model, self.text, self.evidence, self.cfg = model, text, evidence, cfg
        self.sampler = NegativeSampler(popularity, cfg.negatives, cfg.negative_uniform, device=text.device)

    def __call__(self, rows_t, valid_t, dismissed):
        import torch

        from ranker.loss import sampled_softmax_loss
        from ranker.model import history_logit_bias

        model = self.model
        neg_rows, neg_log_count = self.sampler.draw()
        dis_rows = [torch.as_tensor(n, device=rows_t.device) for _, n in dismissed]
        cand, inv = torch.unique(torch.cat([rows_t.reshape(-1), neg_rows, *dis_rows]), return_inverse=True)
        step_rows = residual_rows(cand, self.evidence[cand], self.cfg.residual_dropout)
        text = self.text[cand]
        items = model.item(text, step_rows)                           # [C, d] candidates only
        inputs = model.input_items(text, step_rows, items)
        B, L1 = rows_t.shape
        at = inv[:B * L1].reshape(B, L1)                              # rows_t as candidate positions
        neg_at = inv[B * L1:B * L1 + len(neg_rows)]
        inp_valid, target_valid = valid_t[:, :-1], valid_t[:, 1:]
        users = model.user(inputs[at[:, :-1]], inp_valid)             # [B, L, d]
        pos_at = at[:, 1:][target_valid]
        loss = sampled_softmax_loss(users[target_valid], items[pos_at], items[neg_at], neg_log_count,
                                    rows_t[:, 1:][target_valid], neg_rows, model.scale(),
                                    history_logit_bias(model, rows_t[:, :-1], inp_valid, target_valid))
        if dismissed:
            last = inp_valid.long().sum(dim=1) - 1
            u = torch.stack([users[b, last[b]] for b, _ in dismissed])
            offset, per_user = B * L1 + len(neg_rows), []
            for r in dis_rows:
                per_user.append((items[inv[offset:offset + len(r)]], r))
                offset += len(r)
            loss = loss + self.cfg.dismiss_weight * sampled_dismissal_loss(
                u, per_user, items[neg_at], neg_log_count, neg_rows, model.scale())
        return loss


def _adamw(model, cfg: TrainConfig):
    """AdamW, fused where this torch has it: on CPU the fused kernel updated 2 x 17k x 256 residual
    rows 5x faster than the default (0.034 s vs 0.18 s a step), the same arithmetic.

    The repeat bias is a few logits that must travel several units (e.g. to -8 where nobody repeats):
    at the towers' learning rate Adam would move it ~lr per step, too slow, so it gets its own."""
    import torch

    repeat = [p for n, p in model.named_parameters() if n == "repeat"]
    towers = [p for n, p in model.named_parameters() if n != "repeat"]
    groups: list[dict] = [{"params": towers}, {"params": repeat, "lr": REPEAT_LR, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def fit(data, cfg: TrainConfig, progress: bool = True, init: dict | None = None, new_users: set[int] | None = None,
        evidence: np.ndarray | None = None, stop: "threading.Event | None" = None):
    """Trains on data.train_seqs, selects on valid. Returns (best model, history of per-epoch dicts).

    init: a state dict to start from (warm start; same shapes as this data's model).
    evidence: bool[items] rows allowed a residual (default: the evidence gate, residual_min_events)."""
    import torch
    from tqdm import tqdm

    from ranker.encoder import default_device
    from ranker.evaluate import evaluate_ranks, scorer_ranks
    from ranker.model import TwoTower
    from ranker.scorers import TrainedScorer

    device = cfg.device or default_device()
    if device == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = TwoTower(cfg.model_config(data.n_items, data.text_emb.shape[1])).to(device)
    text = torch.as_tensor(data.text_emb, device=device)
    seqs = data.train_seqs[:cfg.max_users] if cfg.max_users else data.train_seqs
    item_rows = {i: r for r, i in enumerate(data.item_ids)}
    # Evidence gate: rows without enough train events keep a zero residual (they are masked on every
    # step, so they get no gradient and stay at their zero init), exactly like an item added later.
    popularity = data.popularity()
    gate = torch.as_tensor(popularity >= cfg.residual_min_events if evidence is None else evidence, device=device)
    if init is not None:
        model.load_state_dict(init)
    opt = _adamw(model, cfg)
    sampled = cfg.sampled_softmax(data.n_items)
    step_loss = (_SampledSoftmaxStep(model, text, gate, cfg, popularity) if sampled
                 else _FullSoftmaxStep(model, text, gate, cfg))
    log.info("%d items: %s", data.n_items, f"sampled softmax, {cfg.negatives} negatives" if sampled
             else "full softmax")

    # Users with something new since the serving model (live events, feedback) are seen
    # `new_weight` times per epoch, so a short warm start spends its time on what changed.
    epoch_order = None
    if new_users and cfg.new_weight > 1:
        extra = [i for i in sorted(new_users) if i < len(seqs)]
        epoch_order = np.concatenate([np.arange(len(seqs))] + [np.array(extra, dtype=np.int64)] * (cfg.new_weight - 1))
    n_per_epoch = len(seqs) if epoch_order is None else len(epoch_order)
    buckets = cfg.bucketed(data.n_items)
    # Bucketed batches hold very different numbers of target positions (128 users of 2 items against
    # 128 of 50). Each batch's mean loss is weighted by its positions over the epoch's mean, so every
    # position weighs the same wherever it lands, as it (nearly) does in unbucketed batches.
    ids = np.arange(len(seqs)) if epoch_order is None else epoch_order
    mean_positions = (sum(min(len(seqs[i]), cfg.max_len + 1) - 1 for i in ids)
                      / max(1, math.ceil(n_per_epoch / cfg.batch_size)))
    best, best_score, best_epoch, history = None, -1.0, -1, []
    start = time.time()
    for epoch in range(cfg.epochs):
        t0 = time.time()
        model.train()
        total, steps = 0.0, 0
        n_batches = math.ceil(n_per_epoch / cfg.batch_size)
        for idx, rows, valid in tqdm(_batches(seqs, cfg.batch_size, cfg.max_len, rng, epoch_order, buckets),
                                     total=n_batches, desc=f"epoch {epoch + 1}", disable=not progress, leave=False):
            if stop is not None and stop.is_set():
                raise TrainingStopped("training stopped: the process is stopping")
            rows_t = torch.as_tensor(rows, device=device)
            valid_t = torch.as_tensor(valid, device=device)
            if cfg.hard_deadline and time.time() - start > cfg.time_budget_s:
                break                      # a bounded run (retrain) stops mid-epoch; valid still picks
            dismissed = ([(b, data.dismissed[i]) for b, i in enumerate(idx) if i in data.dismissed]
                         if cfg.dismiss_weight > 0 else [])
            loss = step_loss(rows_t, valid_t, dismissed)
            weight = float(valid[:, 1:].sum()) / mean_positions if buckets else 1.0
            opt.zero_grad(set_to_none=True)
            (loss * weight).backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
        train_s = time.time() - t0
        scorer = TrainedScorer(model, item_rows, device)
        val = evaluate_ranks(scorer_ranks(scorer, data, "valid"))
        model.train()
        row = {"epoch": epoch + 1, "loss": total / max(steps, 1), "train_s": round(train_s, 2),
               "wall_s": round(time.time() - start, 2), "softmax": "sampled" if sampled else "full",
               **{f"valid_{k}": round(v, 5) for k, v in val.metrics.items()}}
        history.append(row)
        improved = val.score > best_score
        if improved:
            best, best_score, best_epoch = copy.deepcopy(model.state_dict()), val.score, epoch + 1
        log.info("epoch %d: loss %.4f, valid ndcg@10 %.4f%s (%.1fs train)", epoch + 1, row["loss"], val.score,
                 " *" if improved else "", train_s)
        if progress:
            print(json.dumps(row), flush=True)
        if epoch + 1 - best_epoch >= cfg.patience:
            break
        if time.time() - start > cfg.time_budget_s:
            log.info("time budget of %.0fs spent; stopping", cfg.time_budget_s)
            break
    assert best is not None, "at least one epoch ran"
    model.load_state_dict(best)
    model.eval()
    return model, history, best_epoch


class TrainingStopped(Exception):
    """`stop` was set while fitting (the serving process that trains on its first start got SIGTERM):
    nothing is written."""


def train(catalog, model_dir: Path, cfg: TrainConfig, encoder=None, progress: bool = True,
          stop: "threading.Event | None" = None) -> Path:
    """Fits and writes the model directory. Returns its path. stop: set it to end the fit early
    (TrainingStopped, nothing written)."""
    from ranker.data import load_split_data
    from ranker.encoder import TextEncoder, default_device

    t_start = time.time()
    device = cfg.device or default_device()
    encoder = encoder or TextEncoder(device, show_progress=progress)
    data = load_split_data(catalog, encoder)
    encode_s = time.time() - t_start
    return fit_and_write(data, model_dir, cfg, progress, encode_s=encode_s, stop=stop)


@dataclass
class TrainedState:
    """What fitting produced, before anything touches the disk: the members, their histories, the
    chosen blend and the serving vectors. `write_model_dir` turns it into a model directory."""

    models: list
    histories: list[list[dict]]
    best_epochs: list[int]
    blend_weight: float
    blend_valid: dict[float, float]
    item_vecs: np.ndarray
    hist_vecs: np.ndarray | None
    valid: dict[str, float] | None          # valid metrics of the blended scorer (None: not measured)
    device: str
    started_at: float                       # wall clock at the start (encoding included), for timings
    encode_s: float = 0.0
    cold_boost: float = 1.0                 # zero-shot part of cold items x this (ranker.cold)
    cold_valid: dict = dataclasses.field(default_factory=dict)   # boost -> valid ndcg@10, cold ndcg@10
    cold_skip: list = dataclasses.field(default_factory=list)    # item ids the cold boost leaves out (retrain)
    item_bias: dict = dataclasses.field(default_factory=dict)    # item id -> evidence bias (ranker.item_bias)
    bias_choice: dict | None = None                              # how it was picked (None: not tried)


def fit_members(data, cfg: TrainConfig, progress: bool = True, inits: list[dict] | None = None,
                new_users: set[int] | None = None, encode_s: float = 0.0, measure: bool = True,
                evidence: np.ndarray | None = None, bias_counts: np.ndarray | None = None,
                reference_ranks: np.ndarray | None = None, stop: "threading.Event | None" = None) -> TrainedState:
    """Fits cfg.ensemble members (member k warm-started from inits[k] when given) and picks the blend
    on valid. Writes nothing.

    measure=False: no final valid pass (retrain measures the written model itself: valid + live, once).
    bias_counts: events per item row; given (retrain), items without a residual but with events get the
    evidence bias of ranker.item_bias, picked on valid; reference_ranks: the serving model's valid target
    ranks, which set that choice's warm floor (ranker.item_bias.choose_evidence_bias)."""
    from ranker.encoder import default_device
    from ranker.evaluate import evaluate_ranks, scorer_ranks
    from ranker.cold import choose_cold_boost
    from ranker.scorers import ConcatScorer, TrainedScorer

    started_at = time.time() - encode_s
    device = cfg.device or default_device()
    log.info("data: %d items, %d train sequences, %d valid, %d test users (%.1fs)", data.n_items,
             len(data.train_seqs), len(data.valid_target), len(data.test_target), encode_s)
    item_rows = {i: r for r, i in enumerate(data.item_ids)}
    models, histories, best_epochs = [], [], []
    for k in range(cfg.ensemble):
        init = inits[k] if inits and k < len(inits) else None
        model, history, best_epoch = fit(data, dataclasses.replace(cfg, seed=cfg.seed + k), progress, init, new_users,
                                         evidence, stop)
        models.append(model)
        histories.append(history)
        best_epochs.append(best_epoch)
    members = [TrainedScorer(m, item_rows, device) for m in models]
    scorer = members[0] if len(members) == 1 else ConcatScorer(members, [1.0] * len(members))
    weights = [float(w) for w in cfg.blend_weights.split(",") if w.strip()] or [0.0]
    towers = scorer
    scorer, blend_weight, blend_valid = choose_blend(scorer, data, weights)
    log.info("blend with zero-shot: valid ndcg@10 by weight %s -> w=%s", blend_valid, blend_weight)
    boosts = [float(b) for b in cfg.cold_boosts.split(",") if b.strip()] or [1.0]
    # a retrain's new items (events, no residual) get the evidence bias below, not the cold boost
    cold_skip = ([data.item_ids[r] for r in np.flatnonzero(members[0].cold(data.item_ids) & (bias_counts >= 1))]
                 if bias_counts is not None else [])
    scorer, cold_boost, cold_valid = choose_cold_boost(towers, blend_weight, data, boosts, skip=cold_skip)
    item_bias, bias_choice = {}, None
    if bias_counts is not None:
        from ranker.item_bias import choose_evidence_bias

        scorer, item_bias, bias_choice = choose_evidence_bias(scorer, data, bias_counts,
                                                              members[0].cold(data.item_ids),
                                                              reference_ranks=reference_ranks)
    item_vecs = scorer.item_vectors(data.item_ids, data.text_emb)
    valid = evaluate_ranks(scorer_ranks(scorer, data, "valid", item_vecs=item_vecs)) if measure else None
    return TrainedState(models=models, histories=histories, best_epochs=best_epochs, blend_weight=blend_weight,
                        blend_valid=blend_valid, cold_boost=cold_boost, cold_valid=cold_valid, cold_skip=cold_skip,
                        item_vecs=item_vecs,
                        item_bias=item_bias, bias_choice=bias_choice,
                        hist_vecs=scorer.history_vectors(data.item_ids, data.text_emb),
                        valid=valid.metrics if valid is not None else None, device=device,
                        started_at=started_at, encode_s=encode_s)


def write_model_dir(state: TrainedState, data, model_dir: Path, cfg: TrainConfig, extra: dict | None = None,
                    replace: bool = True) -> Path:
    """Writes the model directory atomically: everything goes into a fresh `<name>.tmp` sibling, which
    is renamed into place only when complete, so a half-written model dir never looks finished.

    A `.tmp` left by a crashed run is removed first, never written into: a stale file in it (an extra
    member's weights, say) would otherwise change how the model loads. replace=False: an existing
    model_dir is an error (model versions are immutable)."""
    import torch

    from ranker.encoder import MODEL_NAME
    from ranker.index import VectorIndex
    from ranker.scorers import model_file

    model_dir = Path(model_dir)
    if model_dir.exists() and not replace:
        raise FileExistsError(f"{model_dir} exists (model versions are immutable)")
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    if tmp.exists():
        log.warning("removing %s left by an unfinished run", tmp)
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)            # exist_ok=False: if another writer made it meanwhile, fail loudly
    for k, m in enumerate(state.models):
        torch.save({n: v.cpu() for n, v in m.state_dict().items()}, tmp / model_file(k))
    (tmp / "item_ids.json").write_text(json.dumps(data.item_ids))
    if state.item_bias:
        from ranker.item_bias import write_bias

        write_bias(tmp, state.item_bias)
    np.save(tmp / "text_emb.npy", data.text_emb)
    np.save(tmp / "item_vectors.npy", state.item_vecs)
    if state.hist_vecs is not None:
        np.save(tmp / "history_vectors.npy", state.hist_vecs)
    (tmp / "index_ids.json").write_text(json.dumps(data.item_ids))
    index = VectorIndex.build(state.item_vecs, np.arange(data.n_items, dtype=np.int64))
    index.save(tmp / "index.faiss")
    histories = state.histories
    config = {
        "text_encoder": MODEL_NAME,
        "model": state.models[0].cfg.to_dict(),
        "train": asdict(cfg),
        "device": state.device,
        "trained_at": time.time(),
        "best_epoch": state.best_epochs[0],
        "ensemble": len(state.models),
        "members": [{"seed": cfg.seed + k, "best_epoch": state.best_epochs[k], "history": histories[k]}
                    for k in range(len(state.models))],
        "blend_weight": state.blend_weight,
        "cold_boost": state.cold_boost,
        "cold_boost_valid": {str(k): v for k, v in state.cold_valid.items()},
        **({"cold_boost_skip": state.cold_skip} if state.cold_skip and state.cold_boost != 1.0 else {}),
        **({"evidence_bias": state.bias_choice} if state.bias_choice is not None else {}),
        "blend_valid_ndcg@10": {str(k): v for k, v in state.blend_valid.items()},
        "valid": state.valid,
        "history": histories[0],
        "index": index.describe(),
        "timings_s": {"encode_items": round(state.encode_s, 1), "total": round(time.time() - state.started_at, 1),
                      "per_epoch_mean": round(float(np.mean([h["train_s"] for hs in histories for h in hs])), 2)},
        "text_query": "MiniLM -> item-tower projection (zero residual) -> user tower as the newest history step",
        **(extra or {}),
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    if model_dir.exists():             # replace: move the old one aside first, so the swap is two renames
        old = model_dir.with_name(model_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        model_dir.rename(old)
        tmp.rename(model_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(model_dir)
    log.info("model written to %s (best epoch %d%s)", model_dir, state.best_epochs[0],
             f", valid ndcg@10 {state.valid['ndcg@10']:.4f}" if state.valid is not None else "")
    return model_dir


def fit_and_write(data, model_dir: Path, cfg: TrainConfig, progress: bool = True, inits: list[dict] | None = None,
                  new_users: set[int] | None = None, extra: dict | None = None, encode_s: float = 0.0,
                  replace: bool = True, measure: bool = True, evidence: np.ndarray | None = None,
                  bias_counts: np.ndarray | None = None, reference_ranks: np.ndarray | None = None,
                  stop: "threading.Event | None" = None) -> Path:
    """`fit_members` then `write_model_dir` (see both). Returns the model directory."""
    if Path(model_dir).exists() and not replace:   # fail before spending the training time
        raise FileExistsError(f"{model_dir} exists (model versions are immutable)")
    state = fit_members(data, cfg, progress, inits, new_users, encode_s=encode_s, measure=measure,
                        evidence=evidence, bias_counts=bias_counts, reference_ranks=reference_ranks, stop=stop)
    return write_model_dir(state, data, model_dir, cfg, extra=extra, replace=replace)
