"""The local engine: keep vLLM busy with a bounded number of requests in flight.

vLLM batches whatever requests are waiting, so throughput needs many requests in flight;
memory and tail latency need a bound. Groups (one user, up to `max_group` items, one
Explainer call whose items share the prompt prefix) are dispatched in input order while
the number of *items* in flight stays under `concurrency`. Results are written as they
complete, in chunks, by one Sink (see journal.py for why that is exactly-once).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Awaitable, Callable, Iterable

from explainer.batch.inputs import Group, Row
from explainer.batch.journal import Journal

log = logging.getLogger(__name__)


class Slots:
    """A counting semaphore that takes several permits at once (one per item of a group)."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"concurrency must be >= 1 (got {n})")
        self.n = n
        self.free = n
        self._cond = asyncio.Condition()

    async def acquire(self, k: int) -> int:
        k = min(k, self.n)   # a group larger than the bound still runs, alone
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= k)
            self.free -= k
        return k

    async def release(self, k: int) -> None:
        async with self._cond:
            self.free += k
            self._cond.notify_all()


class Sink:
    """The one writer: appends records to the journal in fsync'ed chunks, rejects to their file."""

    def __init__(self, journal: Journal, rejects_path: Path, input_name: str, progress=None,
                 chunk_size: int = 64, flush_interval_s: float = 2.0):
        self.journal = journal
        self.rejects_path = Path(rejects_path)
        self.input_name = input_name
        self.progress = progress
        self.chunk_size = chunk_size
        self.flush_interval_s = flush_interval_s
        self._buf: list[dict] = []
        self._last = time.monotonic()
        self.written = 0
        self.rejected = 0

    def add(self, records: Iterable[dict], rejects: Iterable[tuple[Row, str]] = ()) -> None:
        records = list(records)
        self._buf.extend(records)
        rejects = list(rejects)
        if rejects:
            with open(self.rejects_path, "a", encoding="utf-8") as f:
                for row, reason in rejects:
                    f.write(json.dumps({"file": self.input_name, "line": row.line, "key": row.key,
                                        "reason": reason}, ensure_ascii=False) + "\n")
            self.rejected += len(rejects)
        if self.progress is not None:
            self.progress.update(len(records) + len(rejects))
        if len(self._buf) >= self.chunk_size or time.monotonic() - self._last >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self.written += self.journal.append(self._buf)
            self._buf = []
        self._last = time.monotonic()


async def run_groups(groups: Iterable[Group], run: Callable[[Group], Awaitable],
                     on_result: Callable[[list[dict], list], None], concurrency: int) -> None:
    """Run `run(group)` with at most `concurrency` items in flight; results go to on_result.

    The first unexpected error stops dispatching; groups already in flight finish (and are
    written) before it is raised, so a rerun redoes as little as possible.
    """
    slots = Slots(concurrency)
    tasks: set[asyncio.Task] = set()
    errors: list[BaseException] = []

    async def one(group: Group, held: int) -> None:
        try:
            records, rejects = await run(group)
            on_result(records, rejects)
        except BaseException as exc:   # noqa: BLE001 - re-raised below, after the drain
            errors.append(exc)
        finally:
            await slots.release(held)

    for group in groups:
        if errors:
            break
        held = await slots.acquire(len(group.rows))
        task = asyncio.create_task(one(group, held))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    if errors:
        raise errors[0]


async def run_local(groups: list[Group], worker, sink: Sink, concurrency: int) -> None:
    try:
        await run_groups(groups, worker.run, sink.add, concurrency)
    finally:
        sink.flush()
