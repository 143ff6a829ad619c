"""LLMSupervisor: keeps the LLM answering, or says that it is not.

With a `LocalVLLMServer` it watches the process (every `check_interval_s`) and its `/health`
(every `health_interval_s`); when the process exits, or `/health` fails `failures_to_restart`
times in a row, it ends the whole process group (no orphaned engine processes), then starts the
server again on the same port, waiting `backoff_initial_s`, doubling up to `backoff_max_s`
between failed starts. The explainer keeps its URL and gets LLM justifications again as soon as
the new server answers; meanwhile its calls fail fast (the port refuses) and the templates answer.

With only URLs (external vLLM servers, comma-separated) it watches their `/health` and reports
up while any answers; it cannot restart them.

`on_change(up: bool)` is called from the supervisor's thread on every change (health status).
`restarts` and `down_seconds()` feed the metrics.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import httpx

from explainer.vllm_server import LocalVLLMServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupervisorConfig:
    check_interval_s: float = 1.0
    """How often the process is polled."""
    health_interval_s: float = 5.0
    """How often /health is asked."""
    health_timeout_s: float = 10.0
    """A /health answer slower than this counts as a failure (a loaded CPU server can be slow)."""
    failures_to_restart: int = 3
    """Consecutive /health failures of a live process before it is restarted."""
    backoff_initial_s: float = 1.0
    """Wait before the first restart; doubles after each failed start."""
    backoff_max_s: float = 60.0
    """Longest wait between restarts."""
    stable_after_s: float = 120.0
    """Up this long, the back-off starts again from backoff_initial_s."""


class LLMSupervisor:
    def __init__(self, server: LocalVLLMServer | None = None, url: str = "",
                 on_change: Callable[[bool], None] | None = None, config: SupervisorConfig | None = None):
        if server is None and not url:
            raise ValueError("give a LocalVLLMServer or a url")
        self.server, self.config = server, config or SupervisorConfig()
        self._url = url
        self.on_change = on_change
        self.restarts = 0
        self.up = False
        self._down_since: float | None = None
        self._down_total = 0.0
        self._up_since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else self._url

    # -- state ---------------------------------------------------------------------------------
    def down_seconds(self) -> float:
        """Time without an answering LLM since the supervisor started, the current outage included."""
        with self._lock:
            now = time.monotonic()
            return self._down_total + (now - self._down_since if self._down_since is not None else 0.0)

    def _set(self, up: bool) -> None:
        with self._lock:
            now = time.monotonic()
            if up == self.up and (up or self._down_since is not None):
                return
            self.up = up
            if up:
                if self._down_since is not None:
                    self._down_total += now - self._down_since
                self._down_since = None
                self._up_since = now
            else:
                self._down_since = now
        if self.on_change is not None:
            try:
                self.on_change(up)
            except Exception:  # noqa: BLE001 - a reporting failure must not stop supervision
                log.exception("LLM state callback failed")

    def _healthy(self) -> bool:
        if self.server is not None:
            return self.server.healthy(self.config.health_timeout_s)
        for url in (u.strip().rstrip("/") for u in self._url.split(",") if u.strip()):   # several: any will do
            try:
                if httpx.get(url + "/health", timeout=self.config.health_timeout_s).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
        return False

    def check_now(self) -> bool:
        """Reads the LLM's health now instead of at the next interval (a `serve --workers` worker when
        its parent says the shared LLM has started); returns it."""
        up = self.server.running and self._healthy() if self.server is not None else self._healthy()
        self._set(up)
        return up

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> "LLMSupervisor":
        """Starts watching (the server should have been started, or tried, already)."""
        self._set(self.server.running if self.server is not None else self._healthy())
        self._thread = threading.Thread(target=self._run, name="llm-supervisor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        cfg = self.config
        backoff = cfg.backoff_initial_s
        failures = 0
        next_health = time.monotonic() + cfg.health_interval_s
        while not self._stop.wait(cfg.check_interval_s):
            if self.server is None:                      # external: report only
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + cfg.health_interval_s
                    self._set(self._healthy())
                continue
            dead = not self.server.running
            if not dead and time.monotonic() >= next_health:
                next_health = time.monotonic() + cfg.health_interval_s
                if self._healthy():
                    failures = 0
                    self._set(True)
                else:
                    failures += 1
                    dead = failures >= cfg.failures_to_restart
                    if dead:
                        log.warning("vLLM failed /health %d times in a row: restarting it", failures)
            if not dead:
                if self.up and time.monotonic() - self._up_since > cfg.stable_after_s:
                    backoff = cfg.backoff_initial_s
                continue
            proc = self.server._proc
            code = proc.poll() if proc is not None else None
            log.warning("vLLM is down (exit code %s): templates answer; restarting in %.0f s", code, backoff)
            self._set(False)
            self.server.stop(timeout_s=10)              # the whole group: engine processes too
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, cfg.backoff_max_s)
            failures = 0
            try:
                self.server.start()
            except Exception as exc:  # noqa: BLE001 - try again after the next back-off
                log.warning("vLLM restart failed: %s", str(exc).splitlines()[0] if str(exc) else repr(exc))
                continue
            if self._stop.is_set():
                self.server.stop()
                return
            self.restarts += 1
            next_health = time.monotonic() + cfg.health_interval_s
            log.warning("vLLM restarted (%d restarts so far): LLM justifications again", self.restarts)
            self._set(True)

    def stop(self) -> None:
        """Stops watching, then stops the local server (and its group)."""
        self._stop.set()
        if self.server is not None:
            self.server.stop()          # also ends a start in progress in the supervisor's thread
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.server is not None:
            self.server.stop()
        with self._lock:
            if self._down_since is not None:
                self._down_total += time.monotonic() - self._down_since
                self._down_since = None
