"""Exact search's two fast products, in one process on one thread: `ranker.exact_search.top_k` over
the trained model's item matrix with real shoppers' user vectors, float32 (FAISS one query at a time
below BF16_MIN_BATCH, BLAS above) against bfloat16 (torch's oneDNN kernel), alternating, with the
CPU caches flushed between batches as between a server's batches (`--warm` keeps them). Prints ms
per query (top_k whole: product, candidate rule, float64 re-score) and the candidates re-scored per
query, and checks that both answer the same:

    python bench/bench_exact_search.py --workdir DIR --batch 1 2 4 16 32 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 16, 32])
    p.add_argument("--users", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warm", action="store_true", help="leave the caches warm between batches")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import numpy as np
    from threadpoolctl import threadpool_limits

    from ranker import exact_search
    from ranker.service import Ranker
    from ranker.types import RankQuery
    from store.catalog import Catalog
    from store.paths import db_path, model_dir

    catalog = Catalog(db_path(args.workdir))
    ranker = Ranker.load(model_dir(args.workdir), catalog)
    import torch
    threadpool_limits(1)
    torch.set_num_threads(1)
    users = random.Random(0).sample(catalog.user_ids(), args.users)
    vecs = np.stack([ranker._user(RankQuery(user_id=u, k=10))[0] for u in users]).astype(np.float32)
    matrices = {"float32": exact_search.ExactItems.of(ranker._vecs, False),
                "bfloat16": exact_search.ExactItems.of(ranker._vecs, True)}
    none = np.zeros(0, np.int64)
    flush = np.ones(64 << 20, np.uint8)            # 64 MB: more than the last-level cache
    counted: list[int] = []
    canonical = exact_search.canonical_scores

    def counting(item_vecs, rows, user):
        counted.append(len(rows))
        return canonical(item_vecs, rows, user)

    exact_search.canonical_scores = counting
    out: dict = {"items": int(ranker._vecs.shape[0]), "dim": int(ranker._vecs.shape[1]), "warm": args.warm,
                 "bf16_min_batch": exact_search.BF16_MIN_BATCH, "load_average": os.getloadavg()}
    for batch in args.batch:
        spent = {name: 0.0 for name in matrices}
        cands = {name: 0 for name in matrices}
        answers: dict[str, list] = {name: [] for name in matrices}
        n = 0
        for _ in range(args.rounds):
            for s in range(0, len(vecs) - batch + 1, batch):
                for name, m in matrices.items():
                    if not args.warm:
                        flush.sum()
                    counted.clear()
                    t0 = time.perf_counter()
                    got = exact_search.top_k(m, vecs[s:s + batch], [10] * batch, [none] * batch, none)
                    spent[name] += time.perf_counter() - t0
                    cands[name] += sum(counted)
                    answers[name] += [r.tolist() for r, _ in got]
                n += batch
        same = answers["float32"] == answers["bfloat16"]
        row = {name: {"ms_per_query": round(spent[name] / n * 1e3, 4), "rescored_per_query": round(cands[name] / n, 1)}
               for name in matrices}
        row["same_answers"] = same
        row["bf16_over_f32"] = round(spent["bfloat16"] / spent["float32"], 3)
        out[f"batch_{batch}"] = row
        print(f"batch {batch:>2}: " + json.dumps(row), flush=True)
        if not same:
            print("the two products answered differently", file=sys.stderr)
            return 1
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
