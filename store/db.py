"""The two database backends under the catalog: SQLite (default) and PostgreSQL.

The catalog writes one SQL dialect: `?` placeholders, `INSERT ... ON CONFLICT`, `RETURNING`,
`ORDER BY rowid` (PostgreSQL tables get an explicit `rowid` identity column for it). Each
backend only supplies connections and transactions; PostgreSQL's rewrites `?` to `%s`, so the
store's SQL never holds a literal `?` or `%`.

Both backends give the same guarantees: every write is one transaction, committed durably
before the call returns (SQLite: WAL + synchronous=FULL; PostgreSQL: synchronous_commit on),
and a failure rolls the whole transaction back.

`open_database("postgresql://…")` picks PostgreSQL (psycopg 3 with a connection pool); any
other location is a SQLite file path.
"""
from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

from store.errors import StoreError

log = logging.getLogger(__name__)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
NOTICE_TTL_S = 600.0      # SQLite change notices older than this are deleted (a listener polls every 0.2 s)
NOTICE_POLL_S = 0.2
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?\n")


def is_postgres_url(location: str | Path) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password, for logs and reports."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def split_script(script: str) -> list[str]:
    """Statements of a DDL script (statements end with ';' at the end of a line)."""
    return [s.strip() for s in _STATEMENT_END.split(script + "\n") if s.strip() and not _only_comments(s)]


def _only_comments(stmt: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in stmt.splitlines())


class Transaction(Protocol):
    """What a transaction offers the catalog: the DB-API calls, with `?` placeholders."""

    def execute(self, sql: str, args: Sequence = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int: ...


class Database(Protocol):
    dialect: str            # "sqlite" or "postgresql"
    location: str           # a path, or the URL without its password

    def transaction(self) -> ContextManager[Transaction]: ...
    def query(self, sql: str, args: Sequence = ()) -> list: ...
    def notify(self, tx: Transaction, channel: str, payload: dict) -> None: ...
    def listen(self, channel: str, on_message: Callable[[dict | None], None]) -> Callable[[], None]: ...
    def close(self) -> None: ...


# -- SQLite -------------------------------------------------------------------------------
class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, args: Sequence = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        return max(self.conn.executemany(sql, rows).rowcount, 0)


class SqliteDatabase:
    """One connection guarded by a lock: SQLite serialises writers anyway, and the service's
    writes (events, feedback, catalog changes) are small."""
    dialect = "sqlite"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._listeners: list[_SqliteListener] = []
        self._opened_at_seq: int | None = None
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: feedback must survive a power cut, not only a process crash.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def transaction(self) -> Iterator[_SqliteTx]:
        """All-or-nothing: commits on success, rolls back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def notify(self, tx: _SqliteTx, channel: str, payload: dict) -> None:
        """Several processes may serve from one file (`explainrec serve --workers N`): the notice is a
        row of `notices`, written in the same transaction (so only a committed change is announced),
        which the other processes' listeners poll. Notices older than NOTICE_TTL_S go."""
        now = time.time()
        tx.execute("INSERT INTO notices(channel, payload, created_at) VALUES (?, ?, ?)",
                   (channel, json.dumps(payload, separators=(",", ":")), now))
        tx.execute("DELETE FROM notices WHERE created_at < ?", (now - NOTICE_TTL_S,))

    def mark_loaded_from(self) -> None:
        """Called when the catalog opens (after its migrations): whatever this process builds from the
        store reflects every notice up to here, so a listener reports only later ones."""
        self._opened_at_seq = self.query("SELECT COALESCE(MAX(seq), 0) AS s FROM notices")[0]["s"]

    def listen(self, channel: str, on_message: Callable[[dict | None], None]) -> Callable[[], None]:
        listener = _SqliteListener(self.path, channel, on_message, self._opened_at_seq)
        self._listeners.append(listener)
        listener.start()
        return listener.stop

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        with self._lock:
            self._conn.close()


class _SqliteListener:
    """Polls `notices` for one channel in a thread, on its own connection. `PRAGMA data_version`
    changes only when another connection committed, so an idle poll reads no table. It reports the
    notices after `since` (the last one when the catalog opened: what this process loaded after that
    reflects the earlier ones). Without that mark, or when notices after it were already deleted, it
    calls `on_message(None)` first, like the PostgreSQL listener after a (re)connection: compare
    everything once."""

    def __init__(self, path: Path, channel: str, on_message: Callable[[dict | None], None],
                 since: int | None = None, poll_s: float = NOTICE_POLL_S):
        self.path, self.channel, self.on_message, self.poll_s = path, channel, on_message, poll_s
        self.since = since
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"explainrec-listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            log.exception("store listener on %r could not open %s", self.channel, self.path)
            return
        try:
            oldest, newest = conn.execute("SELECT MIN(seq), COALESCE(MAX(seq), 0) FROM notices").fetchone()
            if self.since is None or (oldest is not None and oldest > self.since + 1 and newest > self.since):
                seen = newest
                self._deliver(None)
            else:
                seen = self.since
            version = None
            while not self._stop.wait(self.poll_s):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now == version:
                    continue
                version = now
                rows = conn.execute("SELECT seq, payload FROM notices WHERE channel=? AND seq > ? ORDER BY seq",
                                    (self.channel, seen)).fetchall()
                for seq, payload in rows:
                    seen = seq
                    self._deliver(json.loads(payload))
        except sqlite3.Error:
            if not self._stop.is_set():
                log.exception("store listener on %r stopped", self.channel)
        finally:
            conn.close()

    def _deliver(self, payload: dict | None) -> None:
        try:
            self.on_message(payload)
        except Exception:  # noqa: BLE001 - the listener outlives one bad handler call
            log.exception("store listener on %r: handler failed", self.channel)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)


