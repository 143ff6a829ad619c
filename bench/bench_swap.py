"""Hot swap under load: a promoted ranker version swaps into a running server while 32 clients call
Recommend. Prints failed calls and the p99 of calls during the swap against the steady p99.

    python bench/bench_swap.py [--workdir W] [--concurrency 32] [--steady-s 15] [--json out.json]

`explainrec serve --llm off --model-watch-s 0.5` runs in its own process on a private copy of
W's catalog and serving model (W: a workdir with a trained ranker). The copy of the model is
also written as version `v900-bench`. Timeline, all under the same load:
steady phase (--steady-s), then `current` is pointed at v900-bench, then calls run until every
client has seen `model_version == v900-bench` and 2 s more. "swap" calls are those that started
between the promotion and the first reply from the new version plus 2 s (the window in which the
server loads the new version beside the old one, probes it, and swaps).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_server import ServiceProcess, pct  # noqa: E402


async def run_load(target: str, users: list[str], concurrency: int, steady_s: float, promote, version: str) -> dict:
    import grpc

    from protos.explainrec.v1 import explainrec_pb2 as pb
    from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc

    calls: list[tuple[float, float, str]] = []        # (start, latency, model_version)
    errors: dict[str, int] = {}
    channels = [grpc.aio.insecure_channel(target) for _ in range(concurrency)]
    stubs = [pb_grpc.ExplainRecStub(ch) for ch in channels]
    rng = random.Random(0)
    state = {"stop": False, "promoted_at": None, "first_new": None}

    async def client(stub) -> None:
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                reply = await stub.Recommend(pb.RecommendRequest(user_id=rng.choice(users), k=10), timeout=30)
                t1 = time.perf_counter()
                calls.append((t0, t1 - t0, reply.model_version))
                if reply.model_version == version and state["first_new"] is None:
                    state["first_new"] = t1
            except grpc.aio.AioRpcError as err:
                errors[err.code().name] = errors.get(err.code().name, 0) + 1

    tasks = [asyncio.ensure_future(client(s)) for s in stubs]
    await asyncio.sleep(3.0)                                   # warm-up, not counted
    t_steady = time.perf_counter()
    await asyncio.sleep(steady_s)
    state["promoted_at"] = time.perf_counter()
    promote()
    deadline = state["promoted_at"] + 300
    while time.perf_counter() < deadline and (state["first_new"] is None
                                              or time.perf_counter() < state["first_new"] + 2.0):
        await asyncio.sleep(0.1)
    state["stop"] = True
    await asyncio.gather(*tasks)
    for ch in channels:
        await ch.close()
    p_at, new_at = state["promoted_at"], state["first_new"] or deadline
    steady = [lat for t, lat, _ in calls if t_steady <= t < p_at]
    swap = [lat for t, lat, _ in calls if p_at <= t <= new_at + 2.0]
    return {
        "concurrency": concurrency, "failed_calls": sum(errors.values()), "errors": errors,
        "calls": len(calls), "steady_calls": len(steady), "swap_calls": len(swap),
        "steady_p50_ms": round(pct(steady, 50) * 1e3, 1), "steady_p99_ms": round(pct(steady, 99) * 1e3, 1),
        "swap_p50_ms": round(pct(swap, 50) * 1e3, 1), "swap_p99_ms": round(pct(swap, 99) * 1e3, 1),
        "swap_s": round(new_at - p_at, 2),
        "versions_seen": sorted({v for _, _, v in calls}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--steady-s", type=float, default=15.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from ranker.versions import current_version_dir, promote, versions_root
    from store.catalog import Catalog
    from store.paths import db_path, default_workdir

    src = args.workdir or default_workdir()
    serving = current_version_dir(src)
    if serving is None:
        print(f"no trained ranker in {src}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-swap-"))
    (work / "logs").mkdir()
    with sqlite3.connect(db_path(src)) as s, sqlite3.connect(db_path(work)) as d:
        s.backup(d)
    shutil.copytree(serving, work / "ranker")
    cache = src / "cache"
    if cache.exists():
        shutil.copytree(cache, work / "cache")
    version = "v900-bench"
    versions_root(work).mkdir()
    shutil.copytree(serving, versions_root(work) / version)
    catalog = Catalog(db_path(work))
    users = [u for u in catalog.user_ids()[:2000]]
    catalog.close()

    service = ServiceProcess(work, ["--llm", "off", "--model-watch-s", "0.5", "--no-train-if-missing"])
    try:
        service.wait_serving()
        result = asyncio.run(run_load(service.target, users, args.concurrency, args.steady_s,
                                      lambda: promote(work, versions_root(work) / version), version))
    finally:
        service.stop()
    result["swap_p99_over_steady_p99"] = round(result["swap_p99_ms"] / max(result["steady_p99_ms"], 1e-9), 2)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
