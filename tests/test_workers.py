"""`explainrec serve --workers N`: several serving processes on one port (server/workers.py).

The fast test checks the SQLite change notices that keep the workers' indexes in step; the slow one
runs a real two-worker server on loopback: both workers answer, an item upserted through one is
searchable through the other, /metrics sums both, and SIGTERM leaves no process behind."""
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
