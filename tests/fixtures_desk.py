"""Desk fixtures: the small priced catalog (tests/data/priced) ingested into a real SQLite file, a
zero-shot ranker over it (fake encoder), and a template-only gRPC server on loopback serving it."""
from __future__ import annotations

from pathlib import Path

import pytest

PRICED_DIR = Path(__file__).parent / "data" / "priced"


@pytest.fixture(scope="session")
def priced_db(tmp_path_factory) -> Path:
    from store.catalog import Catalog
    from store.ingest import ingest_files

    path = tmp_path_factory.mktemp("priced_db") / "catalog.sqlite"
    cat = Catalog(path)
    ingest_files(cat, PRICED_DIR / "items.jsonl", PRICED_DIR / "events.csv")
    cat.close()
    return path


@pytest.fixture(scope="session")
def priced_catalog(priced_db):
    from store.catalog import Catalog
    cat = Catalog(priced_db)
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def priced_ranker(priced_catalog, fake_encoder):
    """Zero-shot ranker over the 160 priced items (exact index), on the fake encoder."""
    from ranker.service import Ranker
    return Ranker.zero_shot(priced_catalog, device="cpu", encoder=fake_encoder)


@pytest.fixture(scope="session")
def priced_server(priced_catalog, priced_ranker):
    """A template-only gRPC service on loopback over the priced catalog."""
    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    cfg = server_config()
    harness = ServerHarness(cfg, template_service_factory(priced_catalog, priced_ranker, cfg))
    yield harness
    harness.close()


def start_desk(harness):
    """The desk page in the harness's event loop, calling its gRPC service; returns the DeskServer."""
    from server.desk.web import DeskServer

    async def make():
        desk = DeskServer(harness.target, "127.0.0.1", 0)
        await desk.start()
        return desk
    return harness.run(make())


@pytest.fixture(scope="session")
def priced_desk(priced_server):
    """The support-desk page over the priced template-only service."""
    desk = start_desk(priced_server)
    yield desk
    priced_server.run(desk.stop())
