"""Versioned schema migrations, one list for both backends, run when a catalog opens.

`schema_version` holds one row per applied migration; the highest is the database's version.
Each migration is applied in the same transaction as its row, so a crash leaves either both or
neither. Migrations only ever append: to change the schema, add `Migration(N + 1, ...)` with
the statements for each dialect (usually the same text with `REAL` / `DOUBLE PRECISION` and
the key columns differing), never edit an applied one.

Replicas starting together on one PostgreSQL database serialise on an advisory lock; SQLite's
`BEGIN IMMEDIATE` does the same. A database newer than this build is refused, not downgraded.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from store.db import Database, split_script
from store.errors import StoreError

MIGRATION_LOCK = 0x6578706C  # pg_advisory_xact_lock key ("expl")

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TEXT NOT NULL
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: str
    postgresql: str

    def statements(self, dialect: str) -> list[str]:
        return split_script(getattr(self, dialect))


# Version 1 is the schema SQLite files had before migrations existed (CREATE ... IF NOT EXISTS,
# so such a file is adopted as version 1 unchanged). PostgreSQL tables carry an explicit `rowid`
# so that "in insertion order" is one query on both backends.
MIGRATIONS: list[Migration] = [
    Migration(1, "items, users, events, feedback, meta", sqlite="""
CREATE TABLE IF NOT EXISTS items (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    category    TEXT NOT NULL DEFAULT '',
    brand       TEXT NOT NULL DEFAULT '',
    price       REAL,
    description TEXT NOT NULL DEFAULT '',
    attributes  TEXT NOT NULL DEFAULT '{}',
    deleted     INTEGER NOT NULL DEFAULT 0,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id         TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
-- split: 'train' / 'valid' / 'test' (leave-one-out, fixed at ingest) or 'live' (recorded by the service)
CREATE TABLE IF NOT EXISTS events (
    rowid_     INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL REFERENCES users(id),
    item_id    TEXT NOT NULL REFERENCES items(id),
    kind       TEXT NOT NULL,
    ts         REAL NOT NULL,
    split      TEXT NOT NULL DEFAULT 'live',
    UNIQUE (user_id, item_id, kind, ts)
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts);
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,           -- click / purchase / dismiss / rating
    helpful     INTEGER,                 -- 1 helpful, 0 not helpful, NULL no rating
    reason      TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
""", postgresql="""
CREATE TABLE IF NOT EXISTS items (
    rowid       BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    category    TEXT NOT NULL DEFAULT '',
    brand       TEXT NOT NULL DEFAULT '',
    price       DOUBLE PRECISION,
    description TEXT NOT NULL DEFAULT '',
    attributes  TEXT NOT NULL DEFAULT '{}',
    deleted     INTEGER NOT NULL DEFAULT 0,
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    rowid      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id         TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    rowid_     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    item_id    TEXT NOT NULL REFERENCES items(id),
    kind       TEXT NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    split      TEXT NOT NULL DEFAULT 'live',
    UNIQUE (user_id, item_id, kind, ts)
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts);
CREATE TABLE IF NOT EXISTS feedback (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    helpful     INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT '',
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""),
    # A retried SubmitFeedback / RecordEvents with the same key writes once and gets the first reply.
    Migration(2, "idempotency keys of writes", sqlite="""
CREATE TABLE IF NOT EXISTS idempotency_keys (
    method      TEXT NOT NULL,           -- 'feedback' / 'events'
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,           -- sha256 of the request: a reused key with other content is refused
    result      INTEGER NOT NULL,        -- feedback id / events recorded
    created_at  REAL NOT NULL,
    PRIMARY KEY (method, key)
);
""", postgresql="""
CREATE TABLE IF NOT EXISTS idempotency_keys (
    method      TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result      BIGINT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (method, key)
);
"""),
    # Change notices between processes serving one SQLite file (`serve --workers N`): the catalog's
    # upserts and deletes announce their item ids here (PostgreSQL uses LISTEN/NOTIFY instead).
    Migration(3, "change notices between processes sharing a SQLite file", sqlite="""
CREATE TABLE IF NOT EXISTS notices (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL
);
""", postgresql="""
-- nothing: PostgreSQL announces changes with NOTIFY
"""),
    # Every notice also prunes the expired ones by created_at: without an index that DELETE scanned the
    # whole table on each write (0.47 ms per RecordEvents at 7,000 rows).
    Migration(4, "index notices by age, for the prune each notice runs", sqlite="""
CREATE INDEX IF NOT EXISTS notices_created_at ON notices(created_at);
""", postgresql="""
-- nothing: PostgreSQL has no notices table
"""),
]


def latest_version() -> int:
    return MIGRATIONS[-1].version


def current_version(db: Database) -> int:
    """0 for a database no migration has touched."""
    with db.transaction() as tx:
        tx.execute(SCHEMA_VERSION_TABLE)
        row = tx.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
    return int(row["v"] or 0)


def migrate(db: Database, migrations: list[Migration] = MIGRATIONS) -> list[int]:
    """Applies the migrations this database lacks, in order; returns their versions."""
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1)), "versions must be 1..N"
    applied: list[int] = []
    with db.transaction() as tx:
        if db.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        tx.execute(SCHEMA_VERSION_TABLE)
        row = tx.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
        have = int(row["v"] or 0)
        if have > len(migrations):
            raise StoreError(f"{db.location}: schema version {have} is newer than this build's "
                             f"{len(migrations)}; upgrade ExplainRec")
        for m in migrations[have:]:
            for stmt in m.statements(db.dialect):
                tx.execute(stmt)
            tx.execute("INSERT INTO schema_version(version, description, applied_at) VALUES (?, ?, ?)",
                       (m.version, m.description, datetime.now(timezone.utc).isoformat(timespec="seconds")))
            applied.append(m.version)
    return applied
