"""The one table that maps domain errors to gRPC status codes, and the helpers that apply it.

Every error that leaves the service goes through `status_for`: the servicer's handlers, the
per-key errors of ExplainBatch and the auth / overload interceptors all use it, so a given
failure always reads the same to a caller.
"""
from __future__ import annotations

import functools
import inspect
import logging

import grpc

from core.errors import InvalidInput, UnknownItem, UnknownUser
from server.batcher import DeadlineExceeded
from server.context import current_request_id

log = logging.getLogger("explainrec.server")


class Overloaded(Exception):
    """Too many calls in flight; the caller should back off and retry."""


class NotReady(Exception):
    """The ranker / explainer are still loading, or the server is draining."""


class Unauthenticated(Exception):
    """Missing or wrong bearer token."""


class PermissionDenied(Exception):
    """A known token without the scope the RPC needs."""


# Checked in order; the first matching class wins. Anything else is INTERNAL.
ERROR_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownUser, grpc.StatusCode.NOT_FOUND),
    (UnknownItem, grpc.StatusCode.NOT_FOUND),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def status_for(exc: BaseException, request_id: str = "") -> tuple[grpc.StatusCode, str]:
    """(code, message) for `exc`. Unexpected errors are logged with the request id and their
    details stay in the log: the caller only learns the request id to quote."""
    for cls, code in ERROR_TABLE:
        if isinstance(exc, cls):
            return code, str(exc)
    log.error("internal error in request %s", request_id or "-", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {request_id or '-'})"


def translate_errors(method):
    """Decorates a servicer method (coroutine or async generator) so that domain errors end the
    call with the status from ERROR_TABLE. Aborts and cancellations pass through."""
    async def fail(context, exc):
        code, message = status_for(exc, current_request_id())
        await context.abort(code, message)

    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def gen_wrapper(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:  # noqa: BLE001 - the table decides
                await fail(context, exc)
        return gen_wrapper

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the table decides
            await fail(context, exc)
    return wrapper
