"""Idempotency keys (store and over gRPC) and the online backup / restore of the SQLite store."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time

import grpc
import pytest

from store.backup import BackupError, backup, integrity, restore
from store.catalog import Catalog, Event, Feedback
from store.errors import InvalidInput


def test_a_repeated_key_writes_once_and_a_reused_key_is_refused(catalog):
    item = catalog.all_items()[0].id
    fb = Feedback("u-idem", item, "rating", helpful=True, reason="clear")
    first = catalog.add_feedback(fb, idempotency_key="k1")
    assert catalog.add_feedback(fb, idempotency_key="k1") == first
    assert len(catalog.feedback("u-idem")) == 1
    with pytest.raises(InvalidInput, match="idempotency_key"):
        catalog.add_feedback(Feedback("u-idem", item, "rating", helpful=False), idempotency_key="k1")
    assert catalog.add_feedback(fb) != first                      # no key: a second row, as before
    events = [Event("u-idem", item, "click", ts=10.0)]
    assert catalog.add_events(events, idempotency_key="e1") == 1
    n = catalog.event_count()
    assert catalog.add_events(events, idempotency_key="e1") == 1   # the first reply, nothing written
    assert catalog.event_count() == n
    # a key belongs to one method: the same string on the other write is a different key
    assert catalog.add_events([Event("u-idem", item, "view", ts=11.0)], idempotency_key="k1") == 1


def test_retried_grpc_writes_with_one_key_are_stored_once(template_server, server_catalog, some_user):
    item = server_catalog.history(some_user)[0]
    with template_server.client() as c:
        ids = {c.submit_feedback(some_user, item, "click", idempotency_key="retry-1") for _ in range(3)}
        assert len(ids) == 1
        assert sum(1 for r in server_catalog.feedback(some_user) if r["id"] in ids) == 1
        # events without a time stamp are stamped on arrival; the retry still matches its first call
        req = c.stub.RecordEvents
        from protos.explainrec.v1 import explainrec_pb2 as pb
        msg = pb.RecordEventsRequest(events=[pb.Event(user_id=some_user, item_id=item, kind="view")],
                                     idempotency_key="retry-2")
        n0 = server_catalog.event_count()
        assert req(msg).recorded == 1 and req(msg).recorded == 1
        assert server_catalog.event_count() == n0 + 1
        msg.events[0].kind = "cart"
        with pytest.raises(grpc.RpcError) as err:
            req(msg)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "idempotency_key" in err.value.details()


@pytest.mark.slow
def test_backup_under_write_load_keeps_every_acknowledged_write(tmp_path, small_db, server_ranker):
    """Writers submit feedback through the real server; `explainrec backup` runs as a separate process
    meanwhile; the restored copy holds every feedback acknowledged before the backup began."""
    import shutil

    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    workdir = tmp_path / "live"
    workdir.mkdir()
    shutil.copy(small_db, workdir / "catalog.sqlite")
    cat = Catalog(workdir / "catalog.sqlite")
    cfg = server_config()
    harness = ServerHarness(cfg, template_service_factory(cat, server_ranker, cfg))
    item = cat.all_items()[0].id
    acked: list[tuple[float, int]] = []          # (monotonic time of the reply, feedback id)
    stop = threading.Event()

    def writer(n: int) -> None:
        with harness.client(timeout_s=30) as c:
            while not stop.is_set():
                fid = c.submit_feedback(f"load-{n}", item, "click")
                acked.append((time.monotonic(), fid))
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)
        began = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "server.cli", "backup", "--workdir", str(workdir),
                              "--to", str(tmp_path / "b.sqlite")], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        harness.close()
    before = {fid for t, fid in acked if t < began}
    assert len(before) > 20 and len(acked) > len(before)         # writes went on during the backup
    assert json.loads(out.stdout)["integrity"] == "ok"

    # restore into the (now stopped) service's workdir: refused while the store is open, then done
    with pytest.raises(BackupError, match="in use"):
        restore(tmp_path / "b.sqlite", workdir / "catalog.sqlite")
    cat.close()
    out = subprocess.run([sys.executable, "-m", "server.cli", "restore", "--workdir", str(workdir),
                          "--from", str(tmp_path / "b.sqlite")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    restored = sqlite3.connect(workdir / "catalog.sqlite")
    found = {r[0] for r in restored.execute("SELECT id FROM feedback WHERE user_id LIKE 'load-%'")}
    assert integrity(restored) == "ok"
    restored.close()
    assert before <= found, f"lost {len(before - found)} acknowledged writes"
    assert list(workdir.glob("catalog.sqlite.before-restore-*")), "the replaced database was not kept"
    Catalog(workdir / "catalog.sqlite").close()                  # the service can open it again


def test_backup_refuses_its_own_database(tmp_path, small_db):
    with pytest.raises(BackupError):
        backup(small_db, small_db)
    with pytest.raises(BackupError):
        restore(tmp_path / "missing.sqlite", tmp_path / "db.sqlite")
