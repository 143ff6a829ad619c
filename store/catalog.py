"""The SQLite catalog: items, users, interaction events and feedback, in one WAL-mode file.

One connection guarded by a lock: SQLite serialises writers anyway, and the service's
writes (events, feedback, catalog changes) are small. Every write is one transaction,
so a failure leaves the database as it was.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from store.errors import UnknownItem, UnknownUser

SCHEMA = """
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
"""

SPLITS = ("train", "valid", "test", "live")


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    category: str = ""
    brand: str = ""
    price: float | None = None
    description: str = ""
    attributes: dict = field(default_factory=dict)

    def text(self) -> str:
        """The text the item tower reads: "title. category. brand." like the UniSRec data."""
        parts = [self.title, self.category, self.brand]
        return " ".join(p.strip().rstrip(".") + "." for p in parts if p and p.strip())


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    kind: str = "purchase"
    ts: float = 0.0
    split: str = "live"


@dataclass(frozen=True)
class Feedback:
    user_id: str
    item_id: str
    kind: str
    helpful: bool | None = None
    reason: str = ""
    request_id: str = ""


def _row_to_item(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"], title=row["title"], category=row["category"], brand=row["brand"],
        price=row["price"], description=row["description"], attributes=json.loads(row["attributes"]),
    )


class Catalog:
    """Thread-safe access to the catalog database file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: feedback must survive a power cut, not only a process crash.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)

    # -- plumbing -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing: commits on success, rolls back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        if conn is not None:
            conn.execute(sql, (key, value))
        else:
            with self.transaction() as c:
                c.execute(sql, (key, value))

    # -- items ----------------------------------------------------------------
    def upsert_items(self, items: Iterable[Item], conn: sqlite3.Connection | None = None) -> int:
        rows = [
            (i.id, i.title, i.category, i.brand, i.price, i.description,
             json.dumps(i.attributes, sort_keys=True, ensure_ascii=False), time.time())
            for i in items
        ]
        sql = """INSERT INTO items(id, title, category, brand, price, description, attributes, deleted, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)
                 ON CONFLICT(id) DO UPDATE SET title=excluded.title, category=excluded.category,
                   brand=excluded.brand, price=excluded.price, description=excluded.description,
                   attributes=excluded.attributes, deleted=0, updated_at=excluded.updated_at"""
        if conn is not None:
            conn.executemany(sql, rows)
        else:
            with self.transaction() as c:
                c.executemany(sql, rows)
        return len(rows)

    def delete_items(self, item_ids: Sequence[str]) -> int:
        """Soft delete: events and feedback that name the item stay valid."""
        with self.transaction() as c:
            missing = [i for i in item_ids if not c.execute(
                "SELECT 1 FROM items WHERE id=? AND deleted=0", (i,)).fetchone()]
            if missing:
                raise UnknownItem(missing[0], field="item_ids")
            c.executemany("UPDATE items SET deleted=1, updated_at=? WHERE id=?",
                          [(time.time(), i) for i in item_ids])
        return len(item_ids)

    def get_item(self, item_id: str, field: str = "item_id") -> Item:
        rows = self._query("SELECT * FROM items WHERE id=? AND deleted=0", (item_id,))
        if not rows:
            raise UnknownItem(item_id, field=field)
        return _row_to_item(rows[0])

    def get_items(self, item_ids: Sequence[str], field: str = "item_ids") -> list[Item]:
        """Items in the order asked; raises UnknownItem naming the first missing id."""
        if not item_ids:
            return []
        found: dict[str, Item] = {}
        ids = list(dict.fromkeys(item_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT * FROM items WHERE deleted=0 AND id IN ({marks})", chunk):
                found[row["id"]] = _row_to_item(row)
        for i in item_ids:
            if i not in found:
                raise UnknownItem(i, field=field)
        return [found[i] for i in item_ids]

    def has_item(self, item_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM items WHERE id=? AND deleted=0", (item_id,)))

    def all_items(self, include_deleted: bool = False) -> list[Item]:
        where = "" if include_deleted else "WHERE deleted=0"
        return [_row_to_item(r) for r in self._query(f"SELECT * FROM items {where} ORDER BY rowid")]

    def deleted_item_ids(self) -> set[str]:
        return {r["id"] for r in self._query("SELECT id FROM items WHERE deleted=1")}

    def item_count(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM items WHERE deleted=0")[0]["n"]

    # -- users and events -----------------------------------------------------
    def has_user(self, user_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM users WHERE id=?", (user_id,)))

    def user_ids(self) -> list[str]:
        return [r["id"] for r in self._query("SELECT id FROM users ORDER BY rowid")]

    def add_events(self, events: Sequence[Event], conn: sqlite3.Connection | None = None) -> int:
        """Adds events (creating users as needed); exact duplicates are ignored. Returns rows added."""
        def run(c: sqlite3.Connection) -> int:
            now = time.time()
            c.executemany("INSERT OR IGNORE INTO users(id, created_at) VALUES (?, ?)",
                          [(u, now) for u in dict.fromkeys(e.user_id for e in events)])
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO events(user_id, item_id, kind, ts, split) VALUES (?, ?, ?, ?, ?)",
                [(e.user_id, e.item_id, e.kind, e.ts, e.split) for e in events])
            return c.total_changes - before
        if conn is not None:
            return run(conn)
        with self.transaction() as c:
            return run(c)

    def history(self, user_id: str, splits: Sequence[str] = SPLITS, field: str = "user_id") -> list[str]:
        """The user's item ids in time order (oldest first), restricted to `splits`.

        Raises UnknownUser if the user has never been seen.
        """
        if not self.has_user(user_id):
            raise UnknownUser(user_id, field=field)
        marks = ",".join("?" * len(splits))
        rows = self._query(
            f"SELECT item_id FROM events WHERE user_id=? AND split IN ({marks}) ORDER BY ts, rowid_",
            (user_id, *splits))
        return [r["item_id"] for r in rows]

    def recent_events(self, user_id: str, limit: int = 50, field: str = "user_id") -> tuple[list[Event], int]:
        """The user's latest `limit` events, newest first, and how many events the user has in all.

        Raises UnknownUser if the user has never been seen.
        """
        if not self.has_user(user_id):
            raise UnknownUser(user_id, field=field)
        rows = self._query("SELECT user_id, item_id, kind, ts, split FROM events WHERE user_id=?"
                           " ORDER BY ts DESC, rowid_ DESC LIMIT ?", (user_id, limit))
        total = self._query("SELECT COUNT(*) AS n FROM events WHERE user_id=?", (user_id,))[0]["n"]
        return [Event(r["user_id"], r["item_id"], r["kind"], r["ts"], r["split"]) for r in rows], total

    def sequences(self, splits: Sequence[str] = ("train", "valid", "test")) -> dict[str, list[tuple[str, str]]]:
        """Every user's (item_id, split) sequence in time order, for training and evaluation."""
        marks = ",".join("?" * len(splits))
        out: dict[str, list[tuple[str, str]]] = {}
        for r in self._query(
                f"SELECT user_id, item_id, split FROM events WHERE split IN ({marks}) ORDER BY user_id, ts, rowid_",
                tuple(splits)):
            out.setdefault(r["user_id"], []).append((r["item_id"], r["split"]))
        return out

    def event_count(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM events")[0]["n"]

    # -- feedback -------------------------------------------------------------
    def add_feedback(self, fb: Feedback) -> int:
        """Stored durably (synchronous=FULL, committed) before this returns. Returns its id."""
        helpful = None if fb.helpful is None else int(fb.helpful)
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO feedback(user_id, item_id, kind, helpful, reason, request_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (fb.user_id, fb.item_id, fb.kind, helpful, fb.reason, fb.request_id, time.time()))
            return int(cur.lastrowid)

    def feedback(self, user_id: str | None = None) -> list[dict]:
        if user_id is None:
            rows = self._query("SELECT * FROM feedback ORDER BY id")
        else:
            rows = self._query("SELECT * FROM feedback WHERE user_id=? ORDER BY id", (user_id,))
        return [dict(r) for r in rows]
