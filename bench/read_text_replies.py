"""Replies to a free-text query, to read as a shopper: the service's pipeline (RankQuery with a user
and a text, stored history) for each query in QUERIES, top K, through the templates (no URL) or a
real vLLM at URL. Prints one block per item (query_match, title, returned text) and writes them to
OUT.json. Run from a checkout root:

    EXPLAINREC_HOME=... .venv/bin/python bench/read_text_replies.py --user U [--k 4] [--url URL] [--json OUT]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERIES = ("digital ph meter", "nitrile gloves", "glass beaker", "soldering iron", "hex nut", "lab thermometer",
           "safety goggles", "pipette tips", "multimeter", "label maker")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", required=True)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--url", default="", help="vLLM base URL (empty: the templates answer)")
    ap.add_argument("--queries", default=",".join(QUERIES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from explainer.config import ExplainerConfig
    from explainer.pipeline import RecommendPipeline
    from explainer.service import Explainer
    from ranker.service import Ranker
    from ranker.types import RankQuery
    from store.catalog import Catalog

    home = Path(os.environ["EXPLAINREC_HOME"])
    cat = Catalog(str(home / "catalog.sqlite"))
    ranker = Ranker.load(home / "ranker", cat)
    cfg = ExplainerConfig.from_env(vllm_url=args.url, workdir=home, request_timeout_s=300, enabled=bool(args.url))
    ex = Explainer.from_catalog(cfg, cat)
    pipe = RecommendPipeline(cat, ranker, ex)

    async def go() -> list[dict]:
        rows = []
        try:
            for q in args.queries.split(","):
                prep = pipe.prepare(RankQuery(user_id=args.user, text=q, k=args.k))
                recs, _ = await pipe.justify(prep, use_llm=bool(args.url), deadline_s=600.0 if args.url else None)
                for r, f in zip(recs, prep.facts):
                    j = r.justification
                    assert j is not None
                    rows.append({"query": q, "item_id": r.item.id, "title": r.item.title,
                                 "query_match": r.candidate.query_match, "text": j.text, "source": j.source,
                                 "fallback_reason": j.fallback_reason, "failed": list(j.failed_rules),
                                 "facts": list(dataclasses.asdict(f)["lines"])})
        finally:
            await ex.aclose()
        return rows

    rows = asyncio.run(go())
    for n, r in enumerate(rows, 1):
        print(f"#{n} [{r['query']}] qm={r['query_match']:.3f} {r['source']}/{r['fallback_reason']} {r['title'][:90]}")
        print(f"    {r['text']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    cat.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
