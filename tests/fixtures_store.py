"""Store fixtures for both backends: a throwaway PostgreSQL cluster (initdb + pg_ctl in a temp
dir on a loopback port, started once per session, stopped at the end) and parametrised
fixtures that hand a test the same data on SQLite and on PostgreSQL.

`EXPLAINREC_TEST_PG_URL` (a server URL whose role may CREATE DATABASE) uses a running server
instead of starting one.
"""
from __future__ import annotations

import itertools
import os
import shutil

import pytest

# starting the throwaway cluster costs seconds: the PostgreSQL half of every two-backend test is slow
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
_names = itertools.count()


class PgServer:
    """Creates uniquely named databases on one server."""

    def __init__(self, base_url: str, create):
        self.base_url, self._create = base_url, create

    def new_database(self, template: str | None = None) -> str:
        return self._create(f"t{os.getpid()}_{next(_names)}", template)


@pytest.fixture(scope="session")
def postgres() -> PgServer:
    external = os.environ.get("EXPLAINREC_TEST_PG_URL")
    if external:
        import psycopg
        from psycopg import sql

        def create(name, template):
            with psycopg.connect(external, autocommit=True) as conn:
                stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                conn.execute(stmt)
            return external.rsplit("/", 1)[0] + "/" + name
        yield PgServer(external, create)
        return
    from store.pg_local import LocalPostgres
    pg = LocalPostgres().start()
    try:
        yield PgServer(pg.url(), pg.create_database)
    finally:
        pg.stop()


@pytest.fixture(params=BACKENDS)
def empty_store(request, tmp_path) -> str:
    """The location of an empty store: a SQLite path, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "c.sqlite")
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(scope="session")
def small_pg_template(postgres, scientific_dir) -> str:
    """A PostgreSQL database with the same data as small_db, used as a template for copies."""
    from store.catalog import Catalog
    from store.ingest import ingest_unisrec
    from tests.conftest import SMALL_USERS

    url = postgres.new_database()
    cat = Catalog(url)
    ingest_unisrec(cat, scientific_dir, max_users=SMALL_USERS)
    cat.close()     # a template must have no open connections
    return url.rsplit("/", 1)[1]


@pytest.fixture()
def small_pg(postgres, small_pg_template) -> str:
    """A private, writable PostgreSQL copy of the small catalog (its URL)."""
    return postgres.new_database(template=small_pg_template)


@pytest.fixture(params=BACKENDS)
def any_catalog(request, tmp_path, small_db):
    """A private, writable copy of the small catalog on each backend in turn."""
    from store.catalog import Catalog
    if request.param == "sqlite":
        location = str(tmp_path / "catalog.sqlite")
        shutil.copy(small_db, location)
    else:
        location = request.getfixturevalue("small_pg")
    cat = Catalog(location)
    yield cat
    cat.close()
