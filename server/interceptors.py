"""Cross-cutting concerns, one interceptor each: request id, access log + latency metrics,
scoped bearer-token auth, overload protection, and undecodable requests.

Each wraps the method handler's behaviour (unary or streaming) in an async context manager, so
the same code covers all four call shapes. Health checks are exempt from auth and overload:
a load balancer must always be able to ask.

Access log lines never carry request content: the method, the code, the latency, the request
id, the peer, the token's name and (per `log_user_ids`) the user id, hashed by default.
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
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
from server.auth import ANY_SCOPE, TokenTable, required_scope
from server.errors import Overloaded, PermissionDenied, Unauthenticated, status_for
from store.errors import InvalidInput

log = logging.getLogger("explainrec.access")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


USER_ID: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_log_user", default="")
TOKEN_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_token_name", default="")


async def _as_is(request, context):
    return request


@asynccontextmanager
async def _nothing(context):
    yield


def _wrap(handler: grpc.RpcMethodHandler, around, prepare=_as_is,
          request_deserializer=None) -> grpc.RpcMethodHandler:
    """A handler whose behaviour runs inside `around(context)` (an async context manager; None: no
    wrapper), on the request as `await prepare(request, context)` returns it (the request iterator
    of a stream)."""
    if handler is None:
        return None
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary
        # every layer costs a coroutine per call on the event loop: add only the ones that do something
        if around is None and prepare is _as_is:
            call = inner
        elif around is None:
            async def call(request, context):
                return await inner(await prepare(request, context), context)
        elif prepare is _as_is:
            async def call(request, context):
                async with around(context):
                    return await inner(request, context)
        else:
            async def call(request, context):
                async with around(context):
                    return await inner(await prepare(request, context), context)
    else:
        around = around or _nothing
        inner = handler.unary_stream or handler.stream_stream
        if inspect.isasyncgenfunction(inner):
            async def call(request, context):
                async with around(context):
                    async for reply in inner(await prepare(request, context), context):
                        yield reply
        else:   # a coroutine that writes with context.write (e.g. health Watch)
            async def call(request, context):
                async with around(context):
                    return await inner(await prepare(request, context), context)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(call, request_deserializer=request_deserializer or handler.request_deserializer,
                   response_serializer=handler.response_serializer)


class _PerMethod:
    """The wrapped handler of each method, built on its first call and reused after: wrapping builds
    a new handler object and closures, which cost more per call than the interceptor's own work.
    Valid because every wrapper reads what varies per call (metadata) from the call's context and
    the inner handler of a method is the same object call after call (checked)."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple] = {}

    def get(self, method: str, inner):
        hit = self._handlers.get(method)
        return hit[1] if hit is not None and hit[0] is inner else None

    def put(self, method: str, inner, wrapped):
        self._handlers[method] = (inner, wrapped)
        return wrapped


def _metadata(context, key: str) -> str:
    value = dict(context.invocation_metadata() or ()).get(key, "")
    return value.decode("latin-1") if isinstance(value, bytes) else value


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
        self._wrapped = _PerMethod()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        return self._wrapped.get(details.method, handler) or \
            self._wrapped.put(details.method, handler, _wrap(handler, self._around))

    @asynccontextmanager
    async def _around(self, context):
        given = _metadata(context, "x-request-id")
        rid = given[:64] if given and given.isprintable() else f"{self._prefix}-{next(self._counter):x}"
        token = REQUEST_ID.set(rid)
        try:
            # trailing, not initial: no extra send op per call, and errors carry it too
            context.set_trailing_metadata((("x-request-id", rid),))
            yield
        finally:
            try:
                REQUEST_ID.reset(token)
            except ValueError:      # an abandoned stream's generator is closed later, from another context
                pass


def user_id_for_log(mode: str, key: bytes):
    """'hash': keyed SHA-256 (12 hex digits; the same user reads the same within one key), 'plain', 'off'."""
    if mode == "off":
        return lambda uid: ""
    if mode == "plain":
        return lambda uid: uid
    return lambda uid: hmac.new(key, uid.encode(), hashlib.sha256).hexdigest()[:12] if uid else ""


