"""`explainrec serve --workers N` with its local vLLM, from start to serving: how long the port
answers health NOT_SERVING, when every worker serves, and what the first explained replies of each
worker say (no `llm_unavailable` is expected: the workers wait for the shared LLM's start). Then
SIGTERM: how long the drain takes and whether any vLLM process is left.

Serves HOME itself (its catalog, trained ranker and prepared LLM): point it at a copy.

    python bench/bench_workers_start.py --home /tmp/copy-of-a-workdir --workers 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status(stub, service: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as err:
        return err.code().name


def main() -> int:
    import grpc
    from grpc_health.v1 import health_pb2_grpc

    from protos.explainrec.v1 import explainrec_pb2 as pb
    from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
    from store.catalog import Catalog

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="the workdir to serve (a copy: serve writes to it)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--calls", type=int, default=12, help="explained Recommend calls (k=3), each on a new connection")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    cat = Catalog(args.home / "catalog.sqlite")
    users = [u for u in cat.user_ids() if len(cat.history(u)) >= 5][:args.calls]
    cat.close()
    log = tempfile.NamedTemporaryFile("w", prefix="bench-workers-", suffix=".log", delete=False)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(args.home), "--workers",
                             str(args.workers), "--port", "0", "--metrics-port", "-1", "--grace-s", "5"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    out: dict = {"workers": args.workers, "log": log.name}
    try:
        info = json.loads(proc.stdout.readline())
        out["port_bound_s"] = round(time.monotonic() - t0, 2)
        serving: list[float] = []
        threading.Thread(target=lambda: (proc.stdout.readline(), serving.append(time.monotonic() - t0)),
                         daemon=True).start()
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(info["grpc"]))
        not_serving: list[float] = []
        while not serving:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with rc {proc.returncode}; see {log.name}")
            if _status(health, "") == "NOT_SERVING":
                not_serving.append(time.monotonic() - t0)
            time.sleep(0.25)
        out["all_serving_s"] = round(serving[0], 2)
        out["not_serving_polls"] = len(not_serving)
        out["not_serving_until_s"] = round(not_serving[-1], 2) if not_serving else None
        by: dict[str, int] = {}
        for i in range(args.calls):
            with grpc.insecure_channel(info["grpc"], options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
                reply = pb_grpc.ExplainRecStub(ch).Recommend(
                    pb.RecommendRequest(user_id=users[i % len(users)], k=3, explain=True), timeout=120)
            for it in reply.items:
                key = f"{reply.request_id.split('-')[0]} {it.justification.source} {it.justification.fallback_reason}"
                by[key] = by.get(key, 0) + 1
        out["justifications"] = by          # "<worker> <source> <fallback_reason>" -> count
        out["llm_unavailable"] = sum(n for k, n in by.items() if k.endswith("llm_unavailable"))
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out["rc"] = proc.wait(180)
        out["drain_s"] = round(time.monotonic() - t1, 2)
        left = subprocess.run(["pgrep", "-f", f"vllm.entrypoints.openai.api_server.*{args.home}"],
                              capture_output=True, text=True).stdout.split()
        out["vllm_left"] = len(left)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
