"""Justification feedback replayed: helpful / not-helpful ratings per link kind change which link the
explainer states, and by how much that raises the expected helpfulness on held-out shoppers.

    python bench/bench_link_feedback.py [--workdir W] [--users 400] [--ratings R.jsonl] [--json out.json]

Shoppers (test users of W's catalog, seeded order) are split in two halves. Ratings for the first
half's top-5 justifications are replayed through the same path the server uses on SubmitFeedback
(`link_kinds_for` -> `LinkPreferences.record`). They come from --ratings (JSONL rows with user_id,
item_id, helpful), else from a seeded simulated rater whose probability of "helpful" depends on
the link kind the justification states first (RATERS below, --rater), written to <json stem>.ratings.jsonl.
On the second half the justifications' facts are computed without and with the learned
preferences: the share of each first-stated link kind, how many anchors changed, and the
expected helpful rate under the rater.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The simulated shoppers: P(helpful) by the first link kind stated (a shared category and "other
# shoppers bought both" read as good reasons; "also by <brand>" and a bare similarity less so).
RATERS = {
    "default": {"variant": 0.6, "bought_together": 0.8, "category": 0.7, "attribute": 0.55, "brand": 0.35,
                "similar": 0.25, "": 0.2},
    # shoppers who distrust "other shoppers bought both" and like a shared category or brand: their
    # taste disagrees with the explainer's built-in order (bought together > category > brand)
    "contrarian": {"variant": 0.6, "bought_together": 0.3, "category": 0.8, "attribute": 0.55, "brand": 0.7,
                   "similar": 0.25, "": 0.2},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--users", type=int, default=400)
    ap.add_argument("--ratings", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rater", choices=sorted(RATERS), default="default", help="the simulated shoppers' taste")
    args = ap.parse_args()
    RATER = RATERS[args.rater]

    from explainer.config import ExplainerConfig
    from explainer.link_feedback import LinkPreferences, link_kinds_for
    from explainer.pipeline import RecommendPipeline
    from explainer.service import Explainer
    from ranker.service import Ranker
    from ranker.types import RankQuery
    from ranker.versions import current_version_dir
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir

    workdir = args.workdir or default_workdir()
    catalog = Catalog(db_path(workdir))
    mdir = current_version_dir(workdir)
    ranker = Ranker.load(mdir, catalog, device="cpu") if mdir else Ranker.zero_shot(catalog, device="cpu")
    explainer = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog)
    pipe = RecommendPipeline(catalog, ranker, explainer)
    rng = random.Random(args.seed)
    users = [u for u in catalog.user_ids() if len(catalog.history(u)) >= 3]
    rng.shuffle(users)
    users = users[:args.users]
    train_users, eval_users = users[:len(users) // 2], users[len(users) // 2:]

    def top_facts(user: str):
        prepared = pipe.prepare(RankQuery(user_id=user, k=5))
        return list(zip(prepared.recommendations, prepared.facts))

    # 1. the ratings to replay
    if args.ratings:
        ratings = [json.loads(line) for line in args.ratings.read_text().splitlines() if line.strip()]
    else:
        ratings = []
        for user in train_users:
            for rec, facts in top_facts(user):
                kind = facts.links[0] if facts.links else ""
                ratings.append({"user_id": user, "item_id": rec.item.id, "helpful": int(rng.random() < RATER[kind])})
        if args.json:
            path = args.json.with_suffix(".ratings.jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in ratings))
    # 2. replayed through the server's path
    prefs = LinkPreferences()
    for r in ratings:
        kinds = link_kinds_for(pipe, r["user_id"], r["item_id"])
        if kinds:
            prefs.record(kinds, bool(r["helpful"]))

    # 3. held-out shoppers, without and with the preferences
    def view(preferences):
        explainer.link_preferences = preferences
        out = {}
        for user in eval_users:
            for rec, facts in top_facts(user):
                out[(user, rec.item.id)] = (facts.links[0] if facts.links else "", facts.anchor_id)
        return out

    before, after = view(None), view(prefs)
    keys = sorted(set(before) & set(after))

    def summary(v):
        kinds = Counter(v[k][0] for k in keys)
        return {"first_link_share": {k or "none": round(n / len(keys), 4) for k, n in kinds.most_common()},
                "expected_helpful": round(sum(RATER[v[k][0]] for k in keys) / len(keys), 4)}

    result = {"ratings": len(ratings), "rated_helpful": sum(int(r["helpful"]) for r in ratings),
              "scores": prefs.summary(), "eval_pairs": len(keys),
              "before": summary(before), "after": summary(after),
              "anchor_changed_share": round(sum(before[k][1] != after[k][1] for k in keys) / len(keys), 4),
              "first_link_changed_share": round(sum(before[k][0] != after[k][0] for k in keys) / len(keys), 4),
              "rater": {args.rater: RATER} if not args.ratings else f"replayed from {args.ratings}", "ranker": ranker.version}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
