"""The large-catalog index by measurement: top-100 latency on one thread and recall@100 against
exact search, for the index the auto-choice (`IndexConfig.kind_for`) picks at this size, and with
--compare for every kind (flat exact, IVF-Flat, 8-bit IVF-PQ and 4-bit fast-scan IVF-PQ, each + exact re-rank).

Items: N synthetic unit vectors around the trained model's real item vectors (real vector plus
noise, so the clusters look like a real catalog; as bench/bench_ranker.py). Queries: the trained
user tower over 200 real shoppers' histories (zero-shot MiniLM when no model is trained).

    python bench/bench_index.py --items 1000000 --json out.json
    python bench/bench_index.py --items 300000 --compare
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_ranker import synthetic  # noqa: E402  (one synthetic-catalog maker for both index benches)


def real_queries(workdir: Path, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(item vectors of the real catalog, user vectors of n real shoppers)."""
    from ranker.scorers import load_scorer
    from store.catalog import Catalog
    from store.paths import db_path, model_dir
    mdir = model_dir(workdir)
    items = np.load(mdir / "item_vectors.npy").astype(np.float32)
    hpath = mdir / "history_vectors.npy"
    hvecs = np.load(hpath).astype(np.float32) if hpath.exists() else items
    row = {i: r for r, i in enumerate(json.loads((mdir / "index_ids.json").read_text()))}
    scorer = load_scorer(mdir, "cpu")
    catalog = Catalog(db_path(workdir))
    try:
        users = [u for u in catalog.user_ids()[:5 * n] if catalog.history(u)][:n]
        steps = [hvecs[[row[i] for i in catalog.history(u) if i in row]] for u in users]
    finally:
        catalog.close()
    steps = [s for s in steps if len(s)]
    return items, scorer.user_vectors(steps)


def measure(index, queries: np.ndarray, truth: np.ndarray, k: int = 100, nprobe: int | None = None) -> dict:
    lat, hits = [], []
    for q, t in zip(queries, truth):
        t0 = time.perf_counter()
        _, got = index.search(q[None], k, nprobe=nprobe)
        lat.append(time.perf_counter() - t0)
        hits.append(len(set(got[0].tolist()) & set(t.tolist())) / k)
    return {"ms_p50": round(1e3 * float(np.median(lat)), 3), "ms_p95": round(1e3 * float(np.percentile(lat, 95)), 3),
            "recall@100": round(float(np.mean(hits)), 4)}


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = 100) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 50):
        scores = queries[s:s + 50] @ vectors.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, 1).argsort(axis=1)[:, ::-1]
        out[s:s + 50] = np.take_along_axis(part, order, 1)
    return out


def bench_chosen_index(workdir: Path, n: int, compare: bool = False, noise: float = 0.6,
                       build_threads: int = 2, kinds: list[str] | None = None) -> dict:
    """Builds the auto-chosen index over n synthetic items; search timed on one thread."""
    import faiss

    from ranker.index import IndexConfig, VectorIndex

    base, queries = real_queries(workdir)
    vectors = synthetic(base, n, noise, np.random.default_rng(0))
    truth = exact_top(vectors, queries)
    config = IndexConfig()
    # "ivfpq8": the classic 8-bit IVF-PQ, "ivfpq4": 4-bit fast scan (4 dims per code), "ivfpq": the default config
    kinds = kinds or ([config.kind_for(n)] if not compare else ["ivf", "ivfpq8", "ivfpq4"])
    res: dict = {"items": n, "dim": int(vectors.shape[1]), "queries": len(queries), "chosen_kind": config.kind_for(n),
                 "load_average": [round(x, 2) for x in os.getloadavg()]}
    ids = np.arange(n, dtype=np.int64)
    for kind in kinds:
        cfg = IndexConfig(exact_max_items=0, ivf_flat_max_items=n if kind == "ivf" else 0,
                          **({"ivfpq8": {"pq_bits": 8, "pq_dims_per_code": 8},
                              "ivfpq4": {"pq_bits": 4, "pq_dims_per_code": 4}}.get(kind, {})))
        faiss.omp_set_num_threads(build_threads)
        t0 = time.perf_counter()
        index = VectorIndex.build(vectors, ids, cfg)
        index.attach_vectors(lambda rows: vectors[rows])
        build_s = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)               # serving searches one query per thread
        r = measure(index, queries, truth)
        if kind.startswith("ivfpq"):   # the re-rank depth and lists probed, on the same built index
            sweep = {}
            for nprobe in (index.nprobe // 2, index.nprobe, 2 * index.nprobe):
                for factor in (2, 4, 10, 20):
                    index.rerank_factor = factor
                    sweep[f"nprobe{nprobe}_rerank{factor}"] = measure(index, queries, truth, nprobe=nprobe)
            r["sweep"] = sweep
            index.rerank_factor = cfg.rerank_factor
        r.update({"build_s": round(build_s, 1), "nprobe": index.nprobe, "nlist": index.describe()["nlist"],
                  "rerank_factor": index.rerank_factor if kind.startswith("ivfpq") else None,
                  "pq_bits": cfg.pq_bits if kind.startswith("ivfpq") else None})
        res[kind] = r
        if kind == res["chosen_kind"]:
            res["chosen_ms_p50"], res["chosen_recall@100"] = r["ms_p50"], r["recall@100"]
        del index
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--compare", action="store_true", help="build and time IVF-Flat and IVF-PQ both")
    p.add_argument("--kinds", nargs="+", choices=["ivf", "ivfpq8", "ivfpq4", "ivfpq"], default=None,
                   help="build and time these kinds (default: the auto-choice; --compare: ivf, ivfpq8, ivfpq4)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    from store.paths import default_workdir
    res = bench_chosen_index((args.workdir or default_workdir()).resolve(), args.items, args.compare, kinds=args.kinds)
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
