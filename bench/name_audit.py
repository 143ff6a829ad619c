"""List the short names of a whole catalog that name no product, by one stated rule.

A name is bad when `explainer.names.name_problem` finds a fault (empty, fragment start or end,
praise, repeated word, instruction) or `explainer.head_nouns.head_problem` does: its last word is
no head noun ("No Clean", "… Vinyl Coated") or it is only the maker's name ("JYE Tech").
Names are built as a reply builds them (explainer.reply_names.item_name).

    .venv/bin/python bench/name_audit.py CATALOG.sqlite [--json OUT.json] [--names NAMES.jsonl]

--names writes every item's name (id, title, brand, category, name), to compare two versions
of the code on one catalog.
"""
from __future__ import annotations

import argparse
import collections
import json
import time

from explainer.categories import CategoryNames
from explainer.head_nouns import head_problem
from explainer.names import name_problem
from explainer.reply_names import item_name
from store.catalog import Catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", help="a catalog (SQLite path or PostgreSQL URL); only read")
    ap.add_argument("--json", help="write the counts and the bad names here")
    ap.add_argument("--names", help="write every item's name here (JSON lines)")
    args = ap.parse_args()
    cat = Catalog(args.catalog)
    t0 = time.perf_counter()
    items = cat.all_items()
    cats = CategoryNames(i.category for i in items)
    rows, bad = [], []
    kinds: collections.Counter[str] = collections.Counter()
    for it in items:
        category = cats.name(it.category)
        name = item_name(it, cats)
        problem = name_problem(name) or head_problem(name, it.brand, category)
        row = {"id": it.id, "title": it.title, "brand": it.brand, "category": category, "name": name,
               "problem": problem}
        rows.append(row)
        if problem:
            kinds[problem] += 1
            bad.append(row)
    cat.close()
    for r in bad:
        print(f"{r['problem']:<16} {r['name']!r:<50} <- {r['title'][:90]!r}")
    summary = {"items": len(items), "bad": len(bad), "by_problem": dict(kinds),
               "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**summary, "bad_names": bad}, f, indent=1)
    if args.names:
        with open(args.names, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
