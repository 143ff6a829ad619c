"""What keeping the explainer's co-purchase table live costs (explainer/read_model.py): adding the
purchases a RecordEvents call records, reading back the purchases of the users another process
announced, and rebuilding the whole table from the store (a replica's listener after a reconnect).
Reads the store, writes nothing to it.

    python bench/bench_co_purchases.py --store /path/catalog.sqlite --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from explainer.config import ExplainerConfig
    from explainer.service import Explainer
    from store.catalog import Catalog, Event
    from store.paths import default_workdir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=str(default_workdir() / "catalog.sqlite"), help="SQLite path or PostgreSQL URL")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    catalog = Catalog(args.store)
    t0 = time.perf_counter()
    model = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog).read_model
    out: dict = {"store": catalog.location, "read_model_build_s": round(time.perf_counter() - t0, 3)}
    items = [i.id for i in catalog.all_items()]
    users = catalog.user_ids()

    def timed(fn, n: int) -> float:
        runs = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    call = [Event(f"bench-{k}", items[k % len(items)]) for k in range(10)]   # a RecordEvents call of 10
    out["add_10_purchases_us"] = round(1e6 * timed(lambda: model.add_events(call), 200), 1)
    for n in (1, 50):
        out[f"read_back_{n}_users_ms"] = round(1e3 * timed(lambda: model.refresh_co_purchases(catalog, users[:n]),
                                                            args.repeat * 4), 3)
    out["full_rebuild_s"] = round(timed(lambda: model.refresh_co_purchases(catalog, None), args.repeat), 3)
    out["users"], out["items"] = len(users), len(items)
    catalog.close()
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
