"""A watchdog process that ends a process group when its parent goes away, however it goes.

    python group_watchdog.py PGID [GRACE_S]      (stdin: a pipe from the parent)

The parent (whoever starts vLLM) starts this in its own session with stdin a pipe whose write
end only the parent holds. When the parent exits, is killed (-9 included) or closes the pipe,
the read returns EOF and the watchdog sends SIGTERM to the whole group, then SIGKILL to what is
left after GRACE_S. A parent-death signal (prctl) is no substitute: it follows the thread that
forked, so a server started from a worker thread would be signalled when that thread ends, or,
from a thread pool, not reliably at all.

Run as a plain script (no package imports, standard library only) so it starts in milliseconds.
It also exits by itself once the group is gone.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time


def _stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of `pid` from /proc/PID/stat (Linux), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()    # after the command: state, ppid, pgrp, ...
        return fields[0], int(fields[1]), int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def _live_processes() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgrp) of every live (not zombie) process."""
    out = []
    for name in os.listdir("/proc"):
        st = _stat(name) if name.isdigit() else None
        if st is not None and st[0] != "Z":
            out.append((int(name), st[1], st[2]))
    return out


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, exited but not yet reaped, counts as gone)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid`: what a leak check counts as orphans."""
    return [pid for pid, _, pgrp in _live_processes() if pgrp == pgid]


def child_processes(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live direct children of `pid`."""
    out = []
    for child, ppid, _ in _live_processes():
        if ppid != pid:
            continue
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                out.append((child, fh.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return out


def group_alive(pgid: int) -> bool:
    """True while a live process is in the group. Not `killpg(pgid, 0)`: that also finds zombies,
    and an orphaned zombie waits for PID 1 to reap it (over a second in some containers), so the
    watchdog would wait out its grace for processes that have already ended."""
    return bool(group_members(pgid))


def end_group(pgid: int, grace_s: float) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    pgid = int(argv[1])
    grace_s = float(argv[2]) if len(argv) > 2 else 10.0
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # a terminal's Ctrl-C is for the parent
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    fd = sys.stdin.fileno()
    while not stop:
        try:
            ready, _, _ = select.select([fd], [], [], 2.0)
        except InterruptedError:
            continue
        if ready and not os.read(fd, 4096):
            break                                         # EOF: the parent is gone or let go
        if not group_alive(pgid):
            return 0                                      # nothing left to guard
    end_group(pgid, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
