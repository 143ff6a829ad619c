"""Several serving processes on one port: `explainrec serve --workers N`.

One Python process serves with one GIL: its event loop, gRPC's per-call machinery and the ranking
threads take turns on one core. N worker processes each run the whole service (`server.run`: its
own gRPC server, ranker, explainer tables and caches) and listen on the same port with
SO_REUSEPORT, so the kernel spreads new connections over them.

This parent process owns what must exist once:
- the port: held by a bound (not listening) SO_REUSEPORT socket, so port 0 picks one port for all
  and a restarted worker gets the same one;
- the LLM: ONE local vLLM (or the watch of an external one), that every worker calls by URL;
- the /metrics endpoint: the workers' metrics, aggregated (prometheus_client's multiprocess mode:
  counters and histograms summed over workers, the in-flight gauge summed over live workers, the
  event-loop lag p99 the worst worker's), plus the LLM's state;
- the support-desk page, which calls the service on the port like any client.

Start-up: worker 0 starts alone and does what writes to the workdir once (ingest, training when no
model exists), answering NOT_SERVING meanwhile, while this process starts the LLM; worker 0 serves
once it is loaded AND the LLM's start has ended (up, or failed: then templates answer while it is
retried), as one `serve` process does with its own vLLM, so no reply says `llm_unavailable` because
the LLM was still starting. The workers hear of the end on their stdin (`Worker.llm_is_settled`).
The others start when worker 0 is loaded, load (meanwhile the LLM may finish starting), and only
then bind the port, once the LLM's start has ended too, so the kernel never hands a connection to
a worker that cannot serve it yet. Catalog changes
made through one worker reach the others through the store's change notices
(`store.db`: PostgreSQL NOTIFY, or a polled `notices` table on SQLite), and each worker watches
`models/current` for hot swaps itself; SIGHUP is passed on to every worker.

SIGTERM / SIGINT: every worker drains (the same order as one process: stop accepting, finish calls,
close), then the LLM stops. A worker that dies is started again; each worker gets SIGTERM if this
process dies, even by SIGKILL (the death signal of `explainer.vllm_server.with_death_signal`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from server.config import ServerConfig

log = logging.getLogger("explainrec.workers")
ROOT = Path(__file__).resolve().parents[1]
RESTART_DELAY_S = 1.0
MAX_QUICK_FAILURES = 5          # a worker that dies this many times in a row within QUICK_S: give up
QUICK_S = 30.0


def worker_count(requested: int) -> int:
    """`workers` as configured; 0 means one per CPU core this process may run on."""
    return requested if requested > 0 else len(os.sched_getaffinity(0))


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, never listening SO_REUSEPORT socket: it holds the port for the workers (which bind it
    with SO_REUSEPORT too) without receiving connections (the kernel hands those to listeners only)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]") or "0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    return sock


class Worker:
    """One serving process: `python -m server.workers`, its settings on stdin."""

    def __init__(self, index: int, config: "ServerConfig", env: dict[str, str], bind_after_load: bool,
                 cpus: set[int] | None = None):
        self.index, self.config, self.env, self.bind_after_load = index, config, env, bind_after_load
        self.cpus = cpus              # the CPUs it runs on (server/cpu_placement.py), None: any
        self.proc: asyncio.subprocess.Process | None = None
        self.bound = asyncio.Event()
        self.loaded = asyncio.Event()         # loaded, maybe still waiting for the LLM
        self.serving = asyncio.Event()
        self.started_at = 0.0
        self._reader: asyncio.Task | None = None

    async def start(self, llm_settled: Callable[[], bool]) -> None:
        """llm_settled(): whether the shared LLM's start has ended (up or failed) by the time the settings
        are written; if not, the worker waits for `llm_is_settled()` before it serves."""
        from explainer.vllm_server import with_death_signal
        cmd = [sys.executable, "-m", "server.workers"]
        if sys.platform == "linux":
            cmd = with_death_signal(cmd)     # the loop runs in the main thread: the signal's owner lives on
        self.bound.clear()
        self.loaded.clear()
        self.serving.clear()
        self.started_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=self.env, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE)
        settled = llm_settled()
        settings = {"config": _as_dict(self.config), "index": self.index, "bind_after_load": self.bind_after_load,
                    "log_level": logging.getLogger().getEffectiveLevel(), "llm_settled": settled,
                    "cpus": sorted(self.cpus) if self.cpus else None}
        self.proc.stdin.write(json.dumps(settings).encode() + b"\n")
        await self.proc.stdin.drain()
        if settled or llm_settled():     # else the pipe stays open for the line `llm_is_settled` writes
            self.proc.stdin.close()
        self._reader = asyncio.ensure_future(self._read())
        log.info("worker %d started (pid %d)", self.index, self.proc.pid)

    async def _read(self) -> None:
        """The worker's stdout: its address line once bound, {"loaded": true} once loaded, then
        {"serving": true} once it serves."""
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("grpc"):
                self.bound.set()
            if isinstance(msg, dict) and msg.get("loaded"):
                self.loaded.set()
            if isinstance(msg, dict) and msg.get("serving"):
                self.loaded.set()
                self.serving.set()

    def llm_is_settled(self) -> None:
        """The shared LLM is up, or failed to start: a worker waiting for it may serve now."""
        stdin = self.proc.stdin if self.proc is not None else None
        if stdin is None or stdin.is_closing():
            return
        try:
            stdin.write(b'{"llm_settled": true}\n')
            stdin.close()
        except (BrokenPipeError, ConnectionResetError):   # the worker is gone; its restart is told at start
            pass

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        assert self.proc is not None
        rc = await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return rc


def _as_dict(config: "ServerConfig") -> dict:
    return {f.name: (str(v) if hasattr(v, "value") else v)
            for f in dataclasses.fields(config) for v in [getattr(config, f.name)]}


class SharedLLM:
    """The one LLM of all workers: a local vLLM this process starts and supervises, or the watch of an
    external URL (for the metrics only: each worker watches it for its own health entry)."""

    def __init__(self, config: "ServerConfig"):
        self.config = config
        self.local = None
        self.supervisor = None
        self.url = config.vllm_url
        self.model = ""
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        if config.llm == "local":
            from explainer.config import ExplainerConfig
            from explainer.vllm_server import LocalVLLMServer
            workdir = config.resolved_workdir()
            self.local = LocalVLLMServer(ExplainerConfig.from_env(workdir=workdir))
            self.url, self.model = self.local.reserve_url(), self.local.model_name

    def start(self) -> None:
        """Blocking (a thread): prepares the model once and starts vLLM; failures leave templates on."""
        from explainer.vllm_supervisor import LLMSupervisor
        if self.config.llm == "off":
            return
        if self.local is not None:
            try:
                self.local.start()          # prepares the model directory first when it is missing
            except Exception:  # noqa: BLE001 - templates answer while the supervisor retries
                if self._stopping.is_set():
                    return                  # stop() ended the start: nothing to retry
                log.exception("the shared vLLM did not start: templates answer while it is retried")
            supervisor = LLMSupervisor(self.local)
        else:
            supervisor = LLMSupervisor(url=self.url)
        with self._lock:                    # a stop() meanwhile: no supervisor to outlive it
            if not self._stopping.is_set():
                self.supervisor = supervisor.start()

    def stop(self) -> None:
        """Also ends a start in progress (SIGTERM while vLLM loads): call it before waiting for start(),
        and once more after, for a vLLM that a start still in its model preparation launched meanwhile."""
        with self._lock:
            self._stopping.set()
        if self.supervisor is not None:
            self.supervisor.stop()
        elif self.local is not None:
            self.local.stop()


def _metrics_server(host: str, port: int, multiproc_dir: str, llm: SharedLLM):
    """/metrics of all workers (prometheus_client multiprocess mode) and the shared LLM's state."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from server.metrics import LLMCollector
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    collector = LLMCollector()
    registry.register(collector)
    httpd, _thread = start_http_server(port, addr=host, registry=registry)
    return httpd, httpd.server_port, collector


