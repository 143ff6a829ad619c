"""The output file is its own progress journal: append-only JSON lines, fsync per chunk.

Why not a separate SQLite journal: with two stores, "written to the output" and "marked
done" are two commits, and a crash between them gives either a duplicate or a lost key
unless one of them is made the source of truth anyway. Making the output itself the truth
removes the second commit:

  * a chunk of complete lines goes out in one write() and is fsync'ed before more work is
    counted as done; a kill -9 can only leave a torn *last* line;
  * on start, everything after the last newline is truncated away (that line's key was
    never done), every remaining line is parsed, and its key joins the done set;
  * the planner skips done keys, so each key is written by exactly one run, once;
  * only one process writes (an exclusive flock on `<output>.lock`; a second run of the
    same command fails fast instead of interleaving lines). Under Ray only the driver
    writes, so the same file and the same recovery serve both engines.

Cost: one fsync per chunk (64 lines by default), negligible next to LLM generation.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Iterable


class OutputLocked(RuntimeError):
    """Another process is writing the same output."""


class Journal:
    """Append-only JSONL output + the set of keys it already holds."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: set[str] = set()
        self.truncated_bytes = 0          # torn tail dropped at open (for the log)
        self._f = None
        self._lock = None

    def open(self) -> "Journal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise OutputLocked(f"output: {self.path} is being written by another process") from None
        created = not self.path.exists()
        self._f = open(self.path, "a+b")
        if created:
            _fsync_dir(self.path.parent)
        self._recover()
        return self

    def _recover(self) -> None:
        f = self._f
        f.seek(0)
        data = f.read()
        end = data.rfind(b"\n") + 1          # 0 when there is no complete line
        if end < len(data):
            self.truncated_bytes = len(data) - end
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        for n, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                key = json.loads(line)["key"]
            except (ValueError, KeyError, TypeError) as exc:
                # Only the tail can tear; a bad line in the middle is not ours to guess about.
                raise RuntimeError(f"output: {self.path}:{n} is not a record of this job ({exc})") from None
            self.done.add(key)
        f.seek(0, os.SEEK_END)

    def append(self, records: Iterable[dict]) -> int:
        """Write complete lines in one write() and fsync them: after return they are done."""
        records = [r for r in records if r["key"] not in self.done]
        if not records:
            return 0
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        self._f.write(payload)
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.update(r["key"] for r in records)
        return len(records)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "Journal":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: Path) -> list[dict]:
    """Every complete record of a finished (or recovered) output file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n") and line.strip():
                out.append(json.loads(line))
    return out


def write_parquet(jsonl_path: Path, parquet_path: Path, order: dict[str, int]) -> int:
    """Write the records in input order to Parquet, atomically (temp file + rename)."""
    import pyarrow as pa   # pyarrow takes a while to import: only for Parquet output
    import pyarrow.parquet as pq

    records = read_records(jsonl_path)
    records.sort(key=lambda r: order.get(r["key"], len(order)))
    schema = pa.schema([
        ("key", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()), ("rank", pa.int32()),
        ("text", pa.string()), ("source", pa.string()), ("evidence_ids", pa.list_(pa.string())),
        ("facts", pa.list_(pa.string())), ("template", pa.string()), ("model", pa.string()),
        ("fallback_reason", pa.string()),
    ])
    table = pa.Table.from_pylist(records, schema=schema)
    parquet_path = Path(parquet_path)
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = parquet_path.with_name(parquet_path.name + ".tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(parquet_path)
    return len(records)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
