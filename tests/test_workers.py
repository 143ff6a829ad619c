"""`explainrec serve --workers N`: several serving processes on one port (server/workers.py).

The fast test checks the SQLite change notices that keep the workers' indexes in step; the slow ones
run a real two-worker server on loopback: both workers answer, an item upserted through one is
searchable through the other, /metrics sums both, and SIGTERM leaves no process behind; with
`--llm local` (a stand-in vLLM) no worker serves until the shared LLM's start has ended, then both
answer with it, SIGHUP swaps every worker to a newly promoted model, and a failed start serves
templates. The state each worker keeps in memory and must follow the store: tests/test_worker_state.py."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store.catalog import Catalog, Item

ROOT = Path(__file__).resolve().parents[1]


def test_sqlite_change_notices_reach_another_catalog_on_the_same_file(tmp_path):
    writer, reader = Catalog(tmp_path / "c.sqlite"), Catalog(tmp_path / "c.sqlite")
    writer.upsert_items([Item(id="A", title="old item")])
    got: list = []
    heard = threading.Event()

    def on_change(ids):
        got.append(ids)
        if ids:
            heard.set()
    writer.upsert_items([Item(id="A", title="changed after the reader opened")])
    stop = reader.watch_item_changes(on_change)
    try:
        writer.upsert_items([Item(id="B", title="new item")])
        writer.delete_items(["A"])
        reader.upsert_items([Item(id="C", title="its own change")])     # not reported back to itself
        assert heard.wait(5)
        deadline = time.monotonic() + 5
        while [i for ids in got for i in ids] != ["A", "A", "B", "A"] and time.monotonic() < deadline:
            time.sleep(0.05)
        # every change since the reader opened the file, its own excepted, and no "compare everything"
        assert [i for ids in got for i in ids] == ["A", "A", "B", "A"]
    finally:
        stop()
        writer.close()
        reader.close()


def _tree(pid: int) -> set[int]:
    """pid and its live descendants."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in tree:
                tree.add(child)
                frontier.append(child)
    return {p for p in tree if p in parents}


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = (Path(f"/proc/{p}/stat")).read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


@pytest.mark.slow
def _cpus_allowed(pid: int) -> set[int]:
    """The CPUs a process may run on, from /proc/PID/status ("0-1,4")."""
    line = next(x for x in open(f"/proc/{pid}/status") if x.startswith("Cpus_allowed_list:"))
    out: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _thread_nice(pid: int) -> list[tuple[str, int]]:
    """(thread name, nice) of each thread of `pid`, the main thread first."""
    out = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=lambda t: int(t) != pid):
        stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        out.append((stat[stat.index("(") + 1:stat.rindex(")")], int(stat.rsplit(")", 1)[1].split()[16])))
    return out


