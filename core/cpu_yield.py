"""Preemption points for CPU work that shares a core with an event loop.

A serving worker's ranking thread and its event loop share one core (`server/cpu_placement.py`).
What was seen on this machine (Linux 6.18, EEVDF, 250 Hz tick; `perf sched timehist` inside a
two-worker bench at 64 clients): a ranking thread computing a batch ran ~4.1 ms without a break
while a gRPC thread of the same worker, woken early in that stretch, waited 4.09 ms for the core,
and the event loop behind it 6.8 ms. A woken thread did not take the core from a thread computing in
user space until that thread entered the kernel or the next tick came (the kernel's lazy
preemption fits this). Priorities did not change it (the loop at nice -10: lag p99 6.9 ms), a
real-time loop did (1.5 ms) but halved the throughput.

So the ranking code calls `pause()` between its pieces (one call of a batch, one stage). In a
thread that allowed it, that is `os.sched_yield()`: a system call made without the GIL, so the
kernel switches to a thread that is waiting for the core, and that thread can take the GIL too.
When no thread waits, it returns at once (0.6 µs here). Elsewhere (the batch job, tests,
evaluation) `pause()` does nothing.
"""
from __future__ import annotations

import os
import threading

_local = threading.local()


def allow_in_this_thread(allowed: bool = True) -> bool:
    """Makes `pause()` yield the CPU in the calling thread (or not). False where the platform has no
    sched_yield (pause then does nothing)."""
    _local.allowed = allowed and hasattr(os, "sched_yield")
    return _local.allowed


def allowed_in_this_thread() -> bool:
    return getattr(_local, "allowed", False)


def pause() -> None:
    """A preemption point: lets a waiting thread run, in threads that allowed it."""
    if getattr(_local, "allowed", False):
        os.sched_yield()
