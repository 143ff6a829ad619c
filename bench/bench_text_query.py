"""What a free-text query returns: each of N random items' short name, lower-cased, as the whole query
(no user), ranked by the served model at several `RankerConfig.text_weight` values.

    python bench/bench_text_query.py --workdir W [--items 300] [--weights 0,0.25,0.5,0.75,1] [--json F]

Per weight: item_hit@10 (the item named is in the top 10) and type_share@10 (share of the top 10 in
the named item's leaf category: a "digital ph meter" query should return pH meters).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--weights", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from explainer.names import short_name
    from ranker.service import Ranker
    from ranker.types import RankQuery
    from store.catalog import Catalog
    from store.paths import db_path

    catalog = Catalog(db_path(args.workdir))
    ranker = Ranker.load(args.workdir / "ranker", catalog)
    items = [ranker._items[i] for i in ranker._ids]
    random.Random(args.seed).shuffle(items)
    picked = items[: args.items]
    queries = [(it, short_name(it.title, it.brand, it.category).lower()) for it in picked]
    out: dict = {"items": len(queries), "model": ranker.version, "weights": {}}
    base = ranker.config
    for w in (float(x) for x in args.weights.split(",")):
        ranker.config = dataclasses.replace(base, text_weight=w)
        hit = share = 0.0
        t = time.time()
        for it, text in queries:
            cands = ranker.recommend(RankQuery(text=text, k=10))
            ids = [c.item_id for c in cands]
            hit += it.id in ids
            share += sum(ranker._items[i].category == it.category for i in ids) / max(len(ids), 1)
        n = len(queries)
        out["weights"][str(w)] = {"item_hit@10": round(hit / n, 3), "type_share@10": round(share / n, 3),
                                  "ms_per_query": round(1000 * (time.time() - t) / n, 2)}
        print(json.dumps({"text_weight": w, **out["weights"][str(w)]}), flush=True)
    for text in ("digital ph meter",):
        for w in (0.0, max(float(x) for x in args.weights.split(","))):
            ranker.config = dataclasses.replace(base, text_weight=w)
            top = [ranker._items[c.item_id].title[:60] for c in ranker.recommend(RankQuery(text=text, k=3))]
            out.setdefault("examples", {})[f"{text} @ {w}"] = top
            print(json.dumps({"text": text, "text_weight": w, "top3": top}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
