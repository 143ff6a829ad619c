"""The catalog: items, users, interaction events and feedback.

One class for both backends (`store.db`): a SQLite file (the default) or a PostgreSQL
database shared by several service replicas, chosen by the location given (`postgresql://…`
or a path). Every write is one transaction, so a failure leaves the database as it was; the
schema is brought up to date by `store.migrations` when the catalog opens.

Catalog changes (upserts, deletes) are announced on the `items` channel when they commit, so
that other replicas can re-index them (`watch_item_changes`): PostgreSQL NOTIFY, or on SQLite
a `notices` row that the other serving processes on the same file poll.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from store.db import Transaction, is_postgres_url, open_database
from store.errors import InvalidInput, UnknownItem, UnknownUser
from store.migrations import migrate

SPLITS = ("train", "valid", "test", "live")
IDEMPOTENCY_TTL_S = 7 * 24 * 3600   # a write's idempotency key is remembered this long (pruned on open)
# Several category paths of one item are stored in the one `category` column joined by this
# (a film in "Drama" and "Romance" -> "Drama; Romance"); no Scientific path contains it.
CATEGORY_SEPARATOR = "; "


def split_categories(category: str) -> list[str]:
    return [c.strip() for c in (category or "").split(CATEGORY_SEPARATOR.strip()) if c.strip()]


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    category: str = ""
    brand: str = ""
    price: float | None = None
    description: str = ""
    attributes: dict = field(default_factory=dict)

    def categories(self) -> list[str]:
        """The item's category paths: one, or several joined by CATEGORY_SEPARATOR at ingest."""
        return split_categories(self.category)

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


ITEMS_CHANNEL = "explainrec_items"
MAX_NOTIFIED_IDS = 200   # more changed ids than this in one write: listeners resynchronise in full
EVENTS_CHANNEL = "explainrec_events"   # committed event writes of these kinds: which users, which kinds
# only the kinds another serving process keeps a table of (the explainer's co-purchases,
# explainer/read_model.py CO_PURCHASE_KINDS): a view or a rating costs no notice
ANNOUNCED_EVENT_KINDS = ("purchase",)
# committed ratings of justifications (feedback with `helpful` set): every serving process keeps a
# tally of them per link kind (explainer/link_feedback.py); other feedback costs no notice
FEEDBACK_CHANNEL = "explainrec_feedback"


def _row_to_item(row) -> Item:
    return Item(
        id=row["id"], title=row["title"], category=row["category"], brand=row["brand"],
        price=row["price"], description=row["description"], attributes=json.loads(row["attributes"]),
    )


