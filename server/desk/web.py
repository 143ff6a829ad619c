"""The support-agent web page: FastAPI routes over `Gateway` (the gRPC service), served by uvicorn.

    GET  /                      the page (static HTML/JS/CSS shipped in the package, no CDN)
    GET  /api/history           a shopper's history, newest first
    GET  /api/search            how a search text is understood (filters, the "like" item)
    GET  /api/stream            server-sent events: filters, ranked, chunk..., final..., done (or error)
    POST /api/feedback          SubmitFeedback; answers the stored feedback id

Auth: the page sends the agent's token as a bearer header and the desk passes it on to gRPC, so
the service decides (same tokens and scopes as gRPC); the desk holds no secret of its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import time
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from server.desk.gateway import Filters, Gateway, ServiceUnreachable  # noqa: F401  (raised by start())
from server.desk.search import parse_search
from server.tls import ClientTLS

log = logging.getLogger("explainrec.desk")
STATIC = Path(__file__).parent / "static"
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
               grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
               grpc.StatusCode.DEADLINE_EXCEEDED: 504}
MAX_K = 50


class FeedbackIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    item_id: str = Field(min_length=1, max_length=128)
    kind: str = Field(pattern="^(click|purchase|dismiss|rating)$")
    helpful: bool | None = None
    reason: str = Field(default="", max_length=2000)
    request_id: str = Field(default="", max_length=128)


def _token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _rpc_error(err: grpc.aio.AioRpcError, gateway: Gateway) -> dict:
    body = {"error": err.code().name, "message": err.details() or err.code().name,
            "status": HTTP_STATUS.get(err.code(), 502)}
    reason = gateway.explain_failure(err)      # TLS set up wrong: say which setting, not just "Socket closed"
    if reason:
        body["message"] = f"the desk cannot reach the service: {reason}"
    return body


def _float(value: str | None, field: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value.strip().lstrip("$"))
    except ValueError:
        raise ValueError(f"{field}: not a number ({value[:20]!r})") from None


def _names(value: str | None) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]


async def build_filters(gw: Gateway, params: dict[str, str], token: str) -> tuple[Filters, dict | None, dict]:
    """Search text and separate fields -> Filters; separate fields win over the text. Returns the
    filters, the "like" item (or None), and how to show them: notes for the agent and which bounds
    are relative to the "like" item (cheaper / pricier / other brand)."""
    k = int(params.get("k") or 10)
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k: must be in 1..{MAX_K} (got {k})")
    parsed = parse_search(params.get("text", ""), k)
    f = parsed.filters
    f.user_id = params.get("user_id", "").strip()
    if params.get("similar_to", "").strip():
        f.similar_to = parsed.like_text = params["similar_to"].strip()
    reference = None
    if f.similar_to:
        try:
            [reference] = await gw.items([f.similar_to], token)
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise
    parsed.resolve(reference)
    relative = {"cheaper": parsed.cheaper, "pricier": parsed.pricier, "other_brand": parsed.other_brand} \
        if reference is not None else {}
    for name in ("min_price", "max_price"):
        v = _float(params.get(name), name)
        if v is not None:
            setattr(f, name, v)
    f.brands += _names(params.get("brands"))
    f.exclude_brands += _names(params.get("exclude_brands"))
    f.category = params.get("category", "").strip() or f.category
    return f, reference, {"notes": parsed.notes, "relative": relative}


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="ExplainRec support desk", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(grpc.aio.AioRpcError)
    async def rpc_error(request: Request, err: grpc.aio.AioRpcError):
        body = _rpc_error(err, gateway)
        return JSONResponse(body, status_code=body["status"])

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, err: ValueError):
        return JSONResponse({"error": "INVALID_ARGUMENT", "message": str(err), "status": 400}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/healthz")
    async def healthz():
        return {"ok": True, "grpc": gateway.target}

    @app.get("/api/history")
    async def history(request: Request, user_id: str, limit: int = 50):
        if not 1 <= limit <= 500:
            raise ValueError(f"limit: must be in 1..500 (got {limit})")
        return await gateway.history(user_id.strip(), limit, _token(request))

    @app.get("/api/search")
    async def search(request: Request):
        f, reference, shown = await build_filters(gateway, dict(request.query_params), _token(request))
        return {"filters": f.as_dict(), "reference": reference, **shown}

    @app.get("/api/stream")
    async def stream(request: Request):
        token = _token(request)
        f, reference, shown = await build_filters(gateway, dict(request.query_params), token)
        if not (f.user_id or f.query or f.similar_to):
            raise ValueError("user_id: give a shopper id, a search text or an item to match")

        async def events():
            t0 = time.perf_counter()
            yield {"event": "filters", "data": json.dumps({"filters": f.as_dict(), "reference": reference, **shown})}
            try:
                async for kind, data in gateway.stream(f, token):
                    if kind == "ranked":
                        data["elapsed_s"] = round(time.perf_counter() - t0, 3)
                    yield {"event": kind, "data": json.dumps(data)}
            except grpc.aio.AioRpcError as err:
                yield {"event": "error", "data": json.dumps(_rpc_error(err, gateway))}
                return
            yield {"event": "done", "data": json.dumps({"elapsed_s": round(time.perf_counter() - t0, 3)})}

        return EventSourceResponse(events(), ping=15)

    @app.post("/api/feedback")
    async def feedback(request: Request, body: FeedbackIn):
        fid = await gateway.feedback(body.user_id, body.item_id, body.kind, body.helpful, body.reason,
                                     body.request_id, _token(request))
        return {"feedback_id": fid, "recorded": True}

    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that handles its own signals (the gRPC service's drain)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class DeskServer:
    """The page on host:port (0 picks a free one), over a gRPC target, plaintext or with `tls` (the
    CLI client's options). `await start()` checks the connection first and raises
    ServiceUnreachable when TLS is set up wrong; `await stop()`."""

    def __init__(self, grpc_target: str, host: str = "127.0.0.1", port: int = 8080, tls: ClientTLS | None = None):
        self.gateway = Gateway(grpc_target, tls)
        self.app = create_app(self.gateway)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        # open event streams end when their gRPC call does; 5 s bounds the wait at shutdown
        self._server = _EmbeddedServer(uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                                      access_log=False, timeout_graceful_shutdown=5))
        self._task = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        try:
            status = await self.gateway.probe()
        except BaseException:
            self._sock.close()
            await self.gateway.close()
            raise
        if not status:
            log.warning("support desk: gRPC %s does not answer yet; the page will report it until it does",
                        self.gateway.target)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)
        log.info("support desk on %s (gRPC %s, %s)", self.url, self.gateway.target,
                 "TLS" if self.gateway.tls.enabled else "plaintext")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        await self.gateway.close()
        self._sock.close()


async def run_desk(grpc_target: str, host: str, port: int, tls: ClientTLS | None = None) -> Any:
    """`explainrec desk`: the page alone, until SIGTERM / SIGINT."""
    desk = DeskServer(grpc_target, host, port, tls)
    await desk.start()
    print(json.dumps({"desk": desk.url, "grpc": grpc_target}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await desk.stop()
    return 0
