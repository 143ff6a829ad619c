"""Live purchases reach the explainer's co-purchase table while it serves: through RecordEvents on a
real gRPC server (real SQLite file) in this process, and, from another process or replica, through
the store's event notices (the follower's callback here; PostgreSQL NOTIFY end to end)."""
from __future__ import annotations

import shutil
import time

import pytest

from explainer.config import ExplainerConfig
from explainer.service import Explainer
from server.replicas import follow_event_changes
from store.catalog import Catalog, Event


def _pair_in_one_category(catalog) -> tuple[str, str]:
    """Two items of one category that no shopper bought together yet."""
    co = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog).read_model.co_purchases
    by_cat: dict[str, list[str]] = {}
    for it in catalog.all_items():
        by_cat.setdefault(it.category, []).append(it.id)
    for ids in by_cat.values():
        for a in ids:
            for b in ids:
                if a < b and co.shoppers(a, b) == 0:
                    return a, b
    raise AssertionError("no pair")


def _bought_both(reply) -> list[str]:
    return [f for e in reply.explanations for f in e.justification.facts if "bought both" in f]


def test_purchases_recorded_over_grpc_are_cited_without_a_restart(tmp_path, priced_db, fake_encoder):
    from ranker.service import Ranker
    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    shutil.copy(priced_db, tmp_path / "catalog.sqlite")
    catalog = Catalog(tmp_path / "catalog.sqlite")
    cfg = server_config()
    h = ServerHarness(cfg, template_service_factory(catalog, Ranker.zero_shot(catalog, device="cpu",
                                                                              encoder=fake_encoder), cfg))
    try:
        a, b = _pair_in_one_category(catalog)
        with h.client() as c:
            assert not _bought_both(c.explain([b], history=[a]))
            # views and ratings are no purchases: nothing to cite
            c.record_events([(f"LIVE-V{i}", item, "view") for i in range(6) for item in (a, b)])
            assert not _bought_both(c.explain([b], history=[a]))
            c.record_events([(f"LIVE-P{i}", item) for i in range(6) for item in (a, b)])
            facts = _bought_both(c.explain([b], history=[a]))
            assert facts and facts[0].startswith("6 other shoppers bought both"), facts
            # a retried call (same idempotency key) counts its shoppers once
            from protos.explainrec.v1 import explainrec_pb2 as pb
            retried = pb.RecordEventsRequest(events=[pb.Event(user_id="LIVE-P6", item_id=i, kind="purchase", ts=1e9)
                                                     for i in (a, b)], idempotency_key="k1")
            assert [c.stub.RecordEvents(retried, timeout=30).recorded for _ in range(2)] == [2, 2]
            assert _bought_both(c.explain([b], history=[a]))[0].startswith("7 other shoppers")
    finally:
        h.close()
        catalog.close()


class EventNotices:
    """The catalog, with the event notices under the test's control (another process wrote)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.on_events = None

    def __getattr__(self, name):
        return getattr(self.catalog, name)

    def watch_event_changes(self, on_events):
        self.on_events = on_events
        return lambda: None

    def sequences(self, *args, users=None, **kwargs):
        out = self.catalog.sequences(*args, users=users, **kwargs)
        if users is None and getattr(self, "during_full_read", None):
            self.during_full_read()
        return out


def test_another_processes_purchases_reach_the_table_from_the_store(tmp_path, priced_db):
    shutil.copy(priced_db, tmp_path / "catalog.sqlite")
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        explainer = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog)
        a, b = _pair_in_one_category(catalog)
        watched = EventNotices(catalog)
        follow_event_changes(watched, explainer)
        other = [Event(f"OTHER-{i}", item) for i in range(3) for item in (a, b)]
        catalog.add_events(other)                  # written by another process: nothing here knows yet
        table = explainer.read_model.co_purchases
        assert table.shoppers(a, b) == 0
        watched.on_events(["OTHER-0", "OTHER-1"], ["view"])     # no purchase in it: skipped
        assert table.shoppers(a, b) == 0
        watched.on_events(["OTHER-0", "OTHER-1"], ["purchase"])
        assert table.shoppers(a, b) == 2 and explainer.read_model.co_purchases is table   # incremental
        watched.on_events(["OTHER-0"], ["purchase"])           # heard twice: counted once
        assert table.shoppers(a, b) == 2
        # a lost notice: the table is read again from the store, and a purchase this process records
        # while that read runs (committed after it) is kept
        def record_mine():
            mine = [Event("MINE", a), Event("MINE", b)]
            catalog.add_events(mine)
            explainer.add_events(mine)
        watched.during_full_read = record_mine
        watched.on_events(None, [])
        assert explainer.read_model.co_purchases is not table
        assert explainer.read_model.co_purchases.shoppers(a, b) == 4
    finally:
        catalog.close()


@pytest.mark.slow      # a PostgreSQL cluster
def test_a_replicas_purchases_reach_the_other_replicas_table(postgres, priced_db):
    from store.ingest import ingest_files
    from tests.fixtures_desk import PRICED_DIR
    url = postgres.new_database()
    writer = Catalog(url)
    ingest_files(writer, PRICED_DIR / "items.jsonl", PRICED_DIR / "events.csv")
    reader = Catalog(url)
    explainer = Explainer.from_catalog(ExplainerConfig(enabled=False), reader)
    stop = follow_event_changes(reader, explainer)
    try:
        a, b = _pair_in_one_category(reader)
        writer.add_events([Event(f"R{i}", item) for i in range(3) for item in (a, b)])
        deadline = time.monotonic() + 15
        while explainer.read_model.co_purchases.shoppers(a, b) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert explainer.read_model.co_purchases.shoppers(a, b) == 3
    finally:
        stop()
        reader.close(), writer.close()


def test_two_processes_on_one_sqlite_file_share_new_purchases(tmp_path, priced_db):
    """`serve --workers N` on one SQLite file: what one worker records reaches the other's table
    through the store's notices (a second Catalog on the same file stands for the other process)."""
    from explainer.read_model import CO_PURCHASE_KINDS
    from store.catalog import ANNOUNCED_EVENT_KINDS
    assert set(CO_PURCHASE_KINDS) <= set(ANNOUNCED_EVENT_KINDS)
    shutil.copy(priced_db, tmp_path / "catalog.sqlite")
    writer, reader = Catalog(tmp_path / "catalog.sqlite"), Catalog(tmp_path / "catalog.sqlite")
    explainer = Explainer.from_catalog(ExplainerConfig(enabled=False), reader)
    stop = follow_event_changes(reader, explainer)
    try:
        a, b = _pair_in_one_category(reader)

        def notices() -> int:
            return writer._query("SELECT COUNT(*) AS n FROM notices WHERE channel='explainrec_events'")[0]["n"]
        before = notices()
        writer.add_events([Event(f"W{i}", item, "view") for i in range(3) for item in (a, b)])
        assert notices() == before, "a write of views alone announces nothing"
        writer.add_events([Event(f"W{i}", item) for i in range(3) for item in (a, b)])
        assert notices() == before + 1
        deadline = time.monotonic() + 10
        while explainer.read_model.co_purchases.shoppers(a, b) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert explainer.read_model.co_purchases.shoppers(a, b) == 3
    finally:
        stop()
        reader.close(), writer.close()
