"""Cross-cutting concerns, in one interceptor (`ServiceInterceptor`): request id, access log +
latency metrics, scoped bearer-token auth, overload protection, and undecodable requests.
Health checks are exempt from auth and overload: a load balancer must always be able to ask.

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

import grpc

from server import metrics
from server.context import REQUEST_ID
from server.auth import ANY_SCOPE, TokenTable, required_scope
from server.errors import Overloaded, PermissionDenied, Unauthenticated, status_for
from server.service_handlers import HANDLER_FACTORIES
from store.errors import InvalidInput

log = logging.getLogger("explainrec.access")
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


USER_ID: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_log_user", default="")
TOKEN_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_token_name", default="")


def _metadata(context) -> dict:
    return dict(context.invocation_metadata() or ())


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


async def _abort_with(context, exc: Exception) -> None:
    code, message = status_for(exc, REQUEST_ID.get())
    await context.abort(code, message)


def user_id_for_log(mode: str, key: bytes):
    """'hash': keyed SHA-256 (12 hex digits; the same user reads the same within one key), 'plain', 'off'."""
    if mode == "off":
        return lambda uid: ""
    if mode == "plain":
        return lambda uid: uid
    return lambda uid: hmac.new(key, uid.encode(), hashlib.sha256).hexdigest()[:12] if uid else ""


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


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Every cross-cutting concern in one wrapper per method, outermost first:

    1. request id: the caller's `x-request-id` (printable, at most 64 characters) or a made one (a
       per-process random prefix and a counter: unique, cheaper than a uuid per call), exposed to the
       call's code and log lines and sent back as trailing metadata (no extra send op; errors carry it);
    2. access log + metrics: one log line (OK calls at DEBUG, so a busy server is not slowed by its
       own log), the request counter and latency histogram, the in-flight gauge;
    3. scoped bearer-token auth (server.auth): no or an unknown token -> UNAUTHENTICATED, a token
       without the RPC's scope -> PERMISSION_DENIED; health is open;
    4. overload: beyond `limit` calls in flight, RESOURCE_EXHAUSTED instead of queueing until every
       caller times out (a stream counts for as long as it is open; health and reflection exempt);
    5. undecodable request bytes: INVALID_ARGUMENT (gRPC's own answer, UNKNOWN/INTERNAL, reads as a
       server fault).

    One interceptor, not five: each layer cost a coroutine, an async context manager and a handler
    lookup per call on the event loop. The wrapped handler of a method is built on its first call and
    reused (what varies per call, the metadata, is read from the call's context); it is rebuilt if
    gRPC hands a different inner handler for the method."""

    def __init__(self, tokens: TokenTable, limit: int, in_flight: "InFlight",
                 log_user_ids: str = "hash", hash_key: str = "") -> None:
        self.tokens, self.limit, self.in_flight = tokens, limit, in_flight
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)
        self._user = user_id_for_log(log_user_ids, hash_key.encode() if hash_key else os.urandom(16))
        self._log_users = log_user_ids != "off"
        self._handlers: dict[str, tuple] = {}

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        hit = self._handlers.get(details.method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = self._wrap(details.method, handler)
        self._handlers[details.method] = (handler, wrapped)
        return wrapped

    # -- per call ----------------------------------------------------------------------------
    def _open(self, context):
        """Request id and in-flight gauge: (the call's metadata, the REQUEST_ID token, start, peer)."""
        md = _metadata(context)
        given = _text(md.get("x-request-id", ""))
        rid = given[:64] if given and given.isprintable() else f"{self._prefix}-{next(self._counter):x}"
        token = REQUEST_ID.set(rid)
        context.set_trailing_metadata((("x-request-id", rid),))
        # read while the call is alive: an abandoned stream's generator is finalised after the call
        # is gone, and asking a finished call for its peer crashed grpc's C core (a segfault)
        peer = context.peer()
        metrics.IN_FLIGHT.inc()
        return md, token, time.perf_counter(), peer

    async def _admit(self, context, md: dict, method: str, scope: str | None, limited: bool) -> bool:
        """Auth and the overload limit (aborting the call); True when the call now counts in flight."""
        if scope is not None:
            got = _text(md.get("authorization", ""))
            token = self.tokens.authenticate(got[7:]) if got[:7].lower() == "bearer " else None
            if token is None:
                await _abort_with(context, Unauthenticated("missing or unknown bearer token in 'authorization'"))
            elif scope != ANY_SCOPE and scope not in token.scopes:
                await _abort_with(context, PermissionDenied(
                    f"token {token.name!r} lacks the {scope!r} scope that {method.rsplit('/', 1)[-1]} needs"))
            TOKEN_NAME.set(token.name)
        if not limited:
            return False
        if self.in_flight.count >= self.limit:
            await _abort_with(context, Overloaded(f"{self.in_flight.count} calls in flight (limit {self.limit}); "
                                                  "retry with back-off"))
        self.in_flight.enter()
        return True

    def _close(self, method: str, latency, ok, token, start: float, peer: str, code) -> None:
        elapsed = time.perf_counter() - start
        metrics.IN_FLIGHT.dec()
        if code is grpc.StatusCode.OK:
            ok.inc()
        else:
            if not isinstance(code, grpc.StatusCode):
                code = _code_from_int(code)
            metrics.REQUESTS.labels(method, code.name).inc()
        latency.observe(elapsed)
        level = logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s %s %.1fms request_id=%s peer=%s token=%s user=%s", method, code.name,
                    elapsed * 1e3, REQUEST_ID.get() or "-", peer, TOKEN_NAME.get() or "-",
                    self._user(USER_ID.get()) or "-")
        try:
            REQUEST_ID.reset(token)
        except ValueError:      # an abandoned stream's generator is closed later, from another context
            pass

    def _note_user(self, request) -> None:
        if self._log_users:
            uid = getattr(request, "user_id", "")
            if uid and isinstance(uid, str):
                USER_ID.set(uid)

    # -- per method ----------------------------------------------------------------------------
    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        scope = required_scope(method) if self.tokens else None
        limited = not method.startswith((HEALTH_PREFIX, REFLECTION_PREFIX))
        latency = metrics.LATENCY.labels(method)
        ok = metrics.REQUESTS.labels(method, grpc.StatusCode.OK.name)
        what = getattr(getattr(handler.request_deserializer, "__self__", None), "__name__", "request")
        streaming_in = handler.request_streaming

        def bad(item: _Undecodable) -> InvalidInput:
            return InvalidInput("request", f"the bytes are not a valid {what} message ({type(item.error).__name__})")

        async def checked(request_iterator):
            async for msg in request_iterator:
                if isinstance(msg, _Undecodable):
                    raise bad(msg)
                yield msg

        async def prepared(request, context):
            if streaming_in:
                return checked(request)
            if isinstance(request, _Undecodable):
                await _abort_with(context, bad(request))
            self._note_user(request)
            return request

        def failed(exc: BaseException, context):
            if isinstance(exc, grpc.aio.AbortError):
                return context.code() or grpc.StatusCode.UNKNOWN
            return grpc.StatusCode.CANCELLED if isinstance(exc, (GeneratorExit, asyncio.CancelledError)) \
                else grpc.StatusCode.UNKNOWN

        inner = handler.unary_unary or handler.stream_unary or handler.unary_stream or handler.stream_stream
        if handler.response_streaming and inspect.isasyncgenfunction(inner):
            async def call(request, context):
                md, token, start, peer = self._open(context)
                code, counted = grpc.StatusCode.OK, False
                try:
                    counted = await self._admit(context, md, method, scope, limited)
                    async for reply in inner(await prepared(request, context), context):
                        yield reply
                except BaseException as exc:
                    code = failed(exc, context)
                    raise
                finally:
                    if counted:
                        self.in_flight.exit()
                    self._close(method, latency, ok, token, start, peer, code)
        else:   # a unary reply, or a stream written with context.write (e.g. health Watch)
            async def call(request, context):  # type: ignore[misc]
                md, token, start, peer = self._open(context)
                code, counted = grpc.StatusCode.OK, False
                try:
                    counted = await self._admit(context, md, method, scope, limited)
                    return await inner(await prepared(request, context), context)
                except BaseException as exc:
                    code = failed(exc, context)
                    raise
                finally:
                    if counted:
                        self.in_flight.exit()
                    self._close(method, latency, ok, token, start, peer, code)
        factory = HANDLER_FACTORIES[(handler.request_streaming, handler.response_streaming)]
        return factory(call, request_deserializer=_guarded(handler.request_deserializer),
                       response_serializer=handler.response_serializer)


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


def _code_from_int(value) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def interceptors(tokens: TokenTable, max_concurrent_rpcs: int, in_flight: InFlight,
                 log_user_ids: str = "hash", log_hash_key: str = "") -> list[grpc.aio.ServerInterceptor]:
    """The server's interceptors: one (ServiceInterceptor) doing request ids, the access log and
    metrics, auth, the overload limit and the decode guard, in that order."""
    return [ServiceInterceptor(tokens, max_concurrent_rpcs, in_flight, log_user_ids, log_hash_key)]
