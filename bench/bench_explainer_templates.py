"""The deterministic template must always pass the strict verifier: check it on every shopper.

For each user of the catalog: the held-out test item and one random item, each citing the
user's last three purchases as evidence. Prints the failures (there should be none).

  python bench/bench_explainer_templates.py [--users N]
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from explainer.config import ExplainerConfig
from explainer.service import Explainer
from ranker.types import Candidate, HistoryEvidence
from store.catalog import Catalog
from store.history import history_items
from store.paths import db_path, default_workdir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=default_workdir())
    p.add_argument("--users", type=int, default=0, help="0: all")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    catalog = Catalog(db_path(args.workdir))
    ex = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog)
    items = catalog.all_items()
    rng = random.Random(args.seed)
    seqs = catalog.sequences()
    users = list(seqs)[: args.users or None]
    t0 = time.perf_counter()
    failures, n = [], 0
    for u in users:
        hist = history_items(catalog, [i for i, s in seqs[u] if s != "test"], u, ("train", "valid"))
        if not hist:
            continue
        picks = [catalog.get_item(i) for i, s in seqs[u] if s == "test"] + rng.sample(items, 1)
        pairs = [(it, Candidate(it.id, 0.5, tuple(HistoryEvidence(h.id, 0.5) for h in hist[-3:]))) for it in picks]
        for j, f in zip(ex.explain_template(hist, pairs), ex.facts(hist, pairs)):
            v = ex.verify(j.text, f, hist)
            n += 1
            if not v.ok:
                failures.append({"text": j.text, "failed": v.failed, "facts": f.lines})
    print(json.dumps({"justifications": n, "failures": len(failures), "seconds": round(time.perf_counter() - t0, 1),
                      "first_failures": failures[:5]}, indent=2))


if __name__ == "__main__":
    main()
