"""`explainrec ingest`: the embedded data set by default, or your own items.jsonl / events.csv."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from store.paths import default_data_dir, default_workdir, store_location


def add_workdir_argument(p: argparse.ArgumentParser) -> None:
    """The shared --workdir flag (env EXPLAINREC_HOME); every subcommand uses it."""
    p.add_argument("--workdir", type=Path, default=None,
                   help="working directory for the database, models and indexes "
                        "(default: $EXPLAINREC_HOME or .explainrec/ in the checkout)")


def resolve_workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir).resolve() if getattr(args, "workdir", None) else default_workdir()


def add_store_argument(p: argparse.ArgumentParser) -> None:
    """The shared --store flag (env EXPLAINREC_STORE) of the commands that open the catalog."""
    p.add_argument("--store", default=None, metavar="URL",
                   help="the catalog: a SQLite file path or postgresql://user@host:port/db "
                        "(default: $EXPLAINREC_STORE, else <workdir>/catalog.sqlite)")


def resolve_store(args: argparse.Namespace) -> str:
    return store_location(resolve_workdir(args), getattr(args, "store", None))


def ingest_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--data", type=Path, default=None,
                   help="UniSRec data folder (default: $EXPLAINREC_DATA or ../shared/data/amazon-scientific)")
    p.add_argument("--items", type=Path, help="your own catalog, items.jsonl")
    p.add_argument("--events", type=Path, help="your own interactions, events.csv")
    p.add_argument("--max-users", type=int, default=None, help="keep only the first N users of the data set")
    p.add_argument("--force", action="store_true", help="re-ingest even if the same files were loaded")


def ingest(args: argparse.Namespace) -> int:
    from store.catalog import Catalog
    from store.errors import IngestError, StoreError
    from store.ingest import ingest_files, ingest_unisrec

    try:
        catalog = Catalog(resolve_store(args))
    except StoreError as exc:
        print(f"ingest failed: {exc}", file=sys.stderr)
        return 1
    try:
        if args.items or args.events:
            report = ingest_files(catalog, args.items, args.events)
        else:
            report = ingest_unisrec(catalog, args.data or default_data_dir(), force=args.force,
                                    max_users=args.max_users)
    except IngestError as exc:
        print(f"ingest failed, nothing was written: {exc}", file=sys.stderr)
        return 1
    finally:
        catalog.close()
    print(json.dumps({"database": catalog.location, **report.as_dict()}))
    return 0


def _sqlite_store(args: argparse.Namespace) -> Path:
    from store.backup import BackupError
    from store.db import is_postgres_url
    location = resolve_store(args)
    if is_postgres_url(location):
        raise BackupError("the store is PostgreSQL: back it up with pg_dump / pg_basebackup (see deploy/)")
    return Path(location)


def backup_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--to", type=Path, required=True, help="file to write the backup to (replaced atomically)")


def backup(args: argparse.Namespace) -> int:
    """Online: the service may keep running and writing (SQLite backup API, one consistent snapshot)."""
    from store.backup import BackupError
    from store.backup import backup as run_backup
    try:
        report = run_backup(_sqlite_store(args), args.to)
    except (BackupError, OSError) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()))
    return 0


def restore_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--from", dest="source", type=Path, required=True, help="a file written by `explainrec backup`")
    p.add_argument("--no-keep-current", dest="keep_current", action="store_false",
                   help="do not keep the current database aside as <db>.before-restore-<time>")


def restore(args: argparse.Namespace) -> int:
    """Offline: refuses while a service has the database open."""
    from store.backup import BackupError
    from store.backup import restore as run_restore
    try:
        report = run_restore(args.source, _sqlite_store(args), keep_current=args.keep_current)
    except (BackupError, OSError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()))
    return 0
