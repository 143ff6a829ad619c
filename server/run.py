"""The serving process: start answering health at once, load in the background, serve, and
drain in order on SIGTERM / SIGINT."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Awaitable, Callable

from server.desk.gateway import ServiceUnreachable
from server.lifecycle import NOT_SERVING, Lifecycle, build_server

if TYPE_CHECKING:
    from server.config import ServerConfig

log = logging.getLogger("explainrec.server")


async def run_server(config: "ServerConfig", worker: bool = False, bind_after_load: bool = False,
                     before_serving: Callable[[], Awaitable[None]] | None = None) -> int:
    """worker: one of several processes on the port (`server.workers`): the port is shared with
    SO_REUSEPORT and `{"loaded": true}`, then `{"serving": true}` lines tell the parent how far it is. bind_after_load:
    the port is bound only once the service is loaded (a worker joining serving ones must not be
    handed connections it cannot answer yet). before_serving: awaited once the service is loaded and
    before it answers (health stays NOT_SERVING, calls UNAVAILABLE, a bind_after_load port unbound):
    a worker waits there for the shared LLM, as one process waits for its own vLLM while loading."""
    logging.getLogger("httpx").setLevel(logging.WARNING)    # one line per LLM call drowns the log
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    lifecycle = Lifecycle()
    await lifecycle.set_status(NOT_SERVING)
    from server.loop_lag import LoopLagMonitor
    lag_monitor = LoopLagMonitor().start()      # exported on /metrics: explainrec_event_loop_lag_*
    lifecycle.on_close("event-loop lag monitor", lag_monitor.stop)
    if config.metrics_port >= 0:
        from server.metrics import start_metrics_server
        httpd, metrics_port = start_metrics_server(config.host, config.metrics_port)
    else:
        httpd, metrics_port = None, None
    server = desk = None

    async def bind() -> bool:
        """Serves on the port; False when the desk page cannot work with these settings."""
        nonlocal server, desk
        server, port = build_server(config, lifecycle, share_port=worker)
        await server.start()
        try:
            desk = await start_desk(config, port) if config.http_port >= 0 else None
        except (ServiceUnreachable, ValueError) as exc:    # e.g. the desk's certificate is not one the service trusts
            log.error("%s", exc)
            print(f"serve: bad configuration: {exc}", file=sys.stderr, flush=True)
            return False
        print(json.dumps({"grpc": f"{config.host}:{port}", "metrics": metrics_port, "tls": config.tls,
                          "llm": str(config.llm), "desk": desk.url if desk else None}), flush=True)
        log.info("listening on %s:%d%s", config.host, port, "" if lifecycle.service else
                 " (health NOT_SERVING until loaded)")
        return True

    async def refuse() -> int:
        if httpd is not None:
            lifecycle.on_close("metrics endpoint", httpd.shutdown)
        await lifecycle.drain(server, 0)
        return 2

    async def start_serving(service) -> int:
        """Health SERVING (binding the port first when it is not bound yet); 2 when binding is refused."""
        rc = 0
        if server is None:
            lifecycle.service = service       # bound already loaded: the first health answer is SERVING
            if not await bind():
                stop.set()
                rc = 2
        await lifecycle.attach(service)
        if worker and rc == 0:
            print(json.dumps({"serving": True}), flush=True)
        watcher = getattr(service, "model_watcher", None)
        if watcher is not None:   # SIGHUP: look at models/current now instead of at the next poll
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(asyncio.to_thread(watcher.check)))
        return rc

    if not bind_after_load and not await bind():
        return await refuse()
    from server.setup import build_service
    loading = asyncio.ensure_future(asyncio.to_thread(build_service, config, lifecycle))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    rc = 0
    if loading.done():
        if loading.exception() is not None:
            log.error("loading failed", exc_info=loading.exception())
            rc = 1
        else:
            service = loading.result()
            from server.gc_tuning import tune_for_serving
            tune_for_serving(config.gc_gen0_threshold)
            if worker:
                print(json.dumps({"loaded": True}), flush=True)
            if before_serving is not None and not await _done_before(before_serving(), stopping):
                log.info("stopped while waiting for the LLM")
                lifecycle.service = service     # only for the drain to close it: draining begins before any call
            else:
                if before_serving is not None and lifecycle.check_llm is not None:
                    await asyncio.to_thread(lifecycle.check_llm)   # the LLM health entry says so from the start
                rc = await start_serving(service)
                await stopping
    else:
        log.info("stopped while loading")
        lifecycle.stopping.set()      # a first start's training ends at its next batch, not in minutes
        # its outcome is not used; read it so asyncio does not report it as never retrieved
        loading.add_done_callback(lambda f: f.cancelled() or f.exception())
        rc = 0
    if httpd is not None:
        lifecycle.on_close("metrics endpoint", httpd.shutdown)
    if desk is not None:
        lifecycle.on_close("support desk page", desk.stop)
    await lifecycle.drain(server, config.grace_s)
    return rc


async def _done_before(aw: Awaitable, stopping: asyncio.Future) -> bool:
    """Waits for `aw` unless `stopping` finishes first (then False, and `aw` is cancelled)."""
    task = asyncio.ensure_future(aw)
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


async def start_desk(config: "ServerConfig", grpc_port: int):
    """The support-desk page on `http_port`, calling this very service over gRPC on loopback (so the
    page goes through the same auth, validation and pipeline as any client)."""
    from server.desk.web import DeskServer
    loopback = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    desk = DeskServer(f"{loopback}:{grpc_port}", config.host, config.http_port, tls=config.desk_tls())
    await desk.start()
    return desk
