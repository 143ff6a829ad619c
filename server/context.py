"""Per-call context shared by the interceptors, the servicer and the log lines: the request id, and
the ranker version that served the call (set by RecService, read by the servicer for model_version)."""
from __future__ import annotations

import contextvars

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_request_id", default="")


def current_request_id() -> str:
    return REQUEST_ID.get()


MODEL_VERSION: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_model_version", default="")


def current_model_version() -> str:
    return MODEL_VERSION.get()
