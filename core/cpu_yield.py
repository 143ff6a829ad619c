"""Preemption points for CPU work that shares a core with an event loop.

A serving worker's ranking thread and its event loop share one core (`server/cpu_placement.py`).
On this machine's kernel (EEVDF, preempt=none, 250 Hz ticks) a thread that wakes does not take the
core from a thread computing in user space: the kernel only marks the running thread for
rescheduling, and acts on the mark when that thread next enters the kernel or at the next tick, up
to 4 ms later. A ranking thread computing a 32-call batch for 4 ms thus held the core while the
event loop and gRPC's threads, already woken, waited for the tick (seen with `perf sched timehist`:
the ranking thread's runs of ~4.1 ms with a woken gRPC thread's scheduling delay of 4.09 ms inside
one). Thread priorities cannot fix that (the loop at nice -10 changed nothing), a real-time loop
could (event-loop lag p99 1.5 ms) but halved the throughput.

So the ranking code calls `pause()` between its pieces (one call of a batch, one stage). In a
thread that allowed it, that is `os.sched_yield()`: a system call made without the GIL, so the
kernel switches to a thread that is waiting for the core, and that thread can take the GIL too.
When no thread waits, it returns at once (about a microsecond). Elsewhere (the batch job, tests,
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
