"""Cross-cutting concerns, one interceptor each: request id, access log + latency metrics,
bearer-token auth, and overload protection.

Each wraps the method handler's behaviour (unary or streaming) in an async context manager, so
the same code covers all four call shapes. Health checks are exempt from auth and overload:
a load balancer must always be able to ask.
"""
from __future__ import annotations

import asyncio
import hmac
import inspect
import itertools
import logging
import os
import time
from contextlib import asynccontextmanager

import grpc

from server import metrics
from server.context import REQUEST_ID
from server.errors import Overloaded, Unauthenticated, status_for

log = logging.getLogger("explainrec.access")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


def _wrap(handler: grpc.RpcMethodHandler, around) -> grpc.RpcMethodHandler:
    """A handler whose behaviour runs inside `around(context)` (an async context manager)."""
    if handler is None:
        return None
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def call(request, context):
            async with around(context):
                return await inner(request, context)
    else:
        inner = handler.unary_stream or handler.stream_stream
        if inspect.isasyncgenfunction(inner):
            async def call(request, context):
                async with around(context):
                    async for reply in inner(request, context):
                        yield reply
        else:   # a coroutine that writes with context.write (e.g. health Watch)
            async def call(request, context):
                async with around(context):
                    return await inner(request, context)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(call, request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)


async def _abort_with(context, exc: Exception) -> None:
    code, message = status_for(exc, REQUEST_ID.get())
    await context.abort(code, message)


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Takes the caller's `x-request-id` (or makes one), exposes it to the call's code and log
    lines, and sends it back as trailing metadata. Made ids are a per-process random prefix and
    a counter: unique, and cheaper than a uuid per call."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        given = dict(details.invocation_metadata or ()).get("x-request-id", "")

        @asynccontextmanager
        async def around(context):
            rid = given[:64] if given and given.isprintable() else f"{self._prefix}-{next(self._counter):x}"
            token = REQUEST_ID.set(rid)
            try:
                # trailing, not initial: no extra send op per call, and errors carry it too
                context.set_trailing_metadata((("x-request-id", rid),))
                yield
            finally:
                REQUEST_ID.reset(token)
        return _wrap(handler, around)


class AccessLogInterceptor(grpc.aio.ServerInterceptor):
    """One log line and the request / latency metrics per call. OK calls log at DEBUG so a
    busy server is not slowed by its own log."""

    def __init__(self) -> None:
        self._latency: dict = {}

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = metrics.LATENCY.labels(method)

        @asynccontextmanager
        async def around(context):
            start = time.perf_counter()
            metrics.IN_FLIGHT.inc()
            code = grpc.StatusCode.OK
            try:
                yield
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except BaseException as exc:
                code = grpc.StatusCode.CANCELLED if isinstance(exc, (GeneratorExit, _cancelled())) \
                    else grpc.StatusCode.UNKNOWN
                raise
            finally:
                elapsed = time.perf_counter() - start
                metrics.IN_FLIGHT.dec()
                if not isinstance(code, grpc.StatusCode):
                    code = _code_from_int(code)
                metrics.REQUESTS.labels(method, code.name).inc()
                latency.observe(elapsed)
                level = logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO
                if log.isEnabledFor(level):
                    log.log(level, "%s %s %.1fms request_id=%s peer=%s", method, code.name, elapsed * 1e3,
                            REQUEST_ID.get() or "-", context.peer())
        return _wrap(handler, around)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """With a configured token, every call but health needs `authorization: Bearer <token>`."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if details.method.startswith(HEALTH_PREFIX):
            return handler
        got = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(got.encode() if isinstance(got, str) else got, self._expected):
            return handler

        @asynccontextmanager
        async def around(context):
            await _abort_with(context, Unauthenticated("missing or wrong bearer token in 'authorization'"))
            yield
        return _wrap(handler, around)


class InFlight:
    """Calls in flight, health and reflection excepted: the overload limit reads it, and the drain
    waits for it to reach zero (a health Watch stream never ends by itself)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def exit(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


class OverloadInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls beyond `limit` in flight with RESOURCE_EXHAUSTED instead of queueing them
    until every caller times out. A stream counts as one call for as long as it is open."""

    def __init__(self, limit: int, in_flight: InFlight):
        self.limit, self.in_flight = limit, in_flight

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if details.method.startswith((HEALTH_PREFIX, REFLECTION_PREFIX)):
            return handler

        @asynccontextmanager
        async def around(context):
            if self.in_flight.count >= self.limit:
                await _abort_with(context, Overloaded(f"{self.in_flight.count} calls in flight (limit {self.limit}); "
                                                      "retry with back-off"))
            self.in_flight.enter()
            try:
                yield
            finally:
                self.in_flight.exit()
        return _wrap(handler, around)


def _cancelled():
    return asyncio.CancelledError


def _code_from_int(value) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def interceptors(auth_token: str, max_concurrent_rpcs: int, in_flight: InFlight) -> list[grpc.aio.ServerInterceptor]:
    """Outermost first: the request id must exist before anything logs or refuses."""
    chain: list[grpc.aio.ServerInterceptor] = [RequestIdInterceptor(), AccessLogInterceptor()]
    if auth_token:
        chain.append(AuthInterceptor(auth_token))
    chain.append(OverloadInterceptor(max_concurrent_rpcs, in_flight))
    return chain
