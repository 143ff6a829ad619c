"""What the two store backends share: versioned migrations, change notices between processes,
and the selection of a backend by location."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from store.catalog import Catalog, Item
from store.db import redact, split_script
from store.errors import StoreError
from store.migrations import MIGRATIONS, Migration, current_version, latest_version, migrate


def test_a_new_store_is_migrated_to_the_latest_version_once(empty_store):
    cat = Catalog(empty_store)
    assert current_version(cat._db) == latest_version()
    rows = cat._query("SELECT version, description FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]
    assert migrate(cat._db) == []      # nothing left to apply
    cat.close()


def test_a_failing_migration_leaves_the_version_and_schema_as_they_were(empty_store):
    cat = Catalog(empty_store)
    bad = Migration(len(MIGRATIONS) + 1, "half done", sqlite="CREATE TABLE extra (x INTEGER);\nSELECT nope FROM missing;",
                    postgresql="CREATE TABLE extra (x INTEGER);\nSELECT nope FROM missing;")
    with pytest.raises(Exception):
        migrate(cat._db, [*MIGRATIONS, bad])
    assert current_version(cat._db) == latest_version()
    with pytest.raises(Exception):
        cat._query("SELECT x FROM extra")
    cat.close()


def test_a_store_newer_than_this_build_is_refused(empty_store):
    cat = Catalog(empty_store)
    with cat.transaction() as tx:
        tx.execute("INSERT INTO schema_version(version, description, applied_at) VALUES (?, ?, ?)",
                   (latest_version() + 1, "from the future", "2099-01-01"))
    cat.close()
    with pytest.raises(StoreError, match="newer than this build"):
        Catalog(empty_store)


def test_a_sqlite_file_from_before_migrations_is_adopted_unchanged(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    for stmt in MIGRATIONS[0].statements("sqlite"):
        conn.execute(stmt)
    conn.execute("INSERT INTO items(id, title, updated_at) VALUES ('A', 'old item', 0)")
    conn.commit()
    conn.close()
    cat = Catalog(path)
    assert cat.get_item("A").title == "old item" and current_version(cat._db) == latest_version()
    cat.close()


def test_split_script_keeps_statements_and_drops_comment_only_parts():
    script = "-- a table\nCREATE TABLE a (x INTEGER); -- why\nCREATE INDEX i ON a(x);\n-- trailing\n"
    assert split_script(script) == ["-- a table\nCREATE TABLE a (x INTEGER)", "CREATE INDEX i ON a(x)"]


def test_redact_hides_the_password_only():
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_store_location_prefers_flag_then_env_then_workdir(tmp_path, monkeypatch):
    from store.paths import store_location
    monkeypatch.setenv("EXPLAINREC_STORE", "postgresql://e@127.0.0.1/x")
    assert store_location(tmp_path, "postgresql://f@127.0.0.1/y") == "postgresql://f@127.0.0.1/y"
    assert store_location(tmp_path) == "postgresql://e@127.0.0.1/x"
    monkeypatch.delenv("EXPLAINREC_STORE")
    assert store_location(tmp_path) == str(tmp_path / "catalog.sqlite")


@pytest.mark.slow      # a PostgreSQL cluster
def test_postgres_replicas_hear_each_others_item_changes_not_their_own(postgres):
    url = postgres.new_database()
    a, b = Catalog(url), Catalog(url)
    heard_a: list = []
    heard_b: list = []
    got = threading.Event()

    def on_b(ids):
        heard_b.append(ids)
        if ids:
            got.set()
    stop_a = a.watch_item_changes(heard_a.append)
    stop_b = b.watch_item_changes(on_b)
    try:
        a.upsert_items([Item(id="X", title="x"), Item(id="Y", title="y")])
        assert got.wait(10), "no change notice reached the other catalog"
        got.clear()
        a.delete_items(["X"])
        assert got.wait(10)
        # each watcher starts with one "compare everything" (None), then hears only the other's writes
        assert heard_b == [None, ["X", "Y"], ["X"]]
        assert heard_a == [None]
        with pytest.raises(ValueError):       # a failed write is never announced
            with a.transaction() as tx:
                a.upsert_items([Item(id="Z", title="z")], conn=tx)
                raise ValueError("abort")
        b.add_events([])   # a round trip, so that a stray notice would have arrived by now
        assert heard_b[-1] == ["X"] and not b.has_item("Z")
    finally:
        stop_a(), stop_b()
        a.close(), b.close()


def test_client_targets_one_several_or_dns():
    from server.targets import channel_target
    assert channel_target("127.0.0.1:50051") == ("127.0.0.1:50051", [])
    target, options = channel_target("127.0.0.1:1, localhost:2")
    assert target.startswith(("ipv4:127.0.0.1:1,", "ipv6:")) and "round_robin" in dict(options)["grpc.service_config"]
    assert channel_target("dns:///explainrec-headless:50051")[0] == "dns:///explainrec-headless:50051"
    for bad in ("", "nohost", "127.0.0.1:1,dns:///x:1", "127.0.0.1:99999"):
        with pytest.raises(ValueError, match="target"):
            channel_target(bad)


def test_query_cli_names_a_bad_target(capsys):
    from server.cli import main
    assert main(["query", "--target", "127.0.0.1:1,nohost", "health"]) == 2
    assert "target" in capsys.readouterr().err


def test_an_unreachable_postgres_store_is_a_clear_error(tmp_path, capsys):
    from server.cli import main
    from store.pg_local import free_port
    url = f"postgresql://explainrec:secret@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(StoreError, match=r"cannot connect") as err:
        Catalog(url)
    assert "secret" not in str(err.value) and "***" in str(err.value)
    assert main(["ingest", "--workdir", str(tmp_path), "--store", url]) == 1
    assert "cannot connect" in capsys.readouterr().err