def test_two_workers_share_the_port_and_stop_together(tmp_path, small_db, some_user):
    import grpc
    import httpx

    from protos.explainrec.v1 import explainrec_pb2 as pb
    from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
    shutil.copy(small_db, tmp_path / "catalog.sqlite")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(tmp_path), "--no-llm",
                             "--zero-shot", "--port", "0", "--metrics-port", "0", "--grace-s", "5", "--workers", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    try:
        info = json.loads(proc.stdout.readline())
        assert info["workers"] == 2
        assert json.loads(proc.stdout.readline()) == {"serving": True, "workers": 2}, "".join(log)[-3000:]
        workers = _tree(proc.pid) - {proc.pid}
        assert len(workers) >= 2

        # one connection per channel (no shared subchannel): the kernel spreads them over the workers
        channels = [grpc.insecure_channel(info["grpc"], options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(12)]
        stubs = [pb_grpc.ExplainRecStub(ch) for ch in channels]
        by_worker: dict[str, pb_grpc.ExplainRecStub] = {}
        for stub in stubs:
            reply = stub.Recommend(pb.RecommendRequest(user_id=some_user, k=3), timeout=30)
            assert len(reply.items) == 3
            by_worker.setdefault(reply.request_id.split("-")[0], stub)   # a made request id starts per process
        assert len(by_worker) == 2, "both workers answer on the one port"

        # each worker on its own share of the CPUs (server/cpu_placement.py), its ranking threads
        # (started by the calls above) at a higher nice value than its event loop
        allowed = [_cpus_allowed(pid) for pid in sorted(workers)]
        if len(os.sched_getaffinity(0)) >= 2:
            assert not allowed[0] & allowed[1], allowed
        for pid in workers:
            nice = _thread_nice(pid)      # Python 3.11 names no OS thread: the lowered ones are the ranking pool
            lowered = [n for _name, n in nice[1:] if n != nice[0][1]]
            assert lowered and set(lowered) == {nice[0][1] + 10}, nice

        # an item upserted through one worker becomes searchable through the other (store change notices)
        first, other = by_worker.values()
        first.UpsertItems(pb.UpsertItemsRequest(items=[pb.Item(id="NEW-1", title="a brand new microscope slide")]),
                          timeout=30)
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = other.Recommend(pb.RecommendRequest(similar_to_item_id="NEW-1", k=3), timeout=30)
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline, err
                time.sleep(0.2)
        assert len(reply.items) == 3

        # /metrics of the parent sums the workers' counters
        text = httpx.get(f"http://127.0.0.1:{info['metrics']}/metrics", timeout=10).text
        calls = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("explainrec_requests_total{")
                    and 'ExplainRec/Recommend"' in line and 'code="OK"' in line)
        assert calls >= len(stubs) + 1
        for ch in channels:
            ch.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(workers), "no worker outlives the parent's drain"
        text = "".join(log)
        assert text.count("drained") == 2 and "all workers stopped" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(tmp_path, small_db):
    shutil.copy(small_db, tmp_path / "catalog.sqlite")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(tmp_path), "--no-llm",
                             "--zero-shot", "--port", "0", "--metrics-port", "-1", "--workers", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        json.loads(proc.stdout.readline())
        assert json.loads(proc.stdout.readline())["serving"]
        workers = _tree(proc.pid) - {proc.pid}
        os.kill(proc.pid, signal.SIGKILL)          # no drain: the kernel's death signal ends the workers
        proc.wait(30)
        deadline = time.monotonic() + 30
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# A stand-in for vLLM's API server, found first on the serve process's PYTHONPATH (so `python -m
# vllm.entrypoints.openai.api_server` runs it; serve itself never imports vllm), as
# tests/test_reliability_llm_fast.py stands in for it: a real vLLM takes 45-270 s to start here.
# It "loads" (listens nowhere) until the test writes its gate file: "up" serves /health, /v1/models
# and chat completions (one fixed sentence), "fail" exits 1, like a vLLM that cannot start.
STAND_IN_VLLM = """
import http.server, json, os, pathlib, sys, time
args = sys.argv[1:]
port, name = int(args[args.index("--port") + 1]), args[args.index("--served-model-name") + 1]
gate = pathlib.Path(os.environ["EXPLAINREC_TEST_VLLM_GATE"])
while not gate.exists():
    time.sleep(0.05)
if gate.read_text() == "fail":
    sys.exit(1)

class H(http.server.BaseHTTPRequestHandler):
    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._json({"data": [{"id": name}]} if self.path == "/v1/models" else {})

    def do_POST(self):
        n = json.loads(self.rfile.read(int(self.headers["Content-Length"]))).get("n", 1)
        self._json({"choices": [{"index": i, "message": {"content": "A good match for your lab."},
                                 "finish_reason": "stop"} for i in range(n)], "usage": {}})

    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""
LLM_HEALTH = "explainrec.v1.LLM"


def _stand_in_env(tmp_path: Path) -> tuple[dict, Path]:
    pkg = tmp_path / "stand_in" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(STAND_IN_VLLM)
    gate = tmp_path / "vllm-gate"
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "stand_in"), EXPLAINREC_TEST_VLLM_GATE=str(gate),
               EXPLAINREC_LLM_MODEL_DIR=str(tmp_path))      # a model directory is not read by the stand-in
    return env, gate


class Serve:
    """`serve --workers 2` in a child process; its log lines collected from stderr."""

    def __init__(self, workdir: Path, env: dict, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(workdir),
                                      "--port", "0", "--metrics-port", "-1", "--grace-s", "5", "--workers", "2", *args],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()

    def log(self) -> str:
        return "".join(self.lines)[-4000:]

    def wait_log(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in list(self.lines)):
            assert time.monotonic() < deadline and self.proc.poll() is None, f"no {text!r} in:\n{self.log()}"
            time.sleep(0.1)

    def stop(self) -> None:
        tree = _tree(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=120) == 0, self.log()
        deadline = time.monotonic() + 30
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(tree), "no worker, vLLM or watchdog outlives serve's drain"

    def kill(self) -> None:
        if self.proc.poll() is None:
            for p in _alive(_tree(self.proc.pid)):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()


def _per_worker(target: str, user: str):
    """{worker: (Recommend reply, LLM health status)} over 12 connections (the kernel spreads them)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from protos.explainrec.v1 import explainrec_pb2 as pb
    from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
    seen = {}
    for _ in range(12):
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            reply = pb_grpc.ExplainRecStub(ch).Recommend(pb.RecommendRequest(user_id=user, k=2, explain=True),
                                                         timeout=60)
            llm = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=LLM_HEALTH), timeout=10)
            seen[reply.request_id.split("-")[0]] = (reply, health_pb2.HealthCheckResponse.ServingStatus.Name(llm.status))
    return seen