def _fingerprint(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()


def _once(c: Transaction, method: str, key: str, fingerprint: str, write: Callable[[], int]) -> int:
    """Inside the caller's transaction: the stored result of (method, key), or write() and remember it.
    The key is claimed first: a concurrent call with the same key (another replica on PostgreSQL)
    waits on that row and then reads the result, instead of writing twice. The key and the write
    commit together, so a crash cannot keep one without the other."""
    claimed = c.execute("INSERT INTO idempotency_keys(method, key, fingerprint, result, created_at)"
                        " VALUES (?, ?, ?, -1, ?) ON CONFLICT DO NOTHING",
                        (method, key, fingerprint, time.time())).rowcount
    if not claimed:
        row = c.execute("SELECT fingerprint, result FROM idempotency_keys WHERE method=? AND key=?",
                        (method, key)).fetchone()
        if row["fingerprint"] != fingerprint:
            raise InvalidInput("idempotency_key", f"{key!r} was already used for a different request")
        return int(row["result"])
    result = int(write())
    c.execute("UPDATE idempotency_keys SET result=? WHERE method=? AND key=?", (result, method, key))
    return result


class Catalog:
    """Thread-safe access to the catalog: `Catalog(path)` for SQLite, `Catalog("postgresql://…")`."""

    def __init__(self, location: str | Path):
        self._db = open_database(location)
        # A SQLite file's path (None on PostgreSQL); `location` names either, without a password.
        self.path: Path | None = None if is_postgres_url(location) else Path(location)
        self.location = self._db.location
        self.backend = self._db.dialect
        self.origin = uuid.uuid4().hex     # tells this process's own change notices from others'
        try:
            migrate(self._db)
            mark = getattr(self._db, "mark_loaded_from", None)    # SQLite: notices before this are loaded
            if mark is not None:
                mark()
            with self._db.transaction() as tx:
                tx.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (time.time() - IDEMPOTENCY_TTL_S,))
        except BaseException:
            self._db.close()
            raise

    # -- plumbing -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """All-or-nothing: commits on success, rolls back on any exception."""
        with self._db.transaction() as tx:
            yield tx

    def _query(self, sql: str, args: Sequence = ()) -> list:
        return self._db.query(sql, args)

    def close(self) -> None:
        self._db.close()

    def _announce(self, tx: Transaction, item_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(item_ids))
        self._db.notify(tx, ITEMS_CHANNEL, {"origin": self.origin,
                                            "ids": ids if len(ids) <= MAX_NOTIFIED_IDS else None})

    def watch_event_changes(self, on_change: Callable[[list[str] | None, list[str]], None]) -> Callable[[], None]:
        """Calls `on_change(user_ids, kinds)` after another process commits events of those users
        (of those kinds), and `on_change(None, [])` when that is unknown (at start, after a lost
        connection, after a write of many users): then re-read everything. Returns a function that
        stops watching. What reaches a listener is what `Database.listen` delivers (PostgreSQL NOTIFY)."""
        def handle(payload: dict | None) -> None:
            if payload is None:
                on_change(None, [])
            elif payload.get("origin") != self.origin:
                on_change(payload.get("users"), list(payload.get("kinds") or ()))
        return self._db.listen(EVENTS_CHANNEL, handle)

    def watch_item_changes(self, on_change: Callable[[list[str] | None], None]) -> Callable[[], None]:
        """Calls `on_change(ids)` after another process commits upserts or deletes of those
        items, and `on_change(None)` when the changed set is unknown (at start, after a lost
        connection, after a large ingest): then compare everything. Returns a function that
        stops watching. On SQLite the notices are rows another process's listener polls (several
        serving workers share one file)."""
        def handle(payload: dict | None) -> None:
            if payload is None:
                on_change(None)
            elif payload.get("origin") != self.origin:
                on_change(payload.get("ids"))
        return self._db.listen(ITEMS_CHANNEL, handle)

    def watch_feedback_changes(self, on_change: Callable[[list[int] | None], None]) -> Callable[[], None]:
        """Calls `on_change(ids)` after another process commits ratings (feedback rows with `helpful`
        set) with those ids, and `on_change(None)` when that is unknown (at start, after a lost
        connection): then re-read the recent ones (`rated_feedback`). Returns a function that stops watching."""
        def handle(payload: dict | None) -> None:
            if payload is None:
                on_change(None)
            elif payload.get("origin") != self.origin:
                on_change([int(i) for i in payload.get("ids") or ()])
        return self._db.listen(FEEDBACK_CHANNEL, handle)

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, conn: Transaction | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        if conn is not None:
            conn.execute(sql, (key, value))
        else:
            with self.transaction() as c:
                c.execute(sql, (key, value))

    # -- items ----------------------------------------------------------------
    def upsert_items(self, items: Iterable[Item], conn: Transaction | None = None) -> int:
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

        def run(c: Transaction) -> None:
            c.executemany(sql, rows)
            self._announce(c, [r[0] for r in rows])
        if conn is not None:
            run(conn)
        else:
            with self.transaction() as c:
                run(c)
        return len(rows)

    def delete_items(self, item_ids: Sequence[str]) -> int:
        """Soft delete: events and feedback that name the item stay valid. Returns the number of
        distinct items deleted (an id given twice is one item)."""
        item_ids = list(dict.fromkeys(item_ids))
        with self.transaction() as c:
            missing = [i for i in item_ids if not c.execute(
                "SELECT 1 FROM items WHERE id=? AND deleted=0", (i,)).fetchone()]
            if missing:
                raise UnknownItem(missing[0], field="item_ids")
            c.executemany("UPDATE items SET deleted=1, updated_at=? WHERE id=?",
                          [(time.time(), i) for i in item_ids])
            self._announce(c, item_ids)
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

    def item_states(self, item_ids: Sequence[str] | None = None) -> dict[str, tuple[Item, bool]]:
        """id -> (item, deleted) for these ids (every item when None), deleted ones included:
        what a replica compares its index against after another one changed the catalog."""
        if item_ids is None:
            rows = self._query("SELECT * FROM items ORDER BY rowid")
        else:
            ids = list(dict.fromkeys(item_ids))
            rows = []
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows += self._query(f"SELECT * FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return {r["id"]: (_row_to_item(r), bool(r["deleted"])) for r in rows}

    def deleted_item_ids(self) -> set[str]:
        return {r["id"] for r in self._query("SELECT id FROM items WHERE deleted=1")}

    def item_count(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM items WHERE deleted=0")[0]["n"]

    # -- users and events -----------------------------------------------------
    def has_user(self, user_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM users WHERE id=?", (user_id,)))

    def user_ids(self) -> list[str]:
        return [r["id"] for r in self._query("SELECT id FROM users ORDER BY rowid")]

    def recently_active_user_ids(self, limit: int) -> list[str]:
        """Up to `limit` users with events, the most recently active first."""
        return [r["user_id"] for r in self._query(
            "SELECT user_id FROM events GROUP BY user_id ORDER BY MAX(ts) DESC, user_id LIMIT ?", (int(limit),))]

    def add_events(self, events: Sequence[Event], conn: Transaction | None = None,
                   idempotency_key: str = "", fingerprint: str = "") -> int:
        """Adds events (creating users as needed); exact duplicates are ignored. Returns rows added.
        With an idempotency key, a repeat of the same call returns the first call's count and writes nothing;
        `fingerprint` says what "the same call" is (default: the events; the service passes the request's
        hash, since an event without a time stamp is stamped on arrival)."""
        def run(c: Transaction) -> int:
            now = time.time()
            c.executemany("INSERT INTO users(id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                          [(u, now) for u in dict.fromkeys(e.user_id for e in events)])
            n = c.executemany(
                "INSERT INTO events(user_id, item_id, kind, ts, split) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(e.user_id, e.item_id, e.kind, e.ts, e.split) for e in events])
            announced = [e for e in events if e.kind in ANNOUNCED_EVENT_KINDS]
            if n and announced:   # other serving processes keep tables built from these (co-purchases)
                users = list(dict.fromkeys(e.user_id for e in announced))
                self._db.notify(c, EVENTS_CHANNEL, {
                    "origin": self.origin, "users": users if len(users) <= MAX_NOTIFIED_IDS else None,
                    "kinds": sorted({e.kind for e in announced})})
            return n
        if conn is not None:
            return run(conn)
        with self.transaction() as c:
            if not idempotency_key:
                return run(c)
            fingerprint = fingerprint or _fingerprint([(e.user_id, e.item_id, e.kind, e.ts, e.split) for e in events])
            return _once(c, "events", idempotency_key, fingerprint, lambda: run(c))

    def events_of(self, user_ids: Iterable[str], splits: Sequence[str] = ("train", "valid", "test")) -> list[Event]:
        """These users' events in `splits`, per user in time order (re-ingest recomputes their split)."""
        users = list(dict.fromkeys(user_ids))
        marks = ",".join("?" * len(splits))
        out: list[Event] = []
        for start in range(0, len(users), 500):
            chunk = users[start:start + 500]
            for r in self._query(
                    f"SELECT user_id, item_id, kind, ts, split FROM events WHERE split IN ({marks})"
                    f" AND user_id IN ({','.join('?' * len(chunk))}) ORDER BY user_id, ts, rowid_",
                    (*splits, *chunk)):
                out.append(Event(r["user_id"], r["item_id"], r["kind"], r["ts"], r["split"]))
        return out

    def set_event_splits(self, events: Sequence[Event], conn: Transaction) -> int:
        """Sets the split of stored ingest events (never of `live` ones) to each event's split.
        Returns rows changed."""
        return conn.executemany(
            "UPDATE events SET split=? WHERE user_id=? AND item_id=? AND kind=? AND ts=? AND split<>'live'"
            " AND split<>?", [(e.split, e.user_id, e.item_id, e.kind, e.ts, e.split) for e in events])

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

    def histories(self, user_ids: Sequence[str], splits: Sequence[str] = SPLITS) -> dict[str, list[str]]:
        """`history` of several users in two queries (the server's batcher reads a whole batch at once):
        user id -> item ids oldest first; users never seen are absent."""
        ids = list(dict.fromkeys(u for u in user_ids if u))
        out: dict[str, list[str]] = {}
        smarks = ",".join("?" * len(splits))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT id FROM users WHERE id IN ({marks})", chunk):
                out[row["id"]] = []
            for row in self._query(f"SELECT user_id, item_id FROM events WHERE user_id IN ({marks})"
                                   f" AND split IN ({smarks}) ORDER BY user_id, ts, rowid_", (*chunk, *splits)):
                out[row["user_id"]].append(row["item_id"])
        return out

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

    def event_kinds(self, user_id: str, splits: Sequence[str] = SPLITS) -> dict[str, tuple[str, ...]]:
        """What the user did with each item: item id -> the recorded event kinds, oldest first, distinct."""
        marks = ",".join("?" * len(splits))
        out: dict[str, tuple[str, ...]] = {}
        for r in self._query(
                f"SELECT item_id, kind FROM events WHERE user_id=? AND split IN ({marks}) ORDER BY ts, rowid_",
                (user_id, *splits)):
            if r["kind"] not in out.get(r["item_id"], ()):
                out[r["item_id"]] = out.get(r["item_id"], ()) + (r["kind"],)
        return out

    def sequences(self, splits: Sequence[str] = ("train", "valid", "test"),
                  kinds: Sequence[str] | None = None,
                  users: Sequence[str] | None = None) -> dict[str, list[tuple[str, str]]]:
        """Every user's (item_id, split) sequence in time order, for training and evaluation.
        `kinds`: only events of these kinds (e.g. purchases for "other shoppers bought both");
        `users`: only these users' (those another process just recorded events of)."""
        marks = ",".join("?" * len(splits))
        kind_sql = f" AND kind IN ({','.join('?' * len(kinds))})" if kinds else ""
        user_ids = list(dict.fromkeys(users)) if users is not None else None
        chunks = [user_ids[i:i + 500] for i in range(0, len(user_ids), 500)] if user_ids is not None else [None]
        out: dict[str, list[tuple[str, str]]] = {}
        for chunk in chunks:
            user_sql = f" AND user_id IN ({','.join('?' * len(chunk))})" if chunk is not None else ""
            for r in self._query(
                    f"SELECT user_id, item_id, split FROM events WHERE split IN ({marks}){kind_sql}{user_sql}"
                    " ORDER BY user_id, ts, rowid_",
                    (*splits, *(kinds or ()), *(chunk or ()))):
                out.setdefault(r["user_id"], []).append((r["item_id"], r["split"]))
        return out

    def event_count(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM events")[0]["n"]

    # -- feedback -------------------------------------------------------------
    def add_feedback(self, fb: Feedback, idempotency_key: str = "", fingerprint: str = "") -> int:
        """Stored durably (committed; SQLite synchronous=FULL) before this returns. Returns its id.
        With an idempotency key, a repeat of the same call returns the first call's id and writes nothing."""
        helpful = None if fb.helpful is None else int(fb.helpful)

        def insert(c: Transaction) -> int:
            cur = c.execute(
                "INSERT INTO feedback(user_id, item_id, kind, helpful, reason, request_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (fb.user_id, fb.item_id, fb.kind, helpful, fb.reason, fb.request_id, time.time()))
            feedback_id = int(cur.fetchone()["id"])
            if helpful is not None:     # the other serving processes count it too (watch_feedback_changes)
                self._db.notify(c, FEEDBACK_CHANNEL, {"origin": self.origin, "ids": [feedback_id]})
            return feedback_id
        with self.transaction() as c:
            if not idempotency_key:
                return insert(c)
            # the request id differs between retries of one call: it is not part of what the call means
            fingerprint = fingerprint or _fingerprint((fb.user_id, fb.item_id, fb.kind, helpful, fb.reason))
            return _once(c, "feedback", idempotency_key, fingerprint, lambda: insert(c))

    def rated_feedback(self, ids: Sequence[int] | None = None, latest: int = 2000) -> list[dict]:
        """Ratings (feedback rows with `helpful` set), oldest first: those with these ids, or the
        `latest` ones when ids is None."""
        if ids is not None:
            ids = list(dict.fromkeys(int(i) for i in ids))
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = self._query(f"SELECT * FROM feedback WHERE helpful IS NOT NULL AND id IN ({marks}) ORDER BY id",
                               ids)
        else:
            rows = self._query("SELECT * FROM feedback WHERE helpful IS NOT NULL ORDER BY id DESC LIMIT ?",
                               (int(latest),))[::-1]
        return [dict(r) for r in rows]

    def feedback(self, user_id: str | None = None) -> list[dict]:
        if user_id is None:
            rows = self._query("SELECT * FROM feedback ORDER BY id")
        else:
            rows = self._query("SELECT * FROM feedback WHERE user_id=? ORDER BY id", (user_id,))
        return [dict(r) for r in rows]
