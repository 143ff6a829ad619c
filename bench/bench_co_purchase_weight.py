"""What down-weighting heavy buyers changes in the co-purchase reasons (explainer.links.CoPurchases).

For a random sample of users: the trained ranker's top k, and each item's facts twice: with every
co-buyer counting 1 and no lift rule (the table before), and as the code runs (heavy buyers
down-weighted, the weak reason needing a lift of CoPurchases.MIN_LIFT; --no-lift: without it). Counts the co-purchase statements of each ("bought together" links and the weak reason
"N other shoppers who bought your X also bought it"), how many rest on heavy buyers only, and
how many change, with examples. Reads the store and the ranker, writes nothing to them.

    EXPLAINREC_HOME=/tmp/copy-of-home python bench/bench_co_purchase_weight.py --users 300 --json out.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def statement(f) -> tuple:
    """What the facts say about co-purchases: ("link", anchor, shoppers) / ("weak", reason item, shoppers) / ()."""
    if f.shoppers and "bought_together" in f.links:
        return ("link", f.anchor_id, f.shoppers)
    if f.reason == "co_buyers":
        return ("weak", f.reason_id, f.shoppers)
    return ()


def main() -> int:
    from explainer.config import ExplainerConfig
    from explainer.pipeline import RecommendPipeline
    from explainer.service import Explainer
    from ranker.service import Ranker
    from ranker.types import RankQuery
    from store.catalog import Catalog

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("EXPLAINREC_HOME", ".explainrec")))
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-lift", dest="lift", action="store_false",
                    help="after: down-weighting only (the weak reason's lift rule off)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    cat = Catalog(str(args.home / "catalog.sqlite"))
    ranker = Ranker.load(args.home / "ranker", cat)
    ex = Explainer.from_catalog(ExplainerConfig(enabled=False), cat)
    pipe = RecommendPipeline(cat, ranker, ex)
    co = ex.read_model.co_purchases
    users = sorted(cat.user_ids())
    users = random.Random(args.seed).sample(users, min(args.users, len(users)))
    titles = {}
    counts: collections.Counter[str] = collections.Counter()
    examples = []
    for u in users:
        prep = pipe.prepare(RankQuery(user_id=u, k=args.k), justify=False)
        history = pipe.load_history(prep.query)
        if not history:
            continue
        recs = list(prep.recommendations)
        co.weighted, co.min_lift = False, 0.0
        before = pipe.facts(history, recs)
        co.weighted, co.min_lift = True, (co.MIN_LIFT if args.lift else 0.0)
        after = pipe.facts(history, recs)
        for r, fb, fa in zip(recs, before, after):
            counts["items"] += 1
            sb, sa = statement(fb), statement(fa)
            for tag, s in (("before", sb), ("after", sa)):
                if s:
                    counts[f"{tag}_{s[0]}"] += 1
            if sb:
                buyers = [w for w in (co.weight(x) for x in co._buyers.get(r.item.id, set()) & co._buyers.get(sb[1], set()))]
                if all(w < 1 for w in buyers):
                    counts[f"before_{sb[0]}_heavy_only"] += 1
            if sb != sa:
                counts["changed"] += 1
                counts[f"changed_{(sb or ('none',))[0]}_to_{(sa or ('none',))[0]}"] += 1
                if len(examples) < 12:
                    for i in {r.item.id, *(s[1] for s in (sb, sa) if s)}:
                        titles.setdefault(i, cat.get_item(i).title[:70])
                    examples.append({"user": u, "item": titles[r.item.id],
                                     "before": [sb[0], titles[sb[1]], sb[2]] if sb else None,
                                     "after": [sa[0], titles[sa[1]], sa[2]] if sa else None,
                                     "after_links": list(fa.links), "after_reason": fa.reason})
    out = {"users": len(users), "k": args.k, **counts, "seconds": round(time.perf_counter() - t0, 1),
           "examples": examples}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    cat.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
