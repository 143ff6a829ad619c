"""A dynamic batcher: concurrent calls that arrive within `max_wait_s` of each other share one
run of `work(items)` in a worker thread (the Triton / Ray Serve design: a batch closes when it
is full or when its first call has waited `max_wait_s`, whichever comes first).

`work` takes a list of inputs and returns one result per input, in order; a result that is an
exception fails only its own call, so one bad request never fails its batch. Each call may
carry a deadline (a `time.monotonic()` instant): a batch never waits past its earliest
deadline, a call whose deadline has passed before its batch runs is failed with
`DeadlineExceeded` without being worked on, and the caller stops waiting at its deadline.

The event loop only queues and resolves futures; all CPU work runs in the executor.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class DeadlineExceeded(Exception):
    """The caller's deadline passed before its batch could run or finish."""


@dataclass(frozen=True)
class BatcherConfig:
    max_batch: int = 32
    """Most calls worked on together."""
    max_wait_s: float = 0.002
    """How long the first call of a batch waits for others to join (0: never wait; batch only what
    queued up while the previous batch ran)."""
    max_in_flight: int = 2
    """Batches run at once (one per core: a batch's forward pass and search are single-threaded)."""
    resume_chunk: int = 2
    """Callers of a finished batch woken per event-loop turn (the others wait for the next turns)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (got {self.max_batch})")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0 (got {self.max_wait_s})")
        if self.resume_chunk < 1:
            raise ValueError(f"resume_chunk must be >= 1 (got {self.resume_chunk})")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1 (got {self.max_in_flight})")


@dataclass
class _Call(Generic[In]):
    item: In
    deadline_at: float | None
    future: asyncio.Future


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded("the deadline passed while the call waited for its batch"))


class DynamicBatcher(Generic[In, Out]):
    def __init__(self, work: Callable[[Sequence[In]], Sequence["Out | BaseException"]], executor: Executor | None,
                 config: BatcherConfig = BatcherConfig(), on_batch: Callable[[int], None] | None = None):
        self.work, self.executor, self.config = work, executor, config
        self.on_batch = on_batch    # told each batch's size (the service's batch-size histogram)
        self._queue: list[_Call[In]] = []
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()     # running batches (a task needs a reference to live)
        self.batches = 0          # batches run (tests and the bench read these)
        self.calls = 0

    async def submit(self, item: In, deadline_at: float | None = None) -> Out:
        """The result of `work` for this item; raises its exception, or DeadlineExceeded."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:      # asyncio primitives belong to one loop (tests run several)
            self._loop, self._queue, self._runner, self._tasks = loop, [], None, set()
            self._wakeup = asyncio.Event()
            self._slots = asyncio.Semaphore(self.config.max_in_flight)
        call = _Call(item, deadline_at, loop.create_future())
        self._queue.append(call)
        self._wakeup.set()
        if self._runner is None or self._runner.done():   # the runner exits when the queue is empty
            self._runner = loop.create_task(self._run())
        if deadline_at is None:
            return await call.future
        # one timer per call (not wait_for + shield: two more tasks per call on the event loop);
        # a caller that goes away cancels its future, and the batch then skips it
        timer = loop.call_later(max(0.0, deadline_at - time.monotonic()), _expire, call.future)
        try:
            return await call.future
        finally:
            timer.cancel()

    async def _run(self) -> None:
        """Forms batches while calls are queued, then exits (no task outlives the traffic)."""
        while self._queue:
            await self._slots.acquire()
            await self._gather()
            batch, self._queue = self._queue[:self.config.max_batch], self._queue[self.config.max_batch:]
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _gather(self) -> None:
        """Waits until the batch is full, max_wait has passed since its first call, or half the time
        left to its earliest deadline has gone (the other half is for the work), whichever comes first."""
        if self.config.max_wait_s <= 0 or len(self._queue) >= self.config.max_batch:
            return
        now = time.monotonic()
        until = now + self.config.max_wait_s
        deadlines = [c.deadline_at for c in self._queue[:self.config.max_batch] if c.deadline_at is not None]
        if deadlines:
            until = min(until, now + (min(deadlines) - now) / 2)
        while len(self._queue) < self.config.max_batch and (left := until - time.monotonic()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                break

    async def _execute(self, batch: list[_Call[In]]) -> None:
        try:
            now = time.monotonic()
            live = []
            for c in batch:
                if c.future.done():
                    continue
                if c.deadline_at is not None and c.deadline_at <= now:
                    c.future.set_exception(DeadlineExceeded("the deadline passed before the call's batch ran"))
                else:
                    live.append(c)
            if not live:
                return
            self.batches += 1
            self.calls += len(live)
            if self.on_batch is not None:
                self.on_batch(len(live))
            items = [c.item for c in live]
            try:
                results = await asyncio.get_running_loop().run_in_executor(self.executor, self.work, items)
                if len(results) != len(live):
                    raise RuntimeError(f"batch work returned {len(results)} results for {len(live)} inputs")
            except BaseException as exc:  # noqa: BLE001 - the whole batch failed: each call sees why
                results = [exc] * len(live)
            chunk = self.config.resume_chunk
            for n, (c, r) in enumerate(zip(live, results), 1):
                if c.future.done():
                    continue
                if isinstance(r, BaseException):
                    c.future.set_exception(r)
                else:
                    c.future.set_result(r)
                if n % chunk == 0 and n < len(live):
                    # the next callers wake in the next loop turn: resumed all at once, a batch's 32
                    # callers built and sent their replies in one turn of 12-19 ms, and every timer
                    # and arriving call waited behind them (README, Performance: event-loop lag)
                    await asyncio.sleep(0)
        finally:
            self._slots.release()
            for c in batch:   # an abandoned future's exception is never retrieved: mark it seen
                if c.future.done() and not c.future.cancelled():
                    c.future.exception()
