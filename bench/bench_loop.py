"""The loop replayed on the Scientific data: new items arrive, live events follow, `retrain` runs.

    python bench/bench_loop.py --json loop.json [--init-budget-s 420] [--retrain-budget-s 300]

1. A private copy of the catalog (from <workdir>, default $EXPLAINREC_HOME) holds 10% of the items
   out (seeded): they are soft-deleted and all their train-split events are taken out.
2. The initial model trains on that (`ranker.train.train`, one tower, --init-budget-s).
3. The held-out items arrive as the service receives them: `Ranker.add_items` (what UpsertItems
   calls) and their train-split events as `live` events (what RecordEvents stores).
4. Before: test users whose target is a new item ("new_items") and all other test users ("warm")
   are scored with the initial model, the new items served from their text (they have no residual).
5. `explainrec retrain` (ranker.retrain.retrain, default budget) runs; after: the same users with
   the version it wrote (whether or not it was promoted; "promoted" says which).

Full ranking over the whole catalog, history = every event before the target (the replayed live
events included, both before and after), history items kept (the comparison protocol).
Writes {"before": {"new_items": {...}, "warm": {...}}, "after": {...}, "retrain_s": ..., ...}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _scores(scorer, data, mask_new: np.ndarray) -> dict:
    from ranker.evaluate import evaluate_ranks, scorer_ranks
    from ranker.metrics import ndcg_gains

    ranks = scorer_ranks(scorer, data, "test")
    out = {}
    for name, mask in (("new_items", mask_new), ("warm", ~mask_new)):
        r = evaluate_ranks(ranks, mask)
        gains = ndcg_gains(ranks[mask], 10)
        out[name] = {**{k: round(v, 5) for k, v in r.metrics.items()}, "users": r.users,
                     "ndcg@10_se": round(float(gains.std(ddof=1) / np.sqrt(max(len(gains), 1))), 5)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="where the ingested catalog is")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--hold-out", type=float, default=0.10, help="share of items held out (default 0.10)")
    ap.add_argument("--init-budget-s", type=float, default=420.0)
    ap.add_argument("--retrain-budget-s", type=float, default=None, help="default: retrain's own default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the bench workdir here (default: a temp dir)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse --keep from an earlier run (same --seed): skip steps 1-3, score and retrain again")
    args = ap.parse_args()

    from ranker.encoder import TextEncoder
    from ranker.service import Ranker
    from ranker.train import TrainConfig, train
    from store.catalog import Catalog, Event
    from store.paths import db_path, default_workdir, model_dir

    src = db_path(args.workdir or default_workdir())
    if args.resume and not (args.keep and (model_dir(args.keep) / "config.json").exists()):
        ap.error("--resume needs --keep DIR from an earlier run")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        with sqlite3.connect(src) as s, sqlite3.connect(db_path(work)) as d:
            s.backup(d)                                # a consistent copy, WAL included
    catalog = Catalog(db_path(work))
    rng = np.random.default_rng(args.seed)
    items = catalog.all_items()                        # the same rows in the same order on --resume
    held = {items[i].id: items[i] for i in rng.choice(len(items), int(round(args.hold_out * len(items))), replace=False)}
    encoder = TextEncoder("cpu")
    init_s = upsert_s = 0.0
    if args.resume:
        replay = catalog.events_of(catalog.user_ids(), ("live",))
        return _score_and_retrain(args, work, catalog, encoder, held, replay, init_s, upsert_s)

    # 1. hold out: their train events leave the database (kept aside to be replayed as live)
    con = sqlite3.connect(db_path(work))
    marks = ",".join("?" * len(held))
    replay = [Event(u, i, k, ts, "live") for u, i, k, ts in con.execute(
        f"SELECT user_id, item_id, kind, ts FROM events WHERE split='train' AND item_id IN ({marks}) ORDER BY rowid_",
        list(held))]
    con.execute(f"DELETE FROM events WHERE split='train' AND item_id IN ({marks})", list(held))
    con.commit()
    con.close()
    catalog.delete_items(list(held))
    print(f"held out {len(held)} of {len(items)} items and their {len(replay)} train events", flush=True)

    # 2. initial model without them
    t0 = time.time()
    train(catalog, model_dir(work), TrainConfig(ensemble=1, time_budget_s=args.init_budget_s, device="cpu"),
          encoder=encoder, progress=False)
    init_s = time.time() - t0
    print(f"initial model trained in {init_s:.0f} s", flush=True)

    # 3. the items arrive (UpsertItems -> Ranker.add_items), then their events (RecordEvents -> live)
    ranker = Ranker.load(model_dir(work), catalog, device="cpu", encoder=encoder)
    t0 = time.time()
    catalog.upsert_items(list(held.values()))   # what UpsertItems writes; the ranker owns only its index
    ranker.add_items(list(held.values()))
    upsert_s = time.time() - t0
    catalog.add_events(replay)
    return _score_and_retrain(args, work, catalog, encoder, held, replay, init_s, upsert_s)


def _score_and_retrain(args, work, catalog, encoder, held, replay, init_s, upsert_s) -> int:
    from ranker.data import load_split_data
    from ranker.retrain import DEFAULT_BUDGET_S, retrain
    from ranker.scorers import load_scorer
    from store.paths import model_dir

    # 4. before
    data = load_split_data(catalog, encoder, live=True, hold_out_live=False)
    new_rows = {r for r, i in enumerate(data.item_ids) if i in held}
    mask_new = np.array([t in new_rows for t in data.test_target], dtype=bool)
    before = _scores(load_scorer(model_dir(work), "cpu"), data, mask_new)
    print("before", json.dumps(before), flush=True)

    # 5. retrain, after
    summary = retrain(catalog, work, args.retrain_budget_s or DEFAULT_BUDGET_S, progress=False, encoder=encoder,
                      device="cpu")
    after = _scores(load_scorer(Path(summary["path"]), "cpu"), data, mask_new)
    print("after", json.dumps(after), flush=True)
    catalog.close()

    ratio = after["new_items"]["ndcg@10"] / max(before["new_items"]["ndcg@10"], 1e-9)
    warm_drop = before["warm"]["ndcg@10"] - after["warm"]["ndcg@10"]
    result = {
        "before": before, "after": after, "retrain_s": summary["retrain_s"], "promoted": summary["promoted"],
        "retrain": {k: summary[k] for k in ("new", "current", "data", "decision")},
        "held_out_items": len(held), "replayed_events": len(replay), "init_train_s": round(init_s, 1),
        "upsert_s": round(upsert_s, 1),
        "targets": {"new_items_ratio": round(ratio, 3), "new_items_ok": ratio >= 1.5,
                    "warm_drop": round(warm_drop, 5), "warm_ok": warm_drop <= before["warm"]["ndcg@10_se"]},
    }
    print(json.dumps(result["targets"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
