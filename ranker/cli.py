"""`explainrec train` and `explainrec eval-ranker`. Light module: heavy imports happen inside the commands."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from store.cli import add_store_argument, add_workdir_argument, resolve_store, resolve_workdir


def train_arguments(p: argparse.ArgumentParser) -> None:
    from ranker.train import TrainConfig

    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--force", action="store_true", help="retrain even if a model directory exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--config", type=Path, default=None, help="TOML file with a [train] table (flags win)")
    TrainConfig.add_arguments(p)


def train(args: argparse.Namespace) -> int:
    from ranker.train import TrainConfig
    from ranker.train import train as run_train
    from store.catalog import Catalog
    from store.paths import model_dir, store_missing

    workdir = resolve_workdir(args)
    store = resolve_store(args)
    out = model_dir(workdir)
    if (out / "config.json").exists() and not args.force:
        print(f"train: {out} already holds a model (use --force to retrain)")
        return 0
    if store_missing(store):
        print(f"train: no catalog at {store} (run `explainrec ingest` first)", file=sys.stderr)
        return 1
    try:
        cfg = TrainConfig.from_args(args, args.config)
    except (ValueError, OSError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    catalog = Catalog(store)
    try:
        path = run_train(catalog, out, cfg, progress=not args.quiet)
    finally:
        catalog.close()
    config = json.loads((path / "config.json").read_text())
    print(json.dumps({"model_dir": str(path), "best_epoch": config["best_epoch"], "valid": config["valid"],
                      "timings_s": config["timings_s"]}))
    return 0


def eval_ranker_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help='write {"model": {...}, "popularity": {...}, "zero_shot": {...}, "cold_target": {...}, '
                        '"no_history": {...}} (test split) to PATH; each peer adds "<peer>": {...} beside "model" '
                        '(and in each view) and "peers": {"<peer>": {train_s, epochs, best_epoch, stop_reason, ...}}')
    p.add_argument("--model-dir", type=Path, default=None, help="trained ranker (default: the serving version, models/current, else <workdir>/ranker)")
    p.add_argument("--device", default="", help="cuda or cpu (default: cuda when present)")
    p.add_argument("--peers", default="", metavar="NAMES",
                   help="also train and evaluate these sequential peers on the same split, comma-separated "
                        "(known: sasrec, RecBole 1.2.1's SASRec with its defaults)")
    p.add_argument("--peer-time-budget-s", type=float, default=None, metavar="S",
                   help="per peer: stop starting new training epochs after S seconds (default: 1800)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines from peer training")


def eval_ranker(args: argparse.Namespace) -> int:
    from ranker.peers import parse_peers
    from ranker.report import run_eval
    from ranker.versions import current_version_dir
    from store.catalog import Catalog
    from store.paths import model_dir

    try:   # bad flags fail before anything is loaded
        peers = parse_peers(args.peers) if args.peers else ()
        if args.peer_time_budget_s is not None and not args.peer_time_budget_s > 0:
            raise ValueError(f"--peer-time-budget-s must be > 0 (got {args.peer_time_budget_s})")
    except ValueError as exc:
        print(f"eval-ranker: {exc}", file=sys.stderr)
        return 2
    workdir = resolve_workdir(args)
    mdir = args.model_dir or current_version_dir(workdir) or model_dir(workdir)
    if not (Path(mdir) / "config.json").exists():
        print(f"eval-ranker: no trained model in {mdir} (run `explainrec train`)", file=sys.stderr)
        return 1
    catalog = Catalog(resolve_store(args))
    try:
        report = run_eval(catalog, Path(mdir), device=args.device or None, peers=peers,
                          peer_time_budget_s=args.peer_time_budget_s, progress=not args.quiet)
    finally:
        catalog.close()
    print(report.table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.protocol_json(), indent=2))
        print(f"wrote {args.json}")
    return 0


def retrain_arguments(p: argparse.ArgumentParser) -> None:
    from ranker.retrain import DEFAULT_BUDGET_S

    add_workdir_argument(p)
    p.add_argument("--time-budget-s", type=float, default=DEFAULT_BUDGET_S,
                   help=f"wall-clock bound for one round, all members together (default: {DEFAULT_BUDGET_S:g})")
    p.add_argument("--force", action="store_true", help="promote the new version even if it is worse")
    p.add_argument("--every", default=None, metavar="INTERVAL",
                   help="keep running: one round every INTERVAL (30m, 2h, 90s); Ctrl-C stops")
    p.add_argument("--device", default="", help="cuda or cpu (default: cuda when present)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def retrain(args: argparse.Namespace) -> int:
    import time

    from ranker.retrain import parse_every
    from ranker.retrain import retrain as run_retrain
    from store.catalog import Catalog
    from store.paths import db_path

    workdir = resolve_workdir(args)
    try:
        every = parse_every(args.every) if args.every else None
        if args.time_budget_s <= 0:
            raise ValueError(f"--time-budget-s must be > 0 (got {args.time_budget_s})")
    except ValueError as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 2
    if not db_path(workdir).exists():
        print(f"retrain: no catalog at {db_path(workdir)} (run `explainrec ingest` first)", file=sys.stderr)
        return 1
    while True:
        started = time.time()
        catalog = Catalog(db_path(workdir))
        try:
            summary = run_retrain(catalog, workdir, args.time_budget_s, force=args.force, progress=not args.quiet,
                                  device=args.device, threads=args.threads)
        except FileNotFoundError as exc:
            print(f"retrain: {exc}", file=sys.stderr)
            return 1
        finally:
            catalog.close()
        print(json.dumps(summary), flush=True)
        if every is None:
            return 0
        time.sleep(max(0.0, every - (time.time() - started)))


def models_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    p.add_argument("--json", action="store_true", help="print the versions as JSON")


def models(args: argparse.Namespace) -> int:
    from ranker.retrain import models_table
    from ranker.versions import list_versions

    rows = list_versions(resolve_workdir(args))
    print(json.dumps(rows, indent=2) if args.json else models_table(rows))
    return 0
