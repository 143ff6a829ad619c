"""`explainrec explain-batch`: justify many (user, item) pairs, resumably.

    explainrec explain-batch --input pairs.csv --output out.jsonl
    explainrec explain-batch --input users.txt --users-topk 5 --output out.parquet
    explainrec explain-batch --input pairs.parquet --output out.jsonl --engine ray [--ray-address HOST:6379]

Kill it at any point (kill -9 included) and run the same command again: it continues,
and the output ends with every accepted key exactly once (journal.py says why). Input
formats, keys and what gets rejected: inputs.py. No heavy imports at module level.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from explainer.batch.config import BatchConfig, Engine
from store.cli import add_store_argument, add_workdir_argument, resolve_store, resolve_workdir

log = logging.getLogger(__name__)


def explain_batch_arguments(p: argparse.ArgumentParser) -> None:
    add_workdir_argument(p)
    add_store_argument(p)
    p.add_argument("--input", type=Path, required=True,
                   help="pairs: .jsonl/.csv/.parquet with user_id, item_id[, key]; "
                        "with --users-topk: user_id rows (or a .txt, one user per line)")
    p.add_argument("--output", type=Path, required=True,
                   help="output .jsonl (also the progress journal); a .parquet name writes "
                        "<name>.jsonl while running and the Parquet file when complete")
    p.add_argument("--parquet", type=Path, default=None, help="also write this Parquet file when complete")
    p.add_argument("--rejects", type=Path, default=None,
                   help="bad rows as JSON lines {file, line, key, reason} (default: <output>.rejects.jsonl)")
    p.add_argument("--config", type=Path, default=None, help="TOML file with a [batch] table (flags win)")
    BatchConfig.add_arguments(p)


def output_paths(output: Path, parquet: Path | None) -> tuple[Path, Path | None]:
    """(jsonl journal, parquet or None)."""
    output = Path(output)
    if output.suffix.lower() == ".parquet":
        return output.with_suffix(".jsonl"), output
    return output, parquet


def explain_batch(args: argparse.Namespace) -> int:
    from explainer.batch.inputs import plan, write_rejects
    from explainer.batch.journal import Journal, OutputLocked, write_parquet
    from store.catalog import Catalog
    from store.paths import model_dir, store_missing

    logging.getLogger("httpx").setLevel(logging.WARNING)   # one line per request drowns the progress bar
    try:
        cfg = BatchConfig.from_args(args, args.config)
    except (ValueError, OSError) as exc:
        print(f"explain-batch: bad configuration: {exc}", file=sys.stderr)
        return 2
    if not args.input.exists():
        print(f"input: {args.input} does not exist", file=sys.stderr)
        return 2
    workdir = resolve_workdir(args)
    db = resolve_store(args)
    if store_missing(db):
        print(f"no catalog at {db}: run `explainrec ingest` first", file=sys.stderr)
        return 2
    jsonl, parquet = output_paths(args.output, args.parquet)
    rejects_path = args.rejects or jsonl.with_name(jsonl.stem + ".rejects.jsonl")

    journal = Journal(jsonl)
    try:
        journal.open()
    except OutputLocked as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        if journal.truncated_bytes:
            log.warning("dropped a torn last line (%d bytes) from %s", journal.truncated_bytes, jsonl)
        catalog = Catalog(db)
        try:
            work = plan(args.input, catalog, journal.done, topk=cfg.users_topk, max_group=cfg.max_group)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        finally:
            catalog.close()
        write_rejects(rejects_path, work.rejects)
        stray = len(journal.done) - work.done
        if stray:
            log.warning("%d keys in %s are not in this input (a different input?)", stray, jsonl)
        log.info("%d keys: %d done before, %d to do; %d rows rejected -> %s",
                 work.total, work.done, work.pending, len(work.rejects), rejects_path)
        runtime_rejects = 0
        if work.pending:
            ranker_dir = ""
            if not cfg.zero_shot:
                cand = Path(cfg.ranker_dir) if cfg.ranker_dir else model_dir(workdir)
                if cfg.ranker_dir or cand.exists():
                    ranker_dir = str(cand)
            try:
                runtime_rejects = _run(args, cfg, work, journal, rejects_path, str(db), ranker_dir, workdir)
            except KeyboardInterrupt:
                # finished groups were flushed on the way out; the journal makes the rest resumable
                print(f"interrupted: {len(journal.done & work.order.keys())} of {work.total} keys in {jsonl}; "
                      "run the same command again to continue", file=sys.stderr)
                return 130
        complete = work.total - runtime_rejects <= len(journal.done & work.order.keys())
        missing = work.total - len(journal.done & work.order.keys())
    finally:
        journal.close()
    if parquet is not None and complete:   # every key that could be justified is there
        write_parquet(jsonl, parquet, work.order)
    print(json.dumps({"output": str(jsonl), "parquet": str(parquet) if parquet and complete else None,
                      "keys": work.total, "done": work.total - missing, "missing": missing,
                      "rejected_rows": len(work.rejects) + runtime_rejects, "rejects": str(rejects_path)}))
    return 0 if complete else 1


def _run(args: argparse.Namespace, cfg: BatchConfig, work, journal, rejects_path: Path, db: str, ranker_dir: str,
         workdir: Path) -> int:
    """Run the pending groups on the chosen engine; returns the rows rejected at run time."""
    import asyncio
    import signal
    import threading

    from tqdm import tqdm

    from explainer.batch.runner import Sink, run_local
    from explainer.batch.worker import WorkerSpec, build_worker

    def on_term(signum, frame):   # SIGTERM -> the same orderly stop as Ctrl-C (flush, stop our vLLM)
        raise KeyboardInterrupt
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_term)

    server = None
    progress = None
    try:
        urls = cfg.vllm_url
        if not urls and cfg.llm:
            from explainer.config import ExplainerConfig
            from explainer.vllm_server import LocalVLLMServer
            server = LocalVLLMServer(ExplainerConfig(workdir=workdir)).start()
            urls = (server.url,)
        overrides: dict = {"concurrency": cfg.concurrency, "request_timeout_s": cfg.request_timeout_s}
        if not cfg.llm:
            overrides["enabled"] = False
        if cfg.n_samples is not None:
            overrides["n_samples"] = cfg.n_samples
        spec = WorkerSpec(db_path=db, ranker_dir=ranker_dir, vllm_urls=() if not cfg.llm else urls,
                          model=cfg.model, deadline_s=cfg.deadline_s, explainer_overrides=overrides)
        progress = tqdm(total=work.total, initial=work.done, unit="expl", dynamic_ncols=True,
                        disable=not cfg.progress, desc="explain-batch")
        sink = Sink(journal, rejects_path, str(args.input), progress=progress, chunk_size=cfg.chunk_size)
        if cfg.engine == Engine.RAY:
            from explainer.batch.ray_engine import run_ray
            run_ray(work.groups, spec, sink, address=cfg.ray_address, workers=cfg.ray_workers,
                    concurrency=cfg.concurrency)
        else:
            async def main():
                worker, aclose = build_worker(spec)
                try:
                    await run_local(work.groups, worker, sink, cfg.concurrency)
                finally:
                    await aclose()
            asyncio.run(main())
        return sink.rejected
    finally:
        if progress is not None:
            progress.close()
        if server is not None:
            server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
