"""Event-loop lag: how late a timer fires on the serving loop. CPU work that sneaks onto the loop
(instead of the worker threads) shows up here as lag, and every call in flight pays it.

The monitor sleeps `interval_s` again and again and records how much later than asked it woke.
It exports a Prometheus histogram and the p99 over its recent window as a gauge, so a bench can
read the figure from /metrics of a live server.
"""
from __future__ import annotations

import asyncio
import collections
import time

from prometheus_client import Gauge, Histogram

# half-millisecond buckets up to 10 ms: the bench reads its p99 from this histogram, and with the
# old (5, 7.5] bucket every p99 in that range came out near 7.2-7.5 ms, whatever it really was
LAG = Histogram("explainrec_event_loop_lag_seconds", "how late the serving event loop ran a timer",
                buckets=(*(n / 2000 for n in range(1, 21)), .015, .025, .05, .1, .25, 1))
LAG_P99 = Gauge("explainrec_event_loop_lag_p99_seconds", "p99 event-loop lag over the monitor's recent window "
                "(with workers: the worst live worker's)", multiprocess_mode="livemax")


class LoopLagMonitor:
    def __init__(self, interval_s: float = 0.01, window: int = 3000):
        self.interval_s = interval_s
        self.lags: collections.deque[float] = collections.deque(maxlen=window)
        self._task: asyncio.Task | None = None

    def start(self) -> "LoopLagMonitor":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        n = 0
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, time.perf_counter() - t0 - self.interval_s)
            self.lags.append(lag)
            LAG.observe(lag)
            n += 1
            if n % 50 == 0:
                LAG_P99.set(self.p99_s())

    def p99_s(self) -> float:
        if not self.lags:
            return 0.0
        s = sorted(self.lags)
        return s[min(len(s) - 1, int(0.99 * len(s)))]

    def reset(self) -> None:
        self.lags.clear()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
