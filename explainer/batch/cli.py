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
    p.add_argument("--users-topk", type=int, default=0, metavar="K",
                   help="input is user ids; justify the ranker's top K items of each (keys user#rank)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", default="", help="Ray cluster address (default: start a small local Ray)")
    p.add_argument("--ray-workers", type=int, default=1, help="Ray actors (each builds a ranker + explainer)")
    p.add_argument("--vllm-url", action="append", default=[],
                   help="OpenAI-compatible vLLM endpoint; repeat for several (Ray actors spread over them). "
                        "Default: start a local vLLM server for the job")
    p.add_argument("--model", default="", help="served model name (default: asked from the server)")
    p.add_argument("--no-llm", action="store_true", help="deterministic templates only, no vLLM")
    p.add_argument("--ranker-dir", type=Path, default=None,
                   help="trained ranker directory (default: <workdir>/ranker if trained, else zero-shot)")
    p.add_argument("--zero-shot", action="store_true", help="use the untuned MiniLM ranker")
    p.add_argument("--concurrency", type=int, default=32, help="items in flight to vLLM (per process / actor)")
    p.add_argument("--max-group", type=int, default=16, help="most items of one user per Explainer call")
    p.add_argument("--chunk-size", type=int, default=64, help="output lines per fsync'ed chunk")
    p.add_argument("--n-samples", type=int, default=None, help="LLM samples per item (explainer default if unset)")
    p.add_argument("--deadline-s", type=float, default=None, help="per-group LLM deadline (seconds; default none)")
    p.add_argument("--request-timeout-s", type=float, default=300.0,
                   help="per-request HTTP timeout. Batch jobs queue many requests on purpose, so this is "
                        "much longer than the service's: a timeout here means a template, not a retry")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    if not 1 <= args.max_group <= 256:
        print(f"max_group must be in 1..256 (got {args.max_group})", file=sys.stderr)
        return 2
    for name, value, low in (("concurrency", args.concurrency, 1),
                             ("chunk_size", args.chunk_size, 1), ("ray_workers", args.ray_workers, 1),
                             ("users_topk", args.users_topk, 0)):
        if value < low:
            print(f"{name} must be >= {low} (got {value})", file=sys.stderr)
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
            work = plan(args.input, catalog, journal.done, topk=args.users_topk, max_group=args.max_group)
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
            if not args.zero_shot:
                cand = Path(args.ranker_dir) if args.ranker_dir else model_dir(workdir)
                if args.ranker_dir or cand.exists():
                    ranker_dir = str(cand)
            try:
                runtime_rejects = _run(args, work, journal, rejects_path, str(db), ranker_dir, workdir)
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


def _run(args, work, journal, rejects_path: Path, db: str, ranker_dir: str, workdir: Path) -> int:
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
        urls = tuple(args.vllm_url)
        if not urls and not args.no_llm:
            from explainer.config import ExplainerConfig
            from explainer.vllm_server import LocalVLLMServer
            server = LocalVLLMServer(ExplainerConfig(workdir=workdir)).start()
            urls = (server.url,)
        overrides: dict = {"concurrency": args.concurrency, "request_timeout_s": args.request_timeout_s}
        if args.no_llm:
            overrides["enabled"] = False
        if args.n_samples is not None:
            overrides["n_samples"] = args.n_samples
        spec = WorkerSpec(db_path=db, ranker_dir=ranker_dir, vllm_urls=() if args.no_llm else urls,
                          model=args.model, deadline_s=args.deadline_s, explainer_overrides=overrides)
        progress = tqdm(total=work.total, initial=work.done, unit="expl", dynamic_ncols=True,
                        disable=args.no_progress, desc="explain-batch")
        sink = Sink(journal, rejects_path, str(args.input), progress=progress, chunk_size=args.chunk_size)
        if args.engine == "ray":
            from explainer.batch.ray_engine import run_ray
            run_ray(work.groups, spec, sink, address=args.ray_address, workers=args.ray_workers,
                    concurrency=args.concurrency)
        else:
            async def main():
                worker, aclose = build_worker(spec)
                try:
                    await run_local(work.groups, worker, sink, args.concurrency)
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