async def run_workers(config: "ServerConfig") -> int:
    """The parent of `worker_count(config.workers)` serving processes (module docstring)."""
    from prometheus_client import multiprocess

    from server.desk.gateway import ServiceUnreachable
    from server.run import start_desk
    n = worker_count(config.workers)
    logging.getLogger("httpx").setLevel(logging.WARNING)    # the LLM watch's probe every 2 s drowns the log
    try:
        reserved = reserve_port(config.host, config.port)
    except OSError as exc:
        log.error("could not bind %s:%d: %s", config.host, config.port, exc)
        return 1
    port = reserved.getsockname()[1]
    multiproc_dir = tempfile.mkdtemp(prefix="explainrec-metrics-")
    llm = SharedLLM(config)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=multiproc_dir)
    if llm.model:
        env["EXPLAINREC_LLM_MODEL"] = llm.model         # the name vLLM serves, as the local mode passes it
        env["EXPLAINREC_LLM_WORKDIR"] = str(config.resolved_workdir())
    # each worker's batches in flight: the cores shared out (resolved here, where the worker count is known)
    child = dataclasses.replace(config, port=port, metrics_port=-1, http_port=-1, workers=1,
                                batch_in_flight=config.batches_in_flight(),
                                llm="url" if llm.url else "off", vllm_url=llm.url)
    httpd = collector = None
    metrics_port = None
    if config.metrics_port >= 0:
        httpd, metrics_port, collector = _metrics_server(config.host, config.metrics_port, multiproc_dir, llm)
    desk = None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from server.cpu_placement import worker_shares
    shares = worker_shares(n) if config.worker_cpu_affinity else None
    workers = [Worker(i, child, env, bind_after_load=i > 0, cpus=shares[i] if shares else None) for i in range(n)]
    loop.add_signal_handler(signal.SIGHUP, lambda: [w.signal(signal.SIGHUP) for w in workers])

    llm_started = asyncio.ensure_future(asyncio.to_thread(llm.start))
    if collector is not None:
        llm_started.add_done_callback(lambda _t: setattr(collector, "source", llm.supervisor))
    # up or failed: the workers serve from then on (templates while a failed LLM is retried), as one
    # process serves once its own vLLM start has ended
    llm_started.add_done_callback(lambda _t: [w.llm_is_settled() for w in workers])
    rc = 0
    try:
        await workers[0].start(llm_started.done)
        if await _first_of(workers[0].bound.wait(), workers[0].wait()) == 0 and config.http_port >= 0:
            try:         # the page calls the service on the port: worker 0 listens there now
                desk = await start_desk(config, port)
            except (ServiceUnreachable, ValueError) as exc:   # e.g. the desk's certificate is not one the service trusts
                log.error("%s", exc)
                print(f"serve: bad configuration: {exc}", file=sys.stderr, flush=True)
                return 2
        print(json.dumps({"grpc": f"{config.host}:{port}", "metrics": metrics_port, "tls": config.tls,
                          "llm": str(config.llm), "desk": desk.url if desk else None, "workers": n}), flush=True)
        # the others load once worker 0 has (what it wrote to the workdir is there), while the LLM may
        # still be starting: they bind and serve when it has
        first = await _first_of(stop.wait(), workers[0].loaded.wait(), workers[0].wait())
        if first == 2:
            log.error("worker 0 exited while loading (rc %s)", workers[0].proc.returncode)
            rc = 1
        elif first == 1:
            for w in workers[1:]:
                await w.start(llm_started.done)
            rc = await _supervise(workers, stop, multiproc_dir, _announce_serving(workers, config, port),
                                  llm_started.done)
    finally:
        await _stop_all(workers, config.grace_s)
        for w in workers:
            if w.pid is not None:
                multiprocess.mark_process_dead(w.pid, multiproc_dir)
        llm.stop()                # ends a vLLM start still in progress, instead of waiting it out
        await asyncio.gather(llm_started, return_exceptions=True)
        llm.stop()
        if desk is not None:
            await desk.stop()
        if httpd is not None:
            httpd.shutdown()
        shutil.rmtree(multiproc_dir, ignore_errors=True)
        reserved.close()
        log.info("all workers stopped")
    return rc