class AccessLogInterceptor(grpc.aio.ServerInterceptor):
    """One log line and the request / latency metrics per call. OK calls log at DEBUG so a
    busy server is not slowed by its own log."""

    def __init__(self, log_user_ids: str = "hash", hash_key: str = "") -> None:
        self._latency: dict = {}
        self._user = user_id_for_log(log_user_ids, hash_key.encode() if hash_key else os.urandom(16))
        self._log_users = log_user_ids != "off"
        self._wrapped = _PerMethod()

    async def _note_user(self, request, context):
        if self._log_users:
            uid = getattr(request, "user_id", "")
            if uid and isinstance(uid, str):
                USER_ID.set(uid)
        return request

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        wrapped = self._wrapped.get(method, handler)
        if wrapped is not None:
            return wrapped
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = metrics.LATENCY.labels(method)

        @asynccontextmanager
        async def around(context):
            start = time.perf_counter()
            # read while the call is alive: an abandoned stream's generator is finalised after the call
            # is gone, and asking a finished call for its peer crashed grpc's C core (a segfault)
            peer = context.peer()
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
                    log.log(level, "%s %s %.1fms request_id=%s peer=%s token=%s user=%s", method, code.name,
                            elapsed * 1e3, REQUEST_ID.get() or "-", peer, TOKEN_NAME.get() or "-",
                            self._user(USER_ID.get()) or "-")
        return self._wrapped.put(method, handler, _wrap(handler, around, self._note_user))


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Scoped bearer tokens (server.auth): no or an unknown token -> UNAUTHENTICATED; a known token
    without the RPC's scope -> PERMISSION_DENIED. Health is open."""

    def __init__(self, tokens: TokenTable):
        self.tokens = tokens

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        scope = required_scope(details.method)
        if scope is None:
            return handler
        got = dict(details.invocation_metadata or ()).get("authorization", "")
        if isinstance(got, bytes):
            got = got.decode("latin-1")
        token = self.tokens.authenticate(got[7:]) if got[:7].lower() == "bearer " else None
        if token is None:
            error: Exception = Unauthenticated("missing or unknown bearer token in 'authorization'")
        elif scope != ANY_SCOPE and scope not in token.scopes:
            error = PermissionDenied(f"token {token.name!r} lacks the {scope!r} scope that "
                                     f"{details.method.rsplit('/', 1)[-1]} needs")
        else:
            name = token.name

            @asynccontextmanager
            async def note(context):
                TOKEN_NAME.set(name)
                yield
            return _wrap(handler, note)

        @asynccontextmanager
        async def around(context):
            await _abort_with(context, error)
            yield
        return _wrap(handler, around)


class _Undecodable:
    """What the guarded deserializer returns for bytes that are not the request message."""
    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error


def _guarded(deserializer):
    if deserializer is None:
        return None

    def decode(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
            return _Undecodable(exc)
    return decode


class DecodeGuardInterceptor(grpc.aio.ServerInterceptor):
    """Request bytes that do not parse as the method's message end the call with INVALID_ARGUMENT
    (gRPC's own answer is UNKNOWN/INTERNAL, which reads as a server fault). Innermost, so that its
    deserializer is the one every outer wrapper passes on."""

    def __init__(self) -> None:
        self._wrapped = _PerMethod()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        wrapped = self._wrapped.get(details.method, handler)
        if wrapped is not None:
            return wrapped
        what = getattr(getattr(handler.request_deserializer, "__self__", None), "__name__", "request")

        def bad(item: _Undecodable) -> InvalidInput:
            return InvalidInput("request", f"the bytes are not a valid {what} message ({type(item.error).__name__})")

        if handler.request_streaming:
            async def prepare(request_iterator, context):
                async def checked():
                    async for msg in request_iterator:
                        if isinstance(msg, _Undecodable):
                            raise bad(msg)
                        yield msg
                return checked()
        else:
            async def prepare(request, context):
                if isinstance(request, _Undecodable):
                    await _abort_with(context, bad(request))
                return request

        return self._wrapped.put(details.method, handler, _wrap(handler, None, prepare,
                                                               request_deserializer=_guarded(handler.request_deserializer)))


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
        self._wrapped = _PerMethod()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if details.method.startswith((HEALTH_PREFIX, REFLECTION_PREFIX)):
            return handler
        wrapped = self._wrapped.get(details.method, handler)
        if wrapped is not None:
            return wrapped

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
        return self._wrapped.put(details.method, handler, _wrap(handler, around))


def _cancelled():
    return asyncio.CancelledError


def _code_from_int(value) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def interceptors(tokens: TokenTable, max_concurrent_rpcs: int, in_flight: InFlight,
                 log_user_ids: str = "hash", log_hash_key: str = "") -> list[grpc.aio.ServerInterceptor]:
    """Outermost first: the request id must exist before anything logs or refuses; the decode guard
    is innermost so that its deserializer is the one gRPC uses."""
    chain: list[grpc.aio.ServerInterceptor] = [RequestIdInterceptor(), AccessLogInterceptor(log_user_ids, log_hash_key)]
    if tokens:
        chain.append(AuthInterceptor(tokens))
    chain.append(OverloadInterceptor(max_concurrent_rpcs, in_flight))
    chain.append(DecodeGuardInterceptor())
    return chain
