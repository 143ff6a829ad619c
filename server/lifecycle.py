"""Building the gRPC server and running its life: loading -> serving -> draining -> closed.

`build_server(config, lifecycle)` is the factory: it returns `(server, port)` with the
servicer, health and reflection registered and the port bound (0 picks a free one), not yet
started. Health says NOT_SERVING until `lifecycle.attach(service)`, and again from the moment
`lifecycle.drain()` begins. The drain runs in order: stop accepting, let in-flight calls finish
(up to the grace period), close the LLM client, stop the local vLLM, close the store.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from protos.explainrec.v1 import explainrec_pb2
from server.interceptors import InFlight, interceptors
from server.service_handlers import add_servicer
from server.servicer import ExplainRecServicer

if TYPE_CHECKING:
    from server.app import RecService
    from server.config import ServerConfig

log = logging.getLogger("explainrec.server")
SERVICE = explainrec_pb2.DESCRIPTOR.services_by_name["ExplainRec"]
SERVICE_NAME = SERVICE.full_name
# The LLM's own health entry: SERVING while LLM justifications are possible. The main service stays
# SERVING without it (the templates answer), so a load balancer never drops a replica for it.
LLM_SERVICE_NAME = "explainrec.v1.LLM"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Lifecycle:
    """What the servicer and the health service share: the loaded service (or None) and the
    resources to release, in order, when the server drains."""

    def __init__(self) -> None:
        self.health = health.aio.HealthServicer()
        self.service: "RecService | None" = None
        self.draining = False
        # set when a stop arrives: work still loading in a thread (the first start's training) ends early
        self.stopping = threading.Event()
        self.in_flight = InFlight()
        # run after the service's own aclose(), in this order (e.g. stop vLLM, close the catalog)
        self.closers: list[tuple[str, Callable[[], object]]] = []
        # reads the LLM's health now (the LLM supervisor's check_now), None without an LLM
        self.check_llm: Callable[[], object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def set_status(self, status) -> None:
        self._loop = asyncio.get_running_loop()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        if status == NOT_SERVING:
            await self.health.set(LLM_SERVICE_NAME, NOT_SERVING)

    def llm_state_changed(self, up: bool) -> None:
        """The LLM supervisor's callback (any thread): the LLM's health entry follows it."""
        if self._loop is None or self.draining:
            return
        status = SERVING if up else NOT_SERVING
        try:
            asyncio.run_coroutine_threadsafe(self.health.set(LLM_SERVICE_NAME, status), self._loop)
        except RuntimeError:      # the loop is closed: the server is gone
            pass

    async def attach(self, service: "RecService") -> None:
        self.service = service
        if not self.draining:
            await self.set_status(SERVING)
            log.info("serving")

    def on_close(self, name: str, fn: Callable[[], object]) -> None:
        self.closers.append((name, fn))

    async def drain(self, server: grpc.aio.Server | None, grace_s: float) -> None:
        """server None: stopped before it was bound (a worker that binds after loading)."""
        if self.draining:
            return
        self.draining = True
        await self.set_status(NOT_SERVING)
        log.info("draining: no new calls, up to %.0f s for %d in flight", grace_s, self.in_flight.count)
        if server is not None:
            stopping = asyncio.ensure_future(server.stop(grace_s))
            try:   # the service's calls finish; health Watch streams would hold the grace period to its end
                await asyncio.wait_for(self.in_flight.wait_idle(), grace_s)
            except asyncio.TimeoutError:
                log.warning("drain: %d calls still in flight after %.0f s; cancelling them",
                            self.in_flight.count, grace_s)
            await server.stop(0)
            await stopping
        if self.service is not None:
            try:
                await self.service.aclose()
            except Exception:  # noqa: BLE001 - keep closing the rest
                log.exception("closing the explainer failed")
            self.service = None
        for name, fn in self.closers:
            log.info("closing %s", name)
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # noqa: BLE001
                log.exception("closing %s failed", name)
        log.info("drained")


def grpc_options(config: "ServerConfig", share_port: bool = False) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # a second server on the same port must fail, not share it; except the workers of one
        # `serve --workers N`, whose parent holds the port (server.workers)
        ("grpc.so_reuseport", int(share_port)),
    ]


def build_server(config: "ServerConfig", lifecycle: Lifecycle, share_port: bool = False
                 ) -> tuple[grpc.aio.Server, int]:
    """The factory: a configured, bound, not yet started server and its port."""
    server = grpc.aio.server(interceptors=interceptors(config.token_table(), config.max_concurrent_rpcs,
                                                      lifecycle.in_flight, config.log_user_ids, config.log_hash_key),
                             options=grpc_options(config, share_port))
    # not the generated add_ExplainRecServicer_to_server: Recommend may reply with bytes (server.reply_bytes)
    add_servicer(ExplainRecServicer(lifecycle, config), SERVICE, server)
    health_pb2_grpc.add_HealthServicer_to_server(lifecycle.health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls:
        with open(config.tls_key, "rb") as k, open(config.tls_cert, "rb") as c:
            pair = [(k.read(), c.read())]
        if config.tls_client_ca:        # mutual TLS: only clients with a certificate from this CA
            with open(config.tls_client_ca, "rb") as ca:
                creds = grpc.ssl_server_credentials(pair, root_certificates=ca.read(), require_client_auth=True)
        else:
            creds = grpc.ssl_server_credentials(pair)
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return server, port


async def new_server(config: "ServerConfig") -> tuple[grpc.aio.Server, int, Lifecycle]:
    """Builds and starts a server that reports NOT_SERVING until a service is attached."""
    lifecycle = Lifecycle()
    await lifecycle.set_status(NOT_SERVING)
    server, port = build_server(config, lifecycle)
    await server.start()
    return server, port, lifecycle
