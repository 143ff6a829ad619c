"""Training time against catalog size, full against sampled softmax, and what the switch costs in quality.

    python bench/bench_train_scaling.py --parts timing,quality --json scaling.json
    python bench/bench_train_scaling.py --parts target --json target.json
    python bench/bench_train_scaling.py --parts scientific --workdir W --quality-epochs 8 --json sci.json

On synthetic catalogs (ranker.synthetic: Scientific-like sequence lengths, Zipf popularity, topics),
default TrainConfig apart from what each part sets, CPU:

- profile: where one step's time goes at --profile-items (17k): before this change (full softmax,
  unbucketed batches, unfused AdamW), the full softmax now, and the sampled one.
- timing: per catalog size (--sizes) and softmax (full / sampled), the seconds per optimisation step
  over --steps steps (after 2 warm-up steps) and the epoch that implies (steps per epoch x s/step),
  plus one measured valid pass (the full ranking that picks the epoch). Full softmax is skipped above
  --full-max (its epoch is the thing that does not scale). Peak RSS after each size is reported too.
- quality: one catalog small enough for both (--quality-items x --quality-users); one tower trained
  with each softmax for --quality-epochs epochs; best valid NDCG@10 of each.
- scientific: the real catalog at --workdir, one tower per arm (--arms: the full softmax on unbucketed
  batches as before this change, the full softmax now, sampled softmax), --quality-epochs epochs each;
  best valid NDCG@10 of each (model alone, no blend).
- memory: what a --memory-items (1M) catalog holds in training, counted, not run (see part_memory).
- target: --target-items x --target-users (17k x 50k), the default config (sampled above the
  threshold), time_budget_s = --target-budget-s; how many epochs finish (valid pass included)
  within the budget.

Prints one JSON line per measurement and writes everything to --json. Time figures depend on the
machine's load: the load average is recorded beside each part.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ranker.synthetic import synthetic_split  # noqa: E402
from ranker.train import TrainConfig  # noqa: E402


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def time_steps(data, cfg: TrainConfig, steps: int) -> dict:
    """Seconds per optimisation step (forward, backward, AdamW) with the loss fit() would use."""
    import torch

    from ranker.model import TwoTower
    from ranker.train import _adamw, _batches, _FullSoftmaxStep, _SampledSoftmaxStep, cpu_threads

    torch.manual_seed(0)
    torch.set_num_threads(cpu_threads(cfg.threads))
    model = TwoTower(cfg.model_config(data.n_items, data.text_emb.shape[1]))
    opt = _adamw(model, cfg)
    text = torch.as_tensor(data.text_emb)
    pop = data.popularity()
    evidence = torch.as_tensor(pop >= cfg.residual_min_events)
    sampled = cfg.sampled_softmax(data.n_items)
    step = (_SampledSoftmaxStep(model, text, evidence, cfg, pop) if sampled
            else _FullSoftmaxStep(model, text, evidence, cfg))
    rng = np.random.default_rng(0)
    t0 = None
    for k, (_, rows, valid) in enumerate(_batches(data.train_seqs, cfg.batch_size, cfg.max_len, rng, None,
                                                  cfg.bucketed(data.n_items))):
        if k == 2:
            t0 = time.perf_counter()
        if k == steps + 2:
            break
        loss = step(torch.as_tensor(rows), torch.as_tensor(valid), [])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert t0 is not None, "too few users for the warm-up steps"
    per_step = (time.perf_counter() - t0) / steps
    n_steps = math.ceil(len(data.train_seqs) / cfg.batch_size)
    return {"softmax": "sampled" if sampled else "full", "s_per_step": round(per_step, 4),
            "steps_per_epoch": n_steps, "epoch_s_est": round(per_step * n_steps, 1), "model": model}


def valid_pass_s(data, model) -> float:
    from ranker.evaluate import evaluate_ranks, scorer_ranks
    from ranker.scorers import TrainedScorer

    t = time.perf_counter()
    evaluate_ranks(scorer_ranks(TrainedScorer(model, {i: r for r, i in enumerate(data.item_ids)}, "cpu"), data, "valid"))
    return round(time.perf_counter() - t, 1)


def part_timing(args, base: TrainConfig) -> list[dict]:
    rows = []
    for n in args.sizes:
        data = synthetic_split(n, args.users, seed=0)
        measured = None
        for softmax in ("full", "sampled"):
            if softmax == "full" and n > args.full_max:
                continue
            cfg = dataclasses.replace(base, full_softmax_max_items=0 if softmax == "sampled" else n)
            res = time_steps(data, cfg, args.steps)
            measured = res.pop("model")
            row = {"part": "timing", "items": n, "users": args.users, **res, "load": load()}
            print(json.dumps(row), flush=True)
            rows.append(row)
        eval_row = {"part": "timing", "items": n, "users": args.users, "valid_pass_s": valid_pass_s(data, measured),
                    "peak_rss_gb": peak_rss_gb(), "load": load()}
        print(json.dumps(eval_row), flush=True)
        rows.append(eval_row)
        del data, measured
    return rows


def part_profile(args, base: TrainConfig) -> list[dict]:
    """Where a step's time goes at --profile-items (17k): user tower forward, item towers forward, loss,
    backward, optimiser; as before this change (full softmax, unbucketed, unfused AdamW) and now."""
    import torch

    from ranker.model import TwoTower, history_logit_bias
    from ranker.loss import full_softmax_loss
    from ranker.train import _adamw, _batches, _SampledSoftmaxStep, cpu_threads, residual_rows

    data = synthetic_split(args.profile_items, args.profile_users, seed=0)
    torch.set_num_threads(cpu_threads(base.threads))
    text = torch.as_tensor(data.text_emb)
    pop = data.popularity()
    evidence = torch.as_tensor(pop >= 1)
    all_rows = torch.arange(data.n_items)
    rows_out = []
    for arm in ("before: full, unbucketed, unfused AdamW", "full, buckets, fused", "sampled, buckets, fused"):
        torch.manual_seed(0)
        cfg = dataclasses.replace(base, length_buckets="off" if "unbucketed" in arm else "on")
        model = TwoTower(cfg.model_config(data.n_items, 384))
        opt = (torch.optim.AdamW(model.parameters(), lr=cfg.lr) if "unfused" in arm else _adamw(model, cfg))
        sampled = _SampledSoftmaxStep(model, text, evidence, cfg, pop) if arm.startswith("sampled") else None
        t: dict[str, float] = {"items_fwd": 0.0, "user_fwd": 0.0, "loss_fwd": 0.0, "backward": 0.0, "optimiser": 0.0}
        lengths = []
        rng = np.random.default_rng(0)
        for k, (_, rows, valid) in enumerate(_batches(data.train_seqs, cfg.batch_size, cfg.max_len, rng, None,
                                                      cfg.bucketed(data.n_items))):
            if k == args.steps + 2:
                break
            if k == 2:                                     # after 2 warm-up steps
                t, lengths = dict.fromkeys(t, 0.0), []
            rows_t, valid_t = torch.as_tensor(rows), torch.as_tensor(valid)
            lengths.append(rows.shape[1])
            t0 = time.perf_counter()
            if sampled is not None:                       # one number for its whole forward
                loss = sampled(rows_t, valid_t, [])
                t["loss_fwd"] += time.perf_counter() - t0
            else:
                step_rows = residual_rows(all_rows, evidence, cfg.residual_dropout)
                items = model.item(text, step_rows)
                inputs = model.input_items(text, step_rows, items)
                t1 = time.perf_counter()
                users = model.user(inputs[rows_t[:, :-1]], valid_t[:, :-1])
                t2 = time.perf_counter()
                tv = valid_t[:, 1:]
                loss = full_softmax_loss(users[tv], items, rows_t[:, 1:][tv], model.scale(),
                                         history_logit_bias(model, rows_t[:, :-1], valid_t[:, :-1], tv))
                t["items_fwd"] += t1 - t0
                t["user_fwd"] += t2 - t1
                t["loss_fwd"] += time.perf_counter() - t2
            t3 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t4 = time.perf_counter()
            opt.step()
            t["backward"] += t4 - t3
            t["optimiser"] += time.perf_counter() - t4
        row = {"part": "profile", "arm": arm, "items": data.n_items, "steps": args.steps,
               "mean_padded_length": round(float(np.mean(lengths)), 1),
               **{f"{k}_s_per_step": round(v / args.steps, 3) for k, v in t.items()},
               "total_s_per_step": round(sum(t.values()) / args.steps, 3), "threads": torch.get_num_threads(),
               "load": load()}
        print(json.dumps(row), flush=True)
        rows_out.append(row)
    return rows_out


def part_quality(args, base: TrainConfig) -> list[dict]:
    data = synthetic_split(args.quality_items, args.quality_users, seed=1)
    rows = []
    for softmax in ("full", "sampled"):
        cfg = dataclasses.replace(base, epochs=args.quality_epochs, patience=args.quality_epochs, ensemble=1,
                                  time_budget_s=1e9,
                                  full_softmax_max_items=0 if softmax == "sampled" else args.quality_items)
        rows.append(fit_and_report(data, cfg, {"part": "quality", "items": args.quality_items,
                                               "users": args.quality_users, "softmax": softmax}))
    return rows


def fit_and_report(data, cfg: TrainConfig, labels: dict) -> dict:
    """Fit one arm, print its row (best valid NDCG, per-epoch time) as a JSON line and return it."""
    from ranker.train import fit

    t = time.perf_counter()
    _, history, best = fit(data, cfg, progress=False)
    row = {**labels, "epochs": len(history), "best_epoch": best,
           "best_valid_ndcg@10": history[best - 1]["valid_ndcg@10"],
           "valid_ndcg@10_by_epoch": [h["valid_ndcg@10"] for h in history],
           "train_s_per_epoch": round(float(np.mean([h["train_s"] for h in history])), 1),
           "wall_s": round(time.perf_counter() - t, 1), "load": load()}
    print(json.dumps(row), flush=True)
    return row


SCIENTIFIC_ARMS = {   # name -> TrainConfig overrides
    "full-unbucketed": {"full_softmax_max_items": 10**9, "length_buckets": "off"},   # as before this change
    "full": {"full_softmax_max_items": 10**9, "length_buckets": "on"},
    "sampled": {"full_softmax_max_items": 0, "length_buckets": "on"},
}


def part_scientific(args, base: TrainConfig) -> list[dict]:
    """The real catalog at --workdir (Scientific: 4,385 items): one tower per arm, --quality-epochs epochs."""
    from ranker.data import load_split_data
    from ranker.encoder import TextEncoder
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir

    catalog = Catalog(db_path(args.workdir or default_workdir()))
    try:
        data = load_split_data(catalog, TextEncoder("cpu", show_progress=False))
    finally:
        catalog.close()
    rows = []
    for arm in args.arms.split(","):
        cfg = dataclasses.replace(base, epochs=args.quality_epochs, patience=args.quality_epochs, ensemble=1,
                                  time_budget_s=1e9, **SCIENTIFIC_ARMS[arm.strip()])
        rows.append(fit_and_report(data, cfg, {"part": "scientific", "arm": arm.strip(), "items": data.n_items,
                                               "users": len(data.train_seqs)}))
    return rows


def part_target(args, base: TrainConfig) -> list[dict]:
    from ranker.train import fit

    t = time.perf_counter()
    data = synthetic_split(args.target_items, args.target_users, seed=2)
    gen_s = time.perf_counter() - t
    cfg = dataclasses.replace(base, ensemble=1, time_budget_s=args.target_budget_s, patience=1000)
    _, history, best = fit(data, cfg, progress=False)
    done = [h for h in history if h["wall_s"] <= args.target_budget_s]
    row = {"part": "target", "items": args.target_items, "users": args.target_users,
           "softmax": history[0]["softmax"], "budget_s": args.target_budget_s,
           "epochs_within_budget": len(done), "epochs_started": len(history),
           "train_s_by_epoch": [h["train_s"] for h in history], "wall_s_by_epoch": [h["wall_s"] for h in history],
           "valid_ndcg@10_by_epoch": [h["valid_ndcg@10"] for h in history], "best_epoch": best,
           "data_generation_s": round(gen_s, 1), "peak_rss_gb": peak_rss_gb(), "load": load()}
    print(json.dumps(row), flush=True)
    return [row]


def part_memory(args, base: TrainConfig) -> list[dict]:
    """What training a --memory-items catalog holds (no run at that size): the towers' parameters are
    linear in the catalog (two residual tables of N x dim), counted on two small models and extrapolated,
    times 4 for weights + gradients (dense: nn.Embedding) + AdamW's two moments, plus the frozen text
    vectors (N x 384). The sampled step's own activations do not depend on N (the rows a step touches,
    P x K logits); the full softmax's do (P x N logits, and both towers over all N items)."""
    from ranker.model import TwoTower

    counts = {}
    for n in (1000, 2000):
        counts[n] = sum(p.numel() for p in TwoTower(base.model_config(n, 384)).parameters())
    per_item = (counts[2000] - counts[1000]) / 1000
    fixed = counts[1000] - 1000 * per_item
    n = args.memory_items
    positions = base.batch_size * base.max_len          # an upper bound on target positions per step
    gib = 2.0**30
    row = {"part": "memory", "items": n, "params": int(fixed + per_item * n),
           "weights_grads_adam_gib": round(4 * 4 * (fixed + per_item * n) / gib, 2),
           "text_vectors_gib": round(4 * 384 * n / gib, 2),
           "sampled_step_logits_gib": round(4 * positions * base.negatives / gib, 3),
           "full_step_logits_gib": round(4 * positions * n / gib, 2),
           "users_x_items_gib_for_50k_users": round(4 * 50_000 * n / gib, 1)}
    row["sampled_total_gib"] = round(row["weights_grads_adam_gib"] + row["text_vectors_gib"]
                                     + 3 * row["sampled_step_logits_gib"], 2)
    print(json.dumps(row), flush=True)
    return [row]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="timing,quality", help="comma list of timing, quality, target")
    ap.add_argument("--sizes", default="2000,5000,17000,50000,200000",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=15, help="timed steps per size and softmax")
    ap.add_argument("--full-max", type=int, default=50_000, help="no full-softmax timing above this many items")
    ap.add_argument("--quality-items", type=int, default=5000)
    ap.add_argument("--quality-users", type=int, default=20_000)
    ap.add_argument("--quality-epochs", type=int, default=4)
    ap.add_argument("--target-items", type=int, default=17_000)
    ap.add_argument("--target-users", type=int, default=50_000)
    ap.add_argument("--target-budget-s", type=float, default=600.0)
    ap.add_argument("--workdir", type=Path, default=None, help="scientific: the workdir holding catalog.sqlite")
    ap.add_argument("--arms", default=",".join(SCIENTIFIC_ARMS), help=f"scientific: comma list of {list(SCIENTIFIC_ARMS)}")
    ap.add_argument("--memory-items", type=int, default=1_000_000)
    ap.add_argument("--profile-items", type=int, default=17_000)
    ap.add_argument("--profile-users", type=int, default=5_000)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = TrainConfig's auto)")
    ap.add_argument("--length-buckets", action=argparse.BooleanOptionalAction, default=None,
                    help="timing/quality/target: length-bucketed batches (default: TrainConfig's)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    known = {"profile", "timing", "quality", "target", "scientific", "memory"}
    if set(parts) - known:
        ap.error(f"--parts: unknown {sorted(set(parts) - known)} (known: {sorted(known)})")
    buckets = None if args.length_buckets is None else ("on" if args.length_buckets else "off")
    base = TrainConfig.load(device="cpu", threads=args.threads, blend_weights="0", length_buckets=buckets)
    report: dict = {"config": {k: v for k, v in dataclasses.asdict(base).items()
                               if k in ("batch_size", "dim", "max_len", "negatives", "negative_uniform",
                                        "length_buckets", "full_softmax_max_items", "threads")},
                    "load_start": load()}
    for part in parts:
        report[part] = {"timing": part_timing, "quality": part_quality, "target": part_target,
                        "scientific": part_scientific, "memory": part_memory, "profile": part_profile}[part](args, base)
    report["load_end"] = load()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
