"""Hyper-parameter sweep of the trained ranker (valid + test NDCG@10 per config). Prints JSON lines.

Runs without faiss or the text encoder, from an exported data file, so it can run on a GPU box:
    python bench/bench_ranker_sweep.py --export .sweep/data.npz      # here (needs the ingested catalog)
    python bench/bench_ranker_sweep.py --data .sweep/data.npz        # anywhere with torch + numpy
    for k in 0 1 2 3 4; do python bench/bench_ranker_sweep.py --data .sweep/data.npz --shard $k/5 & done; wait
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def export(path: Path) -> None:
    from ranker.data import load_split_data
    from ranker.encoder import TextEncoder
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir

    d = load_split_data(Catalog(db_path(default_workdir())), TextEncoder())
    def pack(seqs):
        return np.concatenate(seqs), np.cumsum([0] + [len(s) for s in seqs])
    arrays = {"item_ids": np.array(d.item_ids), "text_emb": d.text_emb,
              "valid_target": d.valid_target, "test_target": d.test_target}
    for name in ("train_seqs", "train_seqs_all", "valid_hist", "test_hist"):
        arrays[name], arrays[name + "_off"] = pack(getattr(d, name))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def load(path: Path):
    from ranker.data import SplitData

    z = np.load(path)
    def unpack(name):
        flat, off = z[name], z[name + "_off"]
        return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    d = SplitData(item_ids=[str(x) for x in z["item_ids"]], text_emb=z["text_emb"].astype(np.float32))
    d.train_seqs, d.train_seqs_all = unpack("train_seqs"), unpack("train_seqs_all")
    d.valid_hist, d.test_hist = unpack("valid_hist"), unpack("test_hist")
    d.valid_target, d.test_target = z["valid_target"], z["test_target"]
    d.train_items = set(np.concatenate(d.train_seqs_all).tolist())
    return d


# One change at a time from TrainConfig's defaults (dim 256, 1 layer, 2 heads, dropout .4, max_len 50,
# lr 3e-4, batch 128, residual dropout .3); the seeds show the noise.
CONFIGS = [
    {}, {"seed": 1}, {"seed": 2},
    {"dim": 128}, {"dim": 384}, {"dim": 512},
    {"layers": 2}, {"layers": 3}, {"heads": 4},
    {"dropout": 0.2}, {"dropout": 0.5},
    {"max_len": 20}, {"max_len": 100},
    {"lr": 1e-3}, {"lr": 1e-4}, {"weight_decay": 0.01},
    {"batch_size": 64}, {"batch_size": 256},
    {"residual_dropout": 0.1}, {"residual_dropout": 0.5},
]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--export", type=Path)
    p.add_argument("--data", type=Path)
    p.add_argument("--configs", default="", help="JSON list of overrides (default: the built-in sweep)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--out", type=Path)
    p.add_argument("--shard", default="0/1", metavar="K/N",
                   help="run configs K, K+N, K+2N, ... (N processes in parallel share one GPU well)")
    p.add_argument("--blend", action="store_true", help="also evaluate model + w * zero-shot blends")
    args = p.parse_args()
    if args.export:
        export(args.export)
        return 0
    from ranker.evaluate import evaluate_ranks, scorer_ranks
    from ranker.scorers import TrainedScorer
    from ranker.train import TrainConfig, fit

    data = load(args.data)
    configs = json.loads(args.configs) if args.configs else CONFIGS
    k, n = (int(x) for x in args.shard.split("/"))
    configs = configs[k::n]
    for over in configs:
        cfg = TrainConfig(**{"epochs": args.epochs, "patience": 6, "time_budget_s": 600, **over})
        t = time.time()
        model, history, best_epoch = fit(data, cfg, progress=False)
        scorer = TrainedScorer(model, {i: r for r, i in enumerate(data.item_ids)}, cfg.device or None or
                               ("cuda" if __import__("torch").cuda.is_available() else "cpu"))
        test = evaluate_ranks(scorer_ranks(scorer, data, "test")).metrics
        if args.blend:
            from ranker.scorers import BlendScorer
            for w in (0.1, 0.25, 0.5, 1.0, 2.0):
                bl = BlendScorer(scorer, w)
                v = evaluate_ranks(scorer_ranks(bl, data, "valid")).metrics["ndcg@10"]
                t_ = evaluate_ranks(scorer_ranks(bl, data, "test")).metrics["ndcg@10"]
                print(json.dumps({"blend": w, "valid_ndcg@10": round(v, 5), "test_ndcg@10": round(t_, 5)}), flush=True)
        row = {"config": over, "best_epoch": best_epoch, "valid_ndcg@10": history[best_epoch - 1]["valid_ndcg@10"],
               "test": {k: round(v, 5) for k, v in test.items()}, "seconds": round(time.time() - t, 1),
               "epoch_s": round(float(np.mean([h["train_s"] for h in history])), 2)}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
