"""Scale-out benchmark: replicas on PostgreSQL against one process on SQLite, in one run.

1. `Recommend` (no justifications, k=10) from C concurrent clients (64 by default; one channel
   each, round-robin over the replicas) for D seconds, for: 1 replica on SQLite, 1 replica on
   PostgreSQL, 2 replicas on one PostgreSQL database.
2. `SubmitFeedback` write rate on each backend (1 replica, F concurrent writers): every write
   is committed durably before the call returns (SQLite synchronous=FULL, PostgreSQL fsync on).
3. The propagation bound: an item upserted through replica A, timed from A's reply until a text
   search for its title on replica B returns it (LISTEN/NOTIFY, then B encodes the item).

Everything runs on this machine: a throwaway PostgreSQL cluster (initdb + pg_ctl, loopback),
`explainrec serve --no-llm` child processes, and the load generator (grpc.aio, one process).
On 2 cores a second replica mostly adds overhead: the figures are printed as they are.

    python bench/bench_scale.py --json scale.json
    python bench/bench_scale.py --duration 10 --max-users 2000     # quicker
    python bench/bench_scale.py --model-dir .explainrec/ranker     # the trained ranker (default: zero-shot)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))] if s else float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(targets: str, concurrency: int, duration_s: float, make_call, warmup_s: float = 3.0) -> dict:
    """C clients, one channel each, each sending its next call when the last one returns."""
    import grpc

    from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
    from server.targets import channel_target

    target, options = channel_target(targets)
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(concurrency)]
    stubs = [pb_grpc.ExplainRecStub(ch) for ch in channels]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    rng = random.Random(0)

    async def client(stub, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                await make_call(stub, rng)
                if record:
                    latencies.append(time.perf_counter() - t0)
            except grpc.aio.AioRpcError as err:
                errors[err.code().name] = errors.get(err.code().name, 0) + 1

    await asyncio.gather(*(client(s, time.perf_counter() + warmup_s, False) for s in stubs))
    t0 = time.perf_counter()
    await asyncio.gather(*(client(s, t0 + duration_s, True) for s in stubs))
    wall = time.perf_counter() - t0
    for ch in channels:
        await ch.close()
    return {"concurrency": concurrency, "duration_s": round(wall, 1), "calls": len(latencies),
            "per_s": round(len(latencies) / wall, 1), "p50_ms": round(pct(latencies, 50) * 1e3, 1),
            "p99_ms": round(pct(latencies, 99) * 1e3, 1), "errors": errors}


def recommend_call(users: list[str], k: int):
    from protos.explainrec.v1 import explainrec_pb2 as pb

    async def call(stub, rng):
        await stub.Recommend(pb.RecommendRequest(user_id=rng.choice(users), k=k), timeout=30)
    return call


def feedback_call(users: list[str], items: list[str]):
    from protos.explainrec.v1 import explainrec_pb2 as pb

    async def call(stub, rng):
        await stub.SubmitFeedback(pb.SubmitFeedbackRequest(
            user_id=rng.choice(users), item_id=rng.choice(items), kind=pb.FEEDBACK_KIND_RATING,
            helpful=pb.HELPFULNESS_HELPFUL, reason="bench"), timeout=30)
    return call


def propagation(a_target: str, b_target: str, trials: int) -> dict:
    """Seconds from UpsertItems returning on A until B's text search finds the item."""
    from protos.explainrec.v1 import explainrec_pb2 as pb
    from server.client import ExplainRecClient

    words = ["amber", "basalt", "cobalt", "delta", "ember", "fjord", "garnet", "helix", "indigo", "jasper",
             "krypton", "lumen", "magma", "nadir", "onyx", "prism", "quartz", "rhodium", "sable", "tundra"]
    rng = random.Random(7)
    bounds: list[float] = []
    on_a: list[bool] = []
    with ExplainRecClient(a_target, timeout_s=30) as ca, ExplainRecClient(b_target, timeout_s=30) as cb:
        for n in range(trials):
            title = f"{' '.join(rng.sample(words, 3)).title()} calibration probe model {n}"
            item_id = f"BENCH-PROPAGATION-{os.getpid()}-{n}"
            ca.upsert_items([pb.Item(id=item_id, title=title, category="Bench Probes", brand="Bench")])
            t0 = time.perf_counter()
            # the category filter leaves only probe items: found iff B's index holds the new one
            while item_id not in [it.item.id for it in
                                  cb.recommend(query=title, k=5, category="Bench Probes").items]:
                if time.perf_counter() - t0 > 120:
                    raise TimeoutError(f"{item_id} never reached replica B")
                time.sleep(0.01)
            bounds.append(time.perf_counter() - t0)
            on_a.append(item_id in [it.item.id for it in ca.recommend(query=title, k=5).items])
    return {"trials": trials, "searchable_on_a_at_reply": sum(on_a), "p50_s": round(statistics.median(bounds), 3),
            "max_s": round(max(bounds), 3), "all_s": [round(b, 3) for b in bounds]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here too")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of Recommend load per set-up")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--feedback-concurrency", type=int, default=16)
    p.add_argument("--feedback-duration", type=float, default=10.0)
    p.add_argument("--trials", type=int, default=10, help="upserts timed for the propagation bound")
    p.add_argument("--max-users", type=int, default=None, help="ingest only the first N users (all items)")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="a trained ranker to serve (copied to the replicas' shared workdir); default zero-shot")
    args = p.parse_args()

    import logging
    logging.basicConfig(level=logging.WARNING)
    from store.catalog import Catalog
    from store.ingest import ingest_unisrec
    from store.paths import default_data_dir
    from store.pg_local import LocalPostgres
    from tests.serve_process import ServeProcess

    out: dict = {"machine": f"{os.cpu_count()} cpus", "concurrency": args.concurrency}
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    pg = LocalPostgres().start()
    try:
        stores = {"sqlite": str(tmp / "sqlite" / "catalog.sqlite"), "postgresql": pg.create_database("bench")}
        out["ingest_s"] = {}
        for backend, location in stores.items():
            t0 = time.perf_counter()
            cat = Catalog(location)
            report = ingest_unisrec(cat, default_data_dir(), max_users=args.max_users)
            out["ingest_s"][backend] = round(time.perf_counter() - t0, 1)
            again = ingest_unisrec(cat, default_data_dir(), max_users=args.max_users, force=True)
            assert again.events_added == 0, "re-ingest added events"
            users = cat.user_ids()
            items = [i.id for i in cat.all_items()]
            cat.close()
        out.update(items=len(items), users=len(users), events=report.events_added)

        # one workdir per backend, shared by the replicas of that backend (like a shared volume)
        ranker_flags = ["--zero-shot"]
        workdirs = {b: tmp / f"work-{b}" for b in stores}
        if args.model_dir:
            for w in workdirs.values():
                shutil.copytree(args.model_dir, w / "ranker")
            ranker_flags = ["--no-zero-shot", "--no-train-if-missing"]
        out["ranker"] = "trained" if args.model_dir else "zero-shot"

        out["recommend"] = {}
        out["feedback_writes"] = {}
        for backend, replicas in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2)):
            name = f"{backend}_{replicas}_replica{'s' if replicas > 1 else ''}"
            procs = [ServeProcess("--store", stores[backend], "--workdir", str(workdirs[backend]), "--no-llm",
                                  *ranker_flags, "--grace-s", "5") for _ in range(replicas)]
            try:
                for proc in procs:
                    proc.wait_serving()
                targets = ",".join(proc.target for proc in procs)
                cpu0 = sum(cpu_s(proc.proc.pid) for proc in procs)
                result = asyncio.run(closed_loop(targets, args.concurrency, args.duration,
                                                 recommend_call(users, args.k)))
                cpu1 = sum(cpu_s(proc.proc.pid) for proc in procs)
                result["server_cpu_ms_per_call"] = round((cpu1 - cpu0) / max(1, result["calls"]) * 1e3, 2)
                result["calls_per_replica"] = [proc.calls("Recommend") for proc in procs]
                out["recommend"][name] = result
                print(name, json.dumps(result), flush=True)
                if replicas == 1:
                    writes = asyncio.run(closed_loop(targets, args.feedback_concurrency, args.feedback_duration,
                                                     feedback_call(users, items), warmup_s=1.0))
                    out["feedback_writes"][backend] = writes
                    print("feedback", backend, json.dumps(writes), flush=True)
                else:
                    out["upsert_propagation"] = propagation(procs[0].target, procs[1].target, args.trials)
                    print("propagation", json.dumps(out["upsert_propagation"]), flush=True)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.stop()
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
