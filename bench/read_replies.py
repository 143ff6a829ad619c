"""Replies to read as a shopper: the service's pipeline (RankQuery by user, k = 5, stored history,
real vLLM at URL) for the users in USERS_FILE (whitespace-separated ids), EXPLAINREC_HOME's catalog
and trained ranker. Writes every item (facts, each sample with its verdict, the returned text) to
OUT.json and prints one block per item. Run from a checkout root:

    EXPLAINREC_HOME=... USERS_FILE=users.txt .venv/bin/python bench/read_replies.py URL OUT.json
"""
import asyncio
import dataclasses
import json
import sys
import os
from pathlib import Path
from explainer.config import ExplainerConfig
from explainer.pipeline import RecommendPipeline
from explainer.service import Explainer
from ranker.service import Ranker
from ranker.types import RankQuery
from store.catalog import Catalog

url, out = sys.argv[1], sys.argv[2]
users = open(os.environ["USERS_FILE"]).read().split()
home = Path(os.environ["EXPLAINREC_HOME"])
cat = Catalog(str(home / "catalog.sqlite"))
ranker = Ranker.load(home / "ranker", cat)
cfg = ExplainerConfig.from_env(vllm_url=url, workdir=home, request_timeout_s=300)
ex = Explainer.from_catalog(cfg, cat)
pipe = RecommendPipeline(cat, ranker, ex)

async def go():
    rows = []
    try:
        for u in users:
            prep = pipe.prepare(RankQuery(user_id=u, k=5))
            recs, traces = await pipe.justify(prep, use_llm=True)
            for r, tr in zip(recs, traces):
                j = r.justification
                rows.append({"user": u, "item_id": r.item.id, "item_title": r.item.title, "item_brand": r.item.brand,
                             "history": [h.title for h in prep.history],
                             "facts": dataclasses.asdict(tr.facts),
                             "samples": [{"text": s.text, "failed": list(s.verdict.failed), "finish": s.finish_reason} for s in tr.samples],
                             "returned": j.text, "source": j.source, "fallback_reason": j.fallback_reason})
    finally:
        await ex.aclose()
    return rows

rows = asyncio.run(go())
Path(out).write_text(json.dumps(rows, indent=1, default=str))
for n, r in enumerate(rows, 1):
    f = r["facts"]
    print(f"#{n} {r['user']} [{r['source']}|{','.join(f['links'][:2])}|sh={f['shoppers']}] anchor={f['anchor_name']!r} item={f['item_name']!r} brand={f['brand']!r}")
    print(f"   TITLE: {r['item_title'][:110]}")
    print(f"   TEXT: {r['returned']}")
