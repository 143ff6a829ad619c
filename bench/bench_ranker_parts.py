"""Where a Recommend's ranking CPU goes: `Ranker.rank_many` in this process, one thread, batches of
`--batch` queries, CPU milliseconds per query, split into the store read of the histories, the
user side, the user tower, the search and the candidates with their evidence.

Two passes over the same shoppers: first none of them has a cached user vector (the tower runs),
then again (their vectors come from the cache). Measures the code of the checkout it runs from
(sys.path starts at the current directory), so it can time an older commit's ranker too:

    python bench/bench_ranker_parts.py --workdir DIR --batch 1 16 32 [--gc default] [--json out.json]
"""
from __future__ import annotations

import argparse
import functools
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
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16, 32])
    p.add_argument("--users", type=int, default=1000, help="shoppers per pass")
    p.add_argument("--gc", choices=("serving", "default"), default="serving",
                   help="the garbage collector as `explainrec serve` sets it once loaded (server.gc_tuning), "
                        "or Python's defaults")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    from ranker.service import Ranker
    from ranker.types import RankQuery
    from store.catalog import Catalog
    from store.paths import db_path, model_dir

    catalog = Catalog(db_path(args.workdir))
    ranker = Ranker.load(model_dir(args.workdir), catalog)
    import numpy  # noqa: F401 - every BLAS the ranker loads is loaded before the thread limits
    try:
        import scipy.special  # noqa: F401
    except ImportError:
        pass
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)                      # as serving sets them (server.setup.set_search_threads)
    import faiss
    faiss.omp_set_num_threads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)

    if args.gc == "serving":
        from server.gc_tuning import tune_for_serving
        tune_for_serving()

    spent: dict[str, float] = {}

    def timed(obj, name: str, label: str) -> None:
        fn = getattr(obj, name)

        @functools.wraps(fn)
        def wrapper(*a, **kw):
            t0 = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - t0
        setattr(obj, name, wrapper)

    timed(catalog, "histories", "histories")
    timed(ranker, "_user_side", "user_side")
    timed(ranker, "_run_user_tower", "user_tower")
    timed(ranker, "_search_plain", "search")
    timed(ranker, "_candidates", "candidates_and_evidence")

    out: dict = {"items": catalog.item_count(), "scorer": ranker.describe(), "gc": args.gc,
                 "load_average": os.getloadavg()}
    all_users = catalog.user_ids()
    for batch in args.batch:
        users = random.Random(batch).sample(all_users, min(len(all_users), args.users + 200))
        warm, users = users[:200], users[200:]
        for s in range(0, len(warm), batch):            # first calls: lazy set-up, memo tables
            ranker.rank_many([RankQuery(user_id=u, k=10) for u in warm[s:s + batch]])
        ranker.user_vectors.clear()
        for label in ("new_users", "cached_user_vectors"):
            spent.clear()
            t0 = time.process_time()
            for s in range(0, len(users), batch):
                ranker.rank_many([RankQuery(user_id=u, k=10) for u in users[s:s + batch]])
            total = time.process_time() - t0
            out[f"batch_{batch}_{label}"] = {"total_ms_per_query": round(total / len(users) * 1e3, 3),
                                             **{k: round(v / len(users) * 1e3, 3) for k, v in spent.items()}}
            print(f"batch {batch:>2}, {label}: " + json.dumps(out[f"batch_{batch}_{label}"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