# -- PostgreSQL ---------------------------------------------------------------------------
class Row(tuple):
    """A result row read by position or by column name, like sqlite3.Row."""

    def __new__(cls, values: Sequence, names: list[str], index: dict[str, int]):
        row = super().__new__(cls, values)
        row._names, row._index = names, index
        return row

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor):
    if cursor.description is None:
        return tuple
    names = [c.name for c in cursor.description]
    index = {n: i for i, n in enumerate(names)}
    return lambda values: Row(values, names, index)


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class _PostgresTx:
    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, args: Sequence = ()):
        return self.conn.execute(_pg(sql), tuple(args) if args else None)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)
            return max(cur.rowcount, 0)


class PostgresDatabase:
    """A psycopg 3 connection pool. Each transaction borrows one connection; reads outside a
    transaction run in autocommit. Several service replicas may share the database."""
    dialect = "postgresql"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 8, connect_timeout_s: float = 30.0):
        import psycopg          # PostgreSQL only: a SQLite store never loads the driver
        import psycopg_pool
        self.url = url
        self.location = redact(url)
        try:    # one plain connection first: its error says why (refused, auth, no database)
            psycopg.connect(url, connect_timeout=int(connect_timeout_s)).close()
        except psycopg.Error as exc:
            raise StoreError(f"store {self.location}: cannot connect: {str(exc).strip()}") from None
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, name="explainrec-store",
            kwargs={"autocommit": True, "row_factory": _row_factory})
        self._pool.open(wait=True, timeout=connect_timeout_s)
        self._listeners: list[_Listener] = []

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def query(self, sql: str, args: Sequence = ()) -> list[Row]:
        with self._pool.connection() as conn:
            return conn.execute(_pg(sql), tuple(args) if args else None).fetchall()

    def notify(self, tx: _PostgresTx, channel: str, payload: dict) -> None:
        """Delivered to every listener when (and only if) the transaction commits."""
        tx.execute("SELECT pg_notify(?, ?)", (channel, json.dumps(payload, separators=(",", ":"))))

    def listen(self, channel: str, on_message: Callable[[dict | None], None]) -> Callable[[], None]:
        listener = _Listener(self.url, channel, on_message)
        self._listeners.append(listener)
        listener.start()
        if not listener.listening.wait(30):   # changes committed after this returns are heard
            log.warning("store listener on %r not connected yet; it keeps trying", channel)
        return listener.stop

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._pool.close()


class _Listener:
    """LISTEN on its own connection, in a thread. `on_message(None)` is called after every
    (re)connection: notifications sent while it was not listening are lost, so the receiver
    must resynchronise in full then."""

    def __init__(self, url: str, channel: str, on_message: Callable[[dict | None], None]):
        self.url, self.channel, self.on_message = url, channel, on_message
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"explainrec-listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg          # PostgreSQL only (see PostgresDB.__init__)
        from psycopg import sql
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    backoff = 0.5
                    self.listening.set()
                    self._deliver(None)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            try:
                                payload = json.loads(note.payload)
                            except ValueError:
                                payload = None
                            self._deliver(payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("store listener on %r lost its connection (%s); reconnecting", self.channel, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _deliver(self, payload: dict | None) -> None:
        try:
            self.on_message(payload)
        except Exception:  # noqa: BLE001 - one bad message must not stop the listener
            log.exception("store listener on %r: handler failed", self.channel)


def open_database(location: str | Path) -> SqliteDatabase | PostgresDatabase:
    if is_postgres_url(location):
        return PostgresDatabase(str(location))
    return SqliteDatabase(location)
