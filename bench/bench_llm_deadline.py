"""How many justifications the LLM writes under concurrency, and how long explained calls take,
with the served LLM deadline policy (`server/app.py` llm_budget, `explainer/service.py`).

Starts `explainrec serve` (the local SmolLM2 on vLLM, this checkout or --checkout DIR) on a copy of
--home, waits until its LLM answers, then for each --deadlines value runs --clients concurrent
clients, each making --calls explained Recommend calls (k items, a different shopper each time, so
the justification cache never answers) with that gRPC deadline (0: none, the server's
explain_deadline_s applies). Prints per setting: items written by the LLM / by the template (and
why), call latency p50 / p90 / max.

    python bench/bench_llm_deadline.py --home /path/workdir --clients 8 --calls 3 -k 5 --deadlines 0 60 --json out.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2) if xs else float("nan")


def start_serve(checkout: Path, home: Path, extra: list[str]) -> tuple[subprocess.Popen, str, Path]:
    log = Path(tempfile.mkstemp(prefix="bench-llm-deadline-", suffix=".log")[1])
    env = dict(os.environ, EXPLAINREC_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(checkout))
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", "0", "--metrics-port", "-1",
                             *extra], cwd=checkout, env=env, stdout=subprocess.PIPE,
                            stderr=open(log, "w"), text=True, start_new_session=True)
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        raise RuntimeError(f"serve did not start:\n{log.read_text()[-3000:]}")
    return proc, json.loads(line)["grpc"], log


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="workdir with the catalog, a ranker and the prepared LLM")
    ap.add_argument("--checkout", type=Path, default=ROOT, help="the code to serve (e.g. a worktree of an older commit)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--calls", type=int, default=3, help="explained calls per client per setting")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--deadlines", type=float, nargs="+", default=[0.0, 60.0], help="gRPC deadline per call, s (0: none)")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `serve` argument (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from server.client import ExplainRecClient
    from store.catalog import Catalog

    work = Path(tempfile.mkdtemp(prefix="bench-llm-deadline-"))
    home = work / "home"
    shutil.copytree(args.home, home, ignore=shutil.ignore_patterns("logs", "vllm-cache"))
    cat = Catalog(home / "catalog.sqlite")
    users = [u for u in cat.user_ids() if len(cat.history(u)) >= 3]
    cat.close()
    random.Random(args.seed).shuffle(users)
    out: dict = {"checkout": str(args.checkout), "clients": args.clients, "calls": args.calls, "k": args.k,
                 "settings": []}
    t0 = time.monotonic()
    proc, target, log = start_serve(args.checkout, home, args.serve_arg)
    try:
        with ExplainRecClient(target, timeout_s=600) as c:
            c.wait_until_serving(timeout_s=900)
            while c.health("explainrec.v1.LLM", timeout_s=5) != "SERVING":
                if time.monotonic() - t0 > 900:
                    raise TimeoutError("the LLM did not come up")
                time.sleep(1)
            out["llm_up_after_s"] = round(time.monotonic() - t0, 1)
            c.recommend(user_id=users.pop(), k=args.k, explain=True, timeout_s=120)     # warm-up
        lock = threading.Lock()
        for deadline in args.deadlines:
            sources: collections.Counter = collections.Counter()
            latencies: list[float] = []
            errors: collections.Counter = collections.Counter()

            def client(n: int) -> None:
                with ExplainRecClient(target, timeout_s=600, retries=0) as cc:
                    for _ in range(args.calls):
                        with lock:
                            user = users.pop()
                        t = time.monotonic()
                        try:
                            reply = cc.recommend(user_id=user, k=args.k, explain=True,
                                                 timeout_s=deadline if deadline > 0 else 600)
                        except Exception as exc:  # noqa: BLE001 - counted, the bench goes on
                            with lock:
                                errors[type(exc).__name__ + ":" + str(getattr(exc, "code", lambda: "")())] += 1
                            continue
                        dt = time.monotonic() - t
                        with lock:
                            latencies.append(dt)
                            for it in reply.items:
                                j = it.justification
                                sources[j.source if j.source == "llm" else f"template:{j.fallback_reason}"] += 1
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(client, range(args.clients)))
            items = sum(sources.values())
            row = {"deadline_s": deadline or None, "calls": len(latencies), "items": items,
                   "llm_share": round(sources["llm"] / items, 3) if items else None, "sources": dict(sources),
                   "p50_s": pct(latencies, 0.5), "p90_s": pct(latencies, 0.9),
                   "max_s": round(max(latencies), 2) if latencies else None, "errors": dict(errors)}
            out["settings"].append(row)
            print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
