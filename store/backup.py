"""Online backup and restore of the SQLite store, through SQLite's backup API.

`backup(db, dest)` copies the database while the service keeps writing: the copy is one step of
the backup API, i.e. one read transaction, so it is the snapshot of every transaction committed
before it began (WAL mode: writers are not blocked meanwhile). The copy is checked with
`PRAGMA integrity_check`, switched to a self-contained rollback journal, fsynced and only then
renamed into place, so `dest` is either a whole, checked backup or absent.

`restore(backup, db)` refuses while anything else has the database open (a running service
would keep writing to what it believes is the old file), checks the backup, optionally keeps
the current file aside, and copies the backup in with the same API under an exclusive lock.
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from store.errors import StoreError


class BackupError(StoreError):
    """A backup or restore could not be made safely; nothing was changed."""


@dataclass(frozen=True)
class BackupReport:
    source: str
    dest: str
    bytes: int
    seconds: float
    integrity: str
    counts: dict

    def as_dict(self) -> dict:
        return asdict(self)


COUNTED_TABLES = ("items", "users", "events", "feedback")


def integrity(conn: sqlite3.Connection) -> str:
    """'ok' or SQLite's first complaint."""
    return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _counts(conn: sqlite3.Connection) -> dict:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES if t in names}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(db: str | Path, dest: str | Path, busy_timeout_s: float = 30.0) -> BackupReport:
    db, dest = Path(db), Path(dest)
    if not db.is_file():
        raise BackupError(f"no database at {db}")
    if dest.resolve() == db.resolve():
        raise BackupError("the backup must go to another file than the database")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    src = sqlite3.connect(str(db), timeout=busy_timeout_s)
    out = sqlite3.connect(str(tmp))
    try:
        src.backup(out)                              # pages=-1: one step, one consistent snapshot
        out.execute("PRAGMA journal_mode=DELETE")    # one self-contained file, no -wal beside it
        check = integrity(out)
        counts = _counts(out)
    finally:
        out.close()
        src.close()
    if check != "ok":
        tmp.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {check}")
    _fsync(tmp)
    os.replace(tmp, dest)
    _fsync(dest.parent)
    return BackupReport(str(db), str(dest), dest.stat().st_size, round(time.perf_counter() - t0, 3), check, counts)


def restore(backup_file: str | Path, db: str | Path, keep_current: bool = True) -> BackupReport:
    """Puts `backup_file` in place of `db`. With keep_current, the current database is first backed
    up beside it as `<db>.before-restore-<unix time>`."""
    backup_file, db = Path(backup_file), Path(db)
    if not backup_file.is_file():
        raise BackupError(f"no backup at {backup_file}")
    t0 = time.perf_counter()
    src = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        check = integrity(src)
        if check != "ok":
            raise BackupError(f"{backup_file} failed its integrity check: {check}; nothing restored")
        if db.exists() and keep_current:
            backup(db, db.with_name(f"{db.name}.before-restore-{int(time.time())}"))
        db.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(str(db), timeout=0.5, isolation_level=None)
        try:
            # exclusive locking mode: fails while any other connection (a running service) has the file open
            dst.execute("PRAGMA locking_mode=EXCLUSIVE")
            try:
                dst.execute("BEGIN EXCLUSIVE")
                dst.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                raise BackupError(f"{db} is in use ({exc}): stop the service before restoring") from None
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")     # what the service uses
            check = integrity(dst)
            counts = _counts(dst)
        finally:
            dst.close()
    finally:
        src.close()
    if check != "ok":
        raise BackupError(f"the restored database failed its integrity check: {check}")
    return BackupReport(str(backup_file), str(db), db.stat().st_size, round(time.perf_counter() - t0, 3), check, counts)
