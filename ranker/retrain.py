"""`explainrec retrain`: the feedback loop. Warm-start the serving model on what the service recorded,
measure it against the serving model, write an immutable version, promote it if it is not worse.

What it learns from (ranker.data, live=True): the train split plus `live` events (RecordEvents)
and positive feedback (click / purchase) as next-item steps, dismissals as hard negatives
(unlikelihood loss). Users with something new are seen `new_weight` times per epoch.
What it is measured on, for the new and the serving model alike, on the same data: the valid
split, and each user's most recent live event (held out of training). The decision score is
NDCG@10 pooled over both sets of users; the new version is promoted when its score is at least
the serving model's (`force` promotes anyway).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from ranker.versions import current_version_dir, new_version_dir, promote, seal, version_name

log = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 300.0
RETRAIN_LR_SCALE = 0.1
"""The warm start fine-tunes at this share of the parent's learning rate: a fresh AdamW at the full
rate moves every converged weight by ~lr per step (measured: valid NDCG@10 .0855 -> .0761 after
one epoch of the bench_loop replay)."""


def remap_state(state: dict, old_ids: list[str], new_ids: list[str], evidence=None) -> dict:
    """A member's state dict for a catalog that grew: residual rows follow their item id, rows of
    new items start at zero (no evidence yet: they rank from their text), the cold row stays zero.
    evidence: bool[len(new_ids)]; rows without it are zeroed (the evidence gate of ranker.train)."""
    import torch

    old_row = {i: r for r, i in enumerate(old_ids)}
    pairs = [(n, old_row[i]) for n, i in enumerate(new_ids) if i in old_row]
    new_idx = torch.tensor([n for n, _ in pairs], dtype=torch.long)
    old_idx = torch.tensor([o for _, o in pairs], dtype=torch.long)
    out = dict(state)
    for key, value in state.items():
        if key.endswith("residual.weight"):
            grown = torch.zeros((len(new_ids) + 1, value.shape[1]), dtype=value.dtype)
            if len(pairs):
                grown[new_idx] = value[old_idx]
            if evidence is not None:
                grown[:len(new_ids)][~torch.as_tensor(evidence, dtype=torch.bool)] = 0
            out[key] = grown
    return out


def _metrics(scorer, data, live_ranks=None, ranks_out: dict | None = None) -> dict:
    """live_ranks: how the live split is ranked (default: scorer_ranks), e.g. leave-one-out for a version
    whose evidence bias counted the held-out live events. ranks_out: filled with each split's target ranks."""
    from ranker.evaluate import evaluate_ranks, scorer_ranks

    out = {}
    for split in ("valid", "live"):
        _, targets = (data.valid_hist, data.valid_target) if split == "valid" else (data.live_hist, data.live_target)
        if len(targets):
            ranks = live_ranks() if split == "live" and live_ranks is not None else scorer_ranks(scorer, data, split)
            if ranks_out is not None:
                ranks_out[split] = ranks
            res = evaluate_ranks(ranks)
            out[split] = {**{k: round(v, 5) for k, v in res.metrics.items()}, "users": res.users}
    n = sum(m["users"] for m in out.values())
    out["score"] = round(sum(m["ndcg@10"] * m["users"] for m in out.values()) / n, 5) if n else 0.0
    return out


