"""The serving process: start answering health at once, load in the background, serve, and
drain in order on SIGTERM / SIGINT."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import TYPE_CHECKING

from server.lifecycle import new_server

if TYPE_CHECKING:
    from server.config import ServerConfig

log = logging.getLogger("explainrec.server")


async def run_server(config: "ServerConfig") -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)    # one line per LLM call drowns the log
    server, port, lifecycle = await new_server(config)
    if config.metrics_port >= 0:
        from server.metrics import start_metrics_server
        httpd, metrics_port = start_metrics_server(config.host, config.metrics_port)
    else:
        httpd, metrics_port = None, None
    print(json.dumps({"grpc": f"{config.host}:{port}", "metrics": metrics_port, "tls": config.tls,
                      "llm": config.llm}), flush=True)
    log.info("listening on %s:%d (health NOT_SERVING until loaded)", config.host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

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
            await lifecycle.attach(service)
            watcher = getattr(service, "model_watcher", None)
            if watcher is not None:   # SIGHUP: look at models/current now instead of at the next poll
                loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(asyncio.to_thread(watcher.check)))
            await stopping
    else:
        log.info("stopped while loading")
        rc = 0
    if httpd is not None:
        lifecycle.on_close("metrics endpoint", httpd.shutdown)
    await lifecycle.drain(server, config.grace_s)
    return rc
