"""Read the batch input, reject bad rows, and plan the work as per-user groups.

Formats, chosen by extension:
  .jsonl / .json / .ndjson  one JSON object per line; `line` is the 1-based line number
  .csv                      a header row, then rows; `line` is the physical line number (header = 1)
  .parquet                  `line` is the 1-based row number
  .txt                      (top-k mode only) one user id per line

Columns: `user_id`, `item_id` (pairs mode), optional `key`. In top-k mode (`--users-topk K`)
only `user_id` is read; the ranker picks the K items.

Keys: an explicit non-empty `key` wins. Otherwise the key is `f"{user_id}:{item_id}"` in
pairs mode (so the same pair twice is a duplicate: it would get the same justification) and
`f"{user_id}#{rank}"` (rank 1..K) in top-k mode, so a rerun after new events still yields
exactly K rows per user. Keys are what the output promises exactly once.

Rejected (to the rejects file, with file, line and reason; the job goes on): unreadable
lines, missing fields, a key already seen (the first occurrence is kept), users and items
the catalog does not know. The checks depend only on the input and the catalog, so a rerun
rejects the same rows and the rejects file is rewritten, never appended across runs.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class Row:
    """One accepted unit of work: one output line will carry `key`."""

    key: str
    user_id: str
    item_id: str        # "" in top-k mode until the ranker picks it
    line: int           # where it came from (see the module docstring)
    rank: int = 0       # top-k mode: 1-based rank to justify; 0 in pairs mode


@dataclass(frozen=True)
class Reject:
    file: str
    line: int
    reason: str
    key: str = ""

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "key": self.key, "reason": self.reason}


@dataclass
class Group:
    """Rows of one user, justified by one Explainer call so they share the prompt prefix."""

    user_id: str
    rows: list[Row]
    topk: int = 0       # > 0: top-k mode, ask the ranker for this many items


@dataclass
class Plan:
    groups: list[Group]                  # pending work, in input order of each user's first row
    rejects: list[Reject]
    total: int                           # accepted keys, done or not
    done: int                            # accepted keys already in the output
    order: dict[str, int] = field(default_factory=dict)   # key -> input position (for ordered Parquet)

    @property
    def pending(self) -> int:
        return sum(len(g.rows) for g in self.groups)


def _as_str(value) -> str:
    """Cell -> id string: numbers become their text, None / NaN / blanks become ""."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:   # NaN from a Parquet/CSV null
            return ""
        if value.is_integer():
            value = int(value)
    return str(value).strip()


def read_rows(path: Path, topk: bool = False) -> Iterator[tuple[int, dict | None, str]]:
    """Yield (line, fields, error): fields is None when the line itself is unreadable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        with open(path, encoding="utf-8") as f:
            for n, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield n, None, f"invalid JSON: {exc.msg}"
                    continue
                if not isinstance(obj, dict):
                    yield n, None, "not a JSON object"
                    continue
                yield n, obj, ""
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "user_id" not in reader.fieldnames:
                raise ValueError(f"input: {path} has no user_id column in its header")
            for obj in reader:
                # line_num is the physical line the row ended on (quoted newlines span lines)
                yield reader.line_num, obj, ""
    elif suffix == ".parquet":
        import pyarrow.parquet as pq   # pyarrow takes a while to import: only for Parquet input
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        if "user_id" not in names:
            raise ValueError(f"input: {path} has no user_id column")
        cols = [c for c in ("key", "user_id", "item_id") if c in names]
        n = 0
        for batch in pf.iter_batches(columns=cols, batch_size=65536):
            for obj in batch.to_pylist():
                n += 1
                yield n, obj, ""
    elif suffix == ".txt" and topk:
        with open(path, encoding="utf-8") as f:
            for n, text in enumerate(f, start=1):
                if text.strip():
                    yield n, {"user_id": text.strip()}, ""
    else:
        raise ValueError(f"input: unsupported file type {path.suffix!r} "
                         f"(use .jsonl, .csv, .parquet{', .txt' if topk else ''})")


def plan(path: Path, catalog, done_keys: set[str], topk: int = 0, max_group: int = 16) -> Plan:
    """Validate every row against the catalog and group the pending ones by user.

    Memory: one small Row per accepted key; a few million fit in a few GB. Larger inputs
    should be split into several jobs (each with its own output).
    """
    if topk < 0:
        raise ValueError(f"users_topk must be >= 0 (got {topk})")
    if max_group < 1:
        raise ValueError(f"max_group must be >= 1 (got {max_group})")
    fname = str(path)
    rejects: list[Reject] = []
    seen: set[str] = set()
    order: dict[str, int] = {}
    by_user: dict[str, list[Row]] = {}
    known_users: dict[str, bool] = {}
    known_items: dict[str, bool] = {}
    done = 0

    def user_ok(u: str) -> bool:
        if u not in known_users:
            known_users[u] = catalog.has_user(u)
        return known_users[u]

    def item_ok(i: str) -> bool:
        if i not in known_items:
            known_items[i] = catalog.has_item(i)
        return known_items[i]

    for line, obj, error in read_rows(Path(path), topk=topk > 0):
        if obj is None:
            rejects.append(Reject(fname, line, error))
            continue
        user = _as_str(obj.get("user_id"))
        item = _as_str(obj.get("item_id"))
        explicit = _as_str(obj.get("key"))
        if not user:
            rejects.append(Reject(fname, line, "missing field user_id", explicit))
            continue
        if topk:
            keys = [(f"{explicit}#{r}" if explicit else f"{user}#{r}", r) for r in range(1, topk + 1)]
        else:
            if not item:
                rejects.append(Reject(fname, line, "missing field item_id", explicit))
                continue
            keys = [(explicit or f"{user}:{item}", 0)]
        first_key = keys[0][0]
        if first_key in seen:
            rejects.append(Reject(fname, line, f"duplicate key {first_key!r} (first occurrence kept)", first_key))
            continue
        if not user_ok(user):
            rejects.append(Reject(fname, line, f"user_id: unknown user {user!r}", first_key))
            continue
        if not topk and not item_ok(item):
            rejects.append(Reject(fname, line, f"item_id: unknown item {item!r}", first_key))
            continue
        for key, rank in keys:
            seen.add(key)
            order[key] = len(order)
            if key in done_keys:
                done += 1
                continue
            by_user.setdefault(user, []).append(Row(key, user, "" if topk else item, line, rank))

    groups: list[Group] = []
    for user, rows in by_user.items():
        if topk:
            # one ranker call per user; its rows are the ranks still missing
            groups.append(Group(user, rows, topk=topk))
            continue
        for start in range(0, len(rows), max_group):
            groups.append(Group(user, rows[start:start + max_group]))
    return Plan(groups=groups, rejects=rejects, total=len(order), done=done, order=order)


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """Replace the rejects file atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