def retrain(catalog, workdir: Path, time_budget_s: float = DEFAULT_BUDGET_S, force: bool = False,
            progress: bool = True, encoder=None, device: str = "", threads: int = 0) -> dict:
    """One round of the loop. Returns the summary written to the version's metrics.json."""
    import torch

    from ranker.data import load_split_data
    from ranker.encoder import TextEncoder, default_device
    from ranker.item_bias import leave_one_out_ranks, load_bias
    from ranker.scorers import load_scorer, model_file
    from ranker.train import TrainConfig, fit_and_write

    t0 = time.time()
    current = current_version_dir(workdir)
    if current is None:
        raise FileNotFoundError(f"no serving model in {workdir} (run `explainrec train` first)")
    config = json.loads((current / "config.json").read_text())
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    members = int(config.get("ensemble", 1))
    # the towers' shape is the parent's (a field missing from an older model's config takes the
    # ModelConfig default, e.g. no repeat bias), so its weights load as they are
    from ranker.model import ModelConfig

    shape = {f.name: getattr(ModelConfig(**config["model"]), f.name) for f in dataclasses.fields(ModelConfig)}
    cfg = TrainConfig(**{k: v for k, v in {**config["train"], **shape}.items() if k in known})
    # The parent's blend weight is kept (re-picking it costs one valid pass per weight).
    cfg = dataclasses.replace(cfg, device=device or cfg.device or default_device(), threads=threads or cfg.threads,
                              blend_weights=str(config.get("blend_weight", 0.0)), hard_deadline=True,
                              cold_boosts=str(config.get("cold_boost", 1.0)),
                              seed=cfg.seed + 100 * (1 + sum(1 for _ in current.parent.glob("v*"))))
    encoder = encoder or TextEncoder(cfg.device, show_progress=progress)
    data = load_split_data(catalog, encoder, live=True)
    log.info("retrain from %s: %s", version_name(current), data.counts)
    old_ids = json.loads((current / "item_ids.json").read_text())
    evidence = data.popularity() >= cfg.residual_min_events
    # Only items the serving model already gave a residual keep one: an item with its first events since
    # (a new item) stays on its text path until the next full training. Measured in the replay
    # (bench/bench_loop.py): residuals learned from ~10 events per new item in a short warm start made
    # those items rank worse (new-item NDCG@10 .0562 -> .0321; fitted alone with the towers frozen,
    # "fold-in", -> .0210), while their text path already ranks them like warm items. What their events
    # do tell reliably, how often each is taken, goes into a score offset (ranker.item_bias), counted
    # over every recorded event: the held-out live events too (most users have one live event, so
    # holding them out would drop ~60% of a new item's evidence); the promotion gate below measures
    # each held-out live event leave-one-out (its target's bias recounted without it).
    all_counts = data.popularity() + np.bincount(data.live_target, minlength=data.n_items)
    old_row = {i: r for r, i in enumerate(old_ids)}
    parents = [torch.load(current / model_file(k), map_location="cpu", weights_only=True) for k in range(members)]
    had = (parents[0]["item.residual.weight"][:-1].abs().sum(dim=1) > 0).numpy()
    keep = np.array([bool(evidence[n]) and i in old_row and bool(had[old_row[i]])
                     for n, i in enumerate(data.item_ids)], dtype=bool)
    inits = [remap_state(p, old_ids, data.item_ids, keep) for p in parents]
    t_eval = time.time()
    serving_ranks: dict = {}          # the serving model's valid ranks: the evidence bias's warm floor
    before = _metrics(load_scorer(current, cfg.device), data, ranks_out=serving_ranks)
    t_eval = time.time() - t_eval
    # What is left of the budget goes to training, minus the measuring still to come: one valid pass
    # at the end of the last epoch (picks the epoch), one for the evidence bias, the final metrics
    # pass, and writing.
    left = time_budget_s - (time.time() - t0) - 3.5 * t_eval - 20.0
    base_lr = float(config.get("base_lr", cfg.lr))      # the first model's rate, not a scaled one
    cfg = dataclasses.replace(cfg, time_budget_s=max(left, 1.0) / members, lr=base_lr * RETRAIN_LR_SCALE)
    log.info("retrain: %.0f s of training per member (%d members)", cfg.time_budget_s, members)
    out = new_version_dir(workdir)
    fit_and_write(data, out, cfg, progress, inits=inits, new_users=data.new_seqs, replace=False, measure=False,
                  evidence=keep, bias_counts=all_counts, reference_ranks=serving_ranks.get("valid"),
                  extra={"parent": version_name(current), "retrain_data": data.counts, "base_lr": base_lr})
    scorer = load_scorer(out, cfg.device)
    bias = load_bias(out)
    live_ranks = None
    if bias:        # the bias counted the held-out live events: each is measured without its own count
        choice = json.loads((out / "config.json").read_text())["evidence_bias"]
        live_ranks = lambda: leave_one_out_ranks(scorer, data, data.live_hist, data.live_target,  # noqa: E731
                                                 all_counts, bias, choice["alpha"], choice["offset"])
    after = _metrics(scorer, data, live_ranks)
    promoted = force or after["score"] >= before["score"]
    summary = {
        "version": version_name(out), "path": str(out), "parent": version_name(current),
        "promoted": promoted,
        "decision": ("forced" if force and after["score"] < before["score"] else
                     "not worse than the serving model" if promoted else "worse than the serving model: kept"),
        "new": after, "current": before, "data": data.counts, "retrain_s": round(time.time() - t0, 1),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    seal(out)
    if promoted:
        promote(workdir, out)
    log.info("retrain: %s (score %.4f vs serving %.4f) -> %s", version_name(out), after["score"], before["score"],
             summary["decision"])
    return summary


def parse_every(text: str) -> float:
    """'30m' / '2h' / '90s' / '45' (seconds) -> seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise ValueError(f"--every must look like 30m, 2h, 90s or a number of seconds (got {text!r})") from None
    if value <= 0:
        raise ValueError(f"--every must be > 0 (got {text!r})")
    return value


def models_table(rows: list[dict]) -> str:
    """`explainrec models` as a table: one line per version, the serving one starred."""
    lines = [f"{'version':<28}{'serving':>8}{'valid ndcg@10':>15}{'live ndcg@10':>14}{'vs parent':>11}  decision"]
    for r in rows:
        new = r.get("metrics") or {}
        valid = (new.get("valid") or r.get("valid") or {}).get("ndcg@10")
        live = (new.get("live") or {}).get("ndcg@10")
        parent = (r.get("parent_metrics") or {}).get("score")
        delta = None if parent is None or not new else new.get("score", 0.0) - parent
        lines.append(f"{r['version']:<28}{'*' if r.get('serving') else '':>8}"
                     f"{'' if valid is None else f'{valid:.4f}':>15}{'' if live is None else f'{live:.4f}':>14}"
                     f"{'' if delta is None else f'{delta:+.4f}':>11}  {r.get('decision') or r.get('error') or ''}")
    return "\n".join(lines)
