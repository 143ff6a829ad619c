"""Per-call context shared by the interceptors, the servicer and the log lines: the request id."""
from __future__ import annotations

import contextvars

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("explainrec_request_id", default="")


def current_request_id() -> str:
    return REQUEST_ID.get()
