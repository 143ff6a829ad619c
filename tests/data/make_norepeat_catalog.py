"""Builds the no-repeat catalog: a slice of Scientific in which nobody takes the same item twice.

Nothing of it is committed: it is written from ../shared/data/amazon-scientific into a folder
you choose, as the generic `items.jsonl` + `events.csv`, so it comes in through `explainrec ingest
--items --events` like any other catalog (leave-one-out recomputed there):

    python tests/data/make_norepeat_catalog.py OUT_DIR [--users 2000]

Per user (the first N users of Scientific.test.inter, in file order), the full sequence is the
test line's history plus its target; every occurrence of an item after its first is dropped, and
users left with fewer than 3 items are dropped. The catalog holds the items those users touched.
Events are purchases one day apart (only their order matters).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

DAY = 86_400
START = 1_600_000_000


def build(data_dir: Path, out_dir: Path, users: int = 2000) -> tuple[Path, Path]:
    """Writes out_dir/items.jsonl and out_dir/events.csv. Returns their paths."""
    from store.ingest import parse_unisrec_text

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    index_to_id = {}
    for line in (data_dir / "Scientific.item2index").read_text().splitlines():
        item, _, idx = line.partition("\t")
        index_to_id[idx.strip()] = item.strip()
    sequences: list[tuple[str, list[str]]] = []
    with open(data_dir / "Scientific.test.inter", encoding="utf-8") as f:
        next(f)                                                    # header
        for line in f:
            user, history, target = line.rstrip("\n").split("\t")
            seq = [index_to_id[i] for i in (*history.split(), target)]
            distinct = list(dict.fromkeys(seq))                      # first occurrence of each item, in order
            if len(distinct) >= 3:
                sequences.append((f"U{int(user):05d}", distinct))
            if len(sequences) >= users:
                break
    used = {i for _, seq in sequences for i in seq}
    out_dir.mkdir(parents=True, exist_ok=True)
    items_path, events_path = out_dir / "items.jsonl", out_dir / "events.csv"
    with open(items_path, "w", encoding="utf-8") as out, \
            open(data_dir / "Scientific.text", encoding="utf-8") as f:
        next(f)
        for line in f:
            item, _, text = line.rstrip("\n").partition("\t")
            if item in used:
                title, category, brand = parse_unisrec_text(text)
                row = {"id": item, "title": title or item}
                if category:
                    row["category"] = category
                if brand:
                    row["brand"] = brand
                out.write(json.dumps(row) + "\n")
    with open(events_path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "item_id", "kind", "timestamp"])
        for user, seq in sequences:
            for pos, item in enumerate(seq):
                writer.writerow([user, item, "purchase", START + pos * DAY])
    return items_path, events_path


def main() -> None:
    from store.paths import default_data_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--users", type=int, default=2000, help="users taken from the start of the test file")
    parser.add_argument("--data", type=Path, default=None, help="Scientific folder (default ../shared/...)")
    args = parser.parse_args()
    items, events = build(args.data or default_data_dir(), args.out_dir, args.users)
    print(f"wrote {items} and {events}")


if __name__ == "__main__":
    main()
