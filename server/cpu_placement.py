"""Where a serving process's threads run (Linux; elsewhere these do nothing).

With `--workers N`, every worker runs an event loop and a ranking thread that share one GIL, and N
of them share the machine's cores with the load's own clients. Left to the kernel, a worker's
threads move between cores and its event loop waits behind the other workers' threads: measured on
this 2-core machine (`bench/bench_server.py`, W=2, 64 clients, README Performance "Seventh pass"),
a worker's loop spent a median 4.9 ms of each 10 ms sleep runnable but waiting for a core. Pinned,
the server's CPU a call also fell (0.95-0.97 → 0.82-0.86 ms), which fits a worker's item matrix and caches
staying in one core's cache, though that part was not measured apart.

So, as nginx's `worker_cpu_affinity auto` does:
- worker i runs on its own share of the CPUs this process may use (`worker_cpus`);
- the ranking threads run at a higher nice value than the event loop and gRPC's threads
  (`lower_this_thread`), so while both are runnable the loop gets the larger share of the core.
  Batches do not starve: when the loop has nothing to do it sleeps, and the ranking thread has the
  core. Nice alone does not make a woken loop take the core from a ranking thread at once: here it
  waited for the ranking thread's next system call or the next tick, which `core/cpu_yield.py`'s
  preemption points provide (README Performance, "Eighth pass").
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("explainrec.server")


def worker_cpus(index: int, workers: int, cpus: list[int]) -> set[int]:
    """The CPUs worker `index` of `workers` runs on: an equal, contiguous share of `cpus` (the
    remainder to the first workers); with more workers than CPUs, CPU index mod len(cpus)."""
    if workers < 1 or not cpus:
        raise ValueError(f"need workers >= 1 and some CPUs (got workers={workers}, cpus={cpus})")
    cpus = sorted(cpus)
    if workers >= len(cpus):
        return {cpus[index % len(cpus)]}
    share, extra = divmod(len(cpus), workers)
    start = index * share + min(index, extra)
    return set(cpus[start:start + share + (1 if index < extra else 0)])


def worker_shares(workers: int) -> list[set[int]] | None:
    """Each worker's CPUs, out of those this process may run on; None with one worker or where the
    platform cannot pin (the workers then run wherever the kernel puts them)."""
    if workers < 2 or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return [worker_cpus(i, workers, cpus) for i in range(workers)]


def pin_this_process(cpus: set[int]) -> bool:
    """Runs this process on `cpus` (the threads it starts after this inherit them). False where it
    cannot: a container may forbid it, and the worker then serves unpinned."""
    try:
        os.sched_setaffinity(0, cpus)
    except (OSError, AttributeError) as exc:
        log.warning("could not run on CPUs %s: %s", sorted(cpus), exc)
        return False
    return True


def lower_this_thread(nice_increment: int) -> int | None:
    """Raises the calling thread's nice value by `nice_increment` (at most to 19): on Linux nice is
    per thread, so only this thread yields. Raising it needs no privilege. Returns the new value, or
    None where the platform cannot (or for 0)."""
    if nice_increment <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return None
    tid = threading.get_native_id()
    try:
        nice = min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice_increment)
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        log.warning("could not lower the ranking thread's priority: %s", exc)
        return None
    return nice