async def _first_of(*aws) -> int:
    """Index of the first awaitable to finish; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return next(i for i, t in enumerate(tasks) if t in done)


async def _announce_serving(workers: list[Worker], config: "ServerConfig", port: int) -> None:
    """One stdout line once every worker serves (a bench or a test loads all of them, not the first)."""
    await asyncio.gather(*(w.serving.wait() for w in workers))
    log.info("%d workers serving on %s:%d", len(workers), config.host, port)
    print(json.dumps({"serving": True, "workers": len(workers)}), flush=True)


async def _supervise(workers: list[Worker], stop: asyncio.Event, multiproc_dir: str, announce,
                     llm_settled: Callable[[], bool]) -> int:
    """Restarts a worker that exits while not stopping; gives up (rc 1) on a worker that keeps dying."""
    from prometheus_client import multiprocess
    quick_failures = [0] * len(workers)
    exits = {asyncio.ensure_future(w.wait()): w for w in workers}
    stopping = asyncio.ensure_future(stop.wait())
    announcing = asyncio.ensure_future(announce)
    try:
        while True:
            done, _ = await asyncio.wait({stopping, *exits}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                return 0
            for task in done:
                w = exits.pop(task)
                multiprocess.mark_process_dead(w.pid, multiproc_dir)
                quick = time.monotonic() - w.started_at < QUICK_S
                quick_failures[w.index] = quick_failures[w.index] + 1 if quick else 0
                log.error("worker %d (pid %s) exited with rc %s", w.index, w.pid, task.result())
                if quick_failures[w.index] >= MAX_QUICK_FAILURES:
                    log.error("worker %d keeps dying: stopping the service", w.index)
                    return 1
                await asyncio.sleep(RESTART_DELAY_S)
                if stop.is_set():
                    return 0
                w.bind_after_load = True
                await w.start(llm_settled)
                exits[asyncio.ensure_future(w.wait())] = w
    finally:
        stopping.cancel()
        announcing.cancel()
        for t in exits:
            t.cancel()


async def _stop_all(workers: list[Worker], grace_s: float) -> None:
    """SIGTERM to every worker (each drains), then SIGKILL to any still there after the grace period."""
    live = [w for w in workers if w.proc is not None and w.proc.returncode is None]
    for w in live:
        w.signal(signal.SIGTERM)
    if not live:
        return
    waits = [asyncio.ensure_future(w.wait()) for w in live]
    _done, pending = await asyncio.wait(waits, timeout=grace_s + 30)
    for w, t in zip(live, waits):
        if t in pending:
            log.warning("worker %d did not drain in time: killing it", w.index)
            w.signal(signal.SIGKILL)
    if pending:
        await asyncio.wait(pending, timeout=30)


def worker_main() -> int:
    """A worker: the settings on stdin, then the same serving process as `explainrec serve`."""
    from server.config import ServerConfig
    from server.run import run_server
    settings = json.loads(sys.stdin.readline())
    index = settings["index"]
    logging.basicConfig(level=settings.get("log_level", logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s[w%(worker)s]: %(message)s")
    old_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = old_factory(*args, **kwargs)
        record.worker = index
        return record
    logging.setLogRecordFactory(factory)
    config = ServerConfig(**settings["config"])
    if settings.get("cpus"):
        from server.cpu_placement import pin_this_process
        if pin_this_process(set(settings["cpus"])):
            log.info("worker %d runs on CPU %s", index, ",".join(map(str, settings["cpus"])))
    wait_llm = None if settings.get("llm_settled", True) else _parent_says_llm_settled
    return asyncio.run(run_server(config, worker=True, bind_after_load=settings["bind_after_load"],
                                  before_serving=wait_llm))


async def _parent_says_llm_settled() -> None:
    """Returns when the parent writes its `llm_settled` line (or closes the pipe: then it is gone, and
    this worker's death signal follows)."""
    import threading
    log.info("loaded: waiting for the shared LLM to start before serving")
    loop = asyncio.get_running_loop()
    said: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        line = sys.stdin.readline()
        try:
            loop.call_soon_threadsafe(lambda: said.done() or said.set_result(line))
        except RuntimeError:        # the loop is closed: the worker stopped while waiting
            pass
    # a daemon thread, not to_thread: a worker stopped while waiting must not wait on this read to exit
    threading.Thread(target=read, name="explainrec-wait-llm", daemon=True).start()
    line = await said
    log.info("the shared LLM %s: serving", "started or failed" if line.strip() else "pipe closed")


if __name__ == "__main__":
    sys.exit(worker_main())
