"""Ranker benchmarks (prints numbers; not a test).

  * item-encoding throughput of the frozen MiniLM (cache bypassed);
  * train time per epoch (one epoch of the default config on this machine, or --skip-train);
  * query latency = user vector (user tower over a real history) + top-100 search, for 4k (the real
    catalog's trained item vectors), 100k and 1M items (synthetic: real item vectors plus noise,
    so the clusters look like a real catalog), exact vs IVF, and IVF recall@100 against exact.

    python bench/bench_ranker.py                       # everything (1M needs ~3 GB RAM, a few minutes)
    python bench/bench_ranker.py --sizes 4385 100000 --skip-train
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synthetic(base: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors around the real ones (chunked to keep peak memory ~ 2x the result)."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        x = base[rng.integers(0, len(base), m)] + noise * rng.standard_normal((m, base.shape[1]), dtype=np.float32) \
            / np.sqrt(base.shape[1])
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_search(vectors: np.ndarray, queries: np.ndarray, user_fn, histories, nprobes, k: int = 100) -> dict:
    from ranker.index import IndexConfig, VectorIndex

    n = len(vectors)
    ids = np.arange(n, dtype=np.int64)
    res: dict = {"items": n, "dim": int(vectors.shape[1]),
                 "auto_kind": "flat" if n <= IndexConfig().exact_max_items else "ivf"}

    # user vector alone (user tower on real histories), one query at a time
    t = time.time()
    for h in histories:
        user_fn(h)
    res["user_vector_ms"] = round(1000 * (time.time() - t) / len(histories), 3)

    def timed(index, **kw):
        lat = []
        found = []
        for q in queries:
            t0 = time.perf_counter()
            _, got = index.search(q[None], k, **kw)
            lat.append(time.perf_counter() - t0)
            found.append(got[0])
        return 1000 * float(np.median(lat)), 1000 * float(np.percentile(lat, 95)), found

    t = time.time()
    exact = VectorIndex.build(vectors, ids, IndexConfig(exact_max_items=n))
    res["exact_build_s"] = round(time.time() - t, 2)
    med, p95, truth = timed(exact)
    res["exact_ms_p50"], res["exact_ms_p95"] = round(med, 3), round(p95, 3)
    del exact                                   # one index in memory at a time
    t = time.time()
    ivf = VectorIndex.build(vectors, ids, IndexConfig(exact_max_items=0))
    res["ivf_build_s"] = round(time.time() - t, 2)
    res["ivf_nlist"] = ivf.describe()["nlist"]
    for nprobe in sorted(set(list(nprobes) + [ivf.nprobe])):
        nprobe = min(nprobe, res["ivf_nlist"])
        med, p95, got = timed(ivf, nprobe=nprobe)
        recall = float(np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth)]))
        res[f"ivf_nprobe{nprobe}"] = {"ms_p50": round(med, 3), "ms_p95": round(p95, 3), "recall@100": round(recall, 4)}
    res["ivf_default_nprobe"] = ivf.nprobe
    del ivf
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=[4385, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--nprobes", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--noise", type=float, default=0.6, help="synthetic spread around real item vectors")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--encode", type=int, default=256, help="item texts to encode for the throughput number")
    p.add_argument("--threads", type=int, default=0, help="faiss/torch threads (0 = default)")
    args = p.parse_args()

    import faiss
    import torch

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    from ranker.data import load_split_data
    from ranker.encoder import TextEncoder
    from ranker.scorers import ZeroShotScorer, load_scorer
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir, model_dir

    workdir = args.workdir or default_workdir()
    catalog = Catalog(db_path(workdir))
    encoder = TextEncoder("cpu")
    report: dict = {"cpu_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads()}

    items = catalog.all_items()[:args.encode]
    encoder.encode(["warm up"], use_cache=False)
    t = time.time()
    encoder.encode([i.text() for i in items], use_cache=False)
    report["encode_items_per_s"] = round(len(items) / (time.time() - t), 1)
    print(json.dumps({"encode_items_per_s": report["encode_items_per_s"], "items": len(items)}), flush=True)

    data = load_split_data(catalog, encoder)
    mdir = model_dir(workdir)
    scorer = load_scorer(mdir, "cpu") if (mdir / "config.json").exists() else ZeroShotScorer()
    report["scorer"] = f"{scorer.name} (dim {scorer.dim})"
    if (mdir / "config.json").exists():
        saved = json.loads((mdir / "config.json").read_text())
        report["trained_model_timings_s"] = saved.get("timings_s")
        print(json.dumps({"trained_model_timings_s": saved.get("timings_s"), "device": saved.get("device")}), flush=True)

    if not args.skip_train:
        from ranker.train import TrainConfig, fit

        cfg = TrainConfig(epochs=1, device="cpu")
        t = time.time()
        _, history, _ = fit(data, cfg, progress=False)
        report["train_epoch_s"] = history[0]["train_s"]
        report["train_epoch_plus_valid_eval_s"] = round(time.time() - t, 1)
        print(json.dumps({"train_epoch_s": report["train_epoch_s"], "config": "default TrainConfig, cpu"}), flush=True)

    item_vecs = scorer.item_vectors(data.item_ids, data.text_emb)
    hist_vecs = scorer.history_vectors(data.item_ids, data.text_emb)
    hist_vecs = item_vecs if hist_vecs is None else hist_vecs
    rng = np.random.default_rng(0)
    pick = rng.choice(len(data.test_hist), args.queries, replace=False)
    histories = [hist_vecs[data.test_hist[i]] for i in pick]
    queries = scorer.user_vectors(histories)
    unit = item_vecs / np.linalg.norm(item_vecs, axis=1, keepdims=True)
    report["search"] = []
    for n in args.sizes:
        vecs = item_vecs if n == len(item_vecs) else synthetic(unit, n, args.noise, rng)
        res = bench_search(vecs, queries, lambda h: scorer.user_vectors([h]), histories, args.nprobes)
        report["search"].append(res)
        print(json.dumps(res), flush=True)
        del vecs
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