def _user_of(workdir: Path) -> str:
    cat = Catalog(workdir / "catalog.sqlite")
    try:
        return next(u for u in cat.user_ids() if len(cat.history(u)) >= 5)
    finally:
        cat.close()


@pytest.mark.slow
def test_workers_serve_once_the_shared_llm_is_up_and_sighup_swaps_every_worker(tmp_path, tiny_ranker_workdir):
    """`--llm local` (the default) with workers: no worker serves while the shared vLLM starts (both
    load; worker 0 answers health NOT_SERVING and calls UNAVAILABLE, worker 1 is not on the port), as
    one process waits for its own; then both answer with the LLM; SIGHUP makes every worker serve a newly promoted version; SIGTERM leaves nothing."""
    import grpc

    from ranker.versions import promote, versions_root
    from server.client import ExplainRecClient
    from store.paths import model_dir
    workdir = tmp_path / "w"
    shutil.copytree(tiny_ranker_workdir, workdir)
    versions_root(workdir).mkdir()
    shutil.copytree(model_dir(workdir), versions_root(workdir) / "v001-copy")
    user = _user_of(workdir)
    env, gate = _stand_in_env(tmp_path)
    serve = Serve(workdir, env, "--model-watch-s", "3600")      # only SIGHUP looks at models/current
    try:
        info = json.loads(serve.proc.stdout.readline())
        for w in (0, 1):           # both load while the LLM starts, and wait
            serve.wait_log(f"[w{w}]: service loaded in", 120)
        for _ in range(6):         # fresh connections: worker 0 answers NOT_SERVING, worker 1 is not bound
            with ExplainRecClient(info["grpc"], timeout_s=10, retries=0) as c:
                assert c.health() == "NOT_SERVING"
                with pytest.raises(grpc.RpcError) as err:
                    c.recommend(user_id=user, k=2)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        gate.write_text("up")
        assert json.loads(serve.proc.stdout.readline()) == {"serving": True, "workers": 2}, serve.log()
        seen = _per_worker(info["grpc"], user)
        assert len(seen) == 2, "both workers answer"
        for reply, llm in seen.values():
            assert llm == "SERVING" and reply.model_version == "ranker"
            # the LLM answered (its sentence may fail the verifier): no template for want of an LLM
            assert {it.justification.fallback_reason for it in reply.items} <= {"", "verifier"}, reply

        promote(workdir, versions_root(workdir) / "v001-copy")
        serve.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while True:      # a worker that missed the signal would serve "ranker" for the next hour
            versions = {w: r.model_version for w, (r, _llm) in _per_worker(info["grpc"], user).items()}
            if len(versions) == 2 and set(versions.values()) == {"v001-copy"}:
                break
            assert time.monotonic() < deadline, (versions, serve.log())
            time.sleep(0.5)
        serve.stop()
    finally:
        serve.kill()


@pytest.mark.slow
def test_workers_serve_templates_when_the_shared_llm_fails_to_start(tmp_path, tiny_ranker_workdir):
    """A shared vLLM that cannot start does not hold the workers back: they serve with templates
    (`llm_unavailable`, LLM health NOT_SERVING) while it is retried, as one process does."""
    workdir = tmp_path / "w"
    shutil.copytree(tiny_ranker_workdir, workdir)
    env, gate = _stand_in_env(tmp_path)
    gate.write_text("fail")
    serve = Serve(workdir, env)
    try:
        info = json.loads(serve.proc.stdout.readline())
        assert json.loads(serve.proc.stdout.readline()) == {"serving": True, "workers": 2}, serve.log()
        assert "the shared vLLM did not start" in "".join(serve.lines)
        seen = _per_worker(info["grpc"], _user_of(workdir))
        assert len(seen) == 2
        for reply, llm in seen.values():
            assert llm == "NOT_SERVING"
            assert {it.justification.fallback_reason for it in reply.items} == {"llm_unavailable"}, reply
        serve.stop()
    finally:
        serve.kill()


@pytest.mark.slow
def test_sigterm_while_the_shared_llm_starts_ends_everything_at_once(tmp_path, tiny_ranker_workdir):
    """SIGTERM while vLLM is still starting (worker 0 loaded and waiting for it, worker 1 loading): the
    start is ended, not waited out (up to `startup_timeout_s`, 300 s), and no process is left."""
    workdir = tmp_path / "w"
    shutil.copytree(tiny_ranker_workdir, workdir)
    env, _gate = _stand_in_env(tmp_path)          # never opened: the stand-in stays "loading"
    serve = Serve(workdir, env)
    try:
        json.loads(serve.proc.stdout.readline())
        serve.wait_log("[w0]: loaded: waiting for the shared LLM", 120)
        t0 = time.monotonic()
        serve.stop()
        assert time.monotonic() - t0 < 30, serve.log()
    finally:
        serve.kill()
