"""Where `explainrec serve`'s CPU goes under load, thread by thread: one serving process (W=1),
the bench's Recommend load (`bench_server.load_test`, k=10, no justifications) for a warm-up and
then a measured level, and each thread's user + system CPU over the measured level read from
/proc/PID/task/*/stat, per request: the event loop (the main thread), the ranking threads, and
grpc's own threads.

Settings to compare run as alternating servers in the same run (A B A B ...), each given as
`NAME=ENV=VALUE[,ENV=VALUE]`, e.g. the garbage-collector tuning on and off:

    python bench/bench_server_threads.py --workdir DIR --rounds 2 \\
        --compare tuned= python_gc=EXPLAINREC_SERVER_GC_GEN0_THRESHOLD=0 --json out.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server as bs  # noqa: E402


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread of `pid`, keyed 'loop' (the main thread) or 'name/tid'."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        key = "loop" if int(tid) == pid else f"{name}/{tid}"
        out[key] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def measure(workdir: Path, env: dict[str, str], users: list[str], clients: int, duration: float) -> dict:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        svc = bs.ServiceProcess(workdir, ["--no-llm", "--workers", "1", "--no-zero-shot", "--no-train-if-missing"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        svc.wait_serving()

        async def run() -> tuple[dict, dict, dict, float | None]:
            await bs.load_test(svc.target, users, clients, min(3.0, duration / 2), 10, svc.cpu_s)
            before = thread_cpu_s(svc.proc.pid)
            lag_before = bs.lag_buckets(svc.metrics_port) if svc.metrics_port else None
            level = await bs.load_test(svc.target, users, clients, duration, 10, svc.cpu_s, warm_s=0)
            # the loop's lag over the measured level, as bench_server reads it (the lag histogram)
            lag = bs.histogram_quantile(0.99, lag_before, bs.lag_buckets(svc.metrics_port)) \
                if lag_before is not None else None
            return before, level, thread_cpu_s(svc.proc.pid), lag
        before, level, after, lag = asyncio.run(run())
    finally:
        svc.stop()
    n = max(1, level["requests"])
    per_thread = {k: (after[k] - before.get(k, 0.0)) / n * 1e3 for k in after}
    ranking = sorted((v for k, v in per_thread.items() if k != "loop" and not k.startswith("event_engine")),
                     reverse=True)
    return {"requests_per_s": level["throughput_rps"], "server_cpu_ms_per_request": level["server_cpu_ms_per_request"],
            "loop_ms_per_request": round(per_thread.get("loop", 0.0), 3),
            "event_loop_lag_ms_p99": None if lag is None else round(lag * 1e3, 2),
            # the busiest non-grpc threads: the ranking pool (its idle threads use nothing)
            "other_python_threads_ms_per_request": round(sum(ranking), 3),
            "grpc_threads_ms_per_request": round(sum(v for k, v in per_thread.items()
                                                     if k.startswith("event_engine")), 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--compare", nargs="+", default=["as_configured="],
                   help="NAME=ENV=VALUE[,ENV=VALUE] (NAME= alone: the environment as it is)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    from store.catalog import Catalog
    from store.paths import db_path
    catalog = Catalog(db_path(args.workdir))
    users = catalog.user_ids()
    catalog.close()
    settings = {}
    for spec in args.compare:
        name, _, rest = spec.partition("=")
        settings[name] = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    out: dict = {"clients": args.clients, "duration_s": args.duration, "load_average_start": bs.load_average(),
                 "runs": {name: [] for name in settings}}
    for r in range(args.rounds):
        for name, env in settings.items():
            m = measure(args.workdir, env, users, args.clients, args.duration)
            m["load_average"] = bs.load_average()
            out["runs"][name].append(m)
            print(json.dumps({"round": r + 1, "setting": name, **m}), flush=True)
    out["median"] = {name: {k: statistics.median(m[k] for m in runs) for k in runs[0]
                            if k != "load_average" and None not in (m[k] for m in runs)}
                     for name, runs in out["runs"].items()}
    print(json.dumps({"median": out["median"]}, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
