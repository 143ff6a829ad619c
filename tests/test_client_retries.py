"""The client retries on UNAVAILABLE only the calls that are safe to replay (DeleteItems is not:
a replay of an applied delete reports NOT_FOUND). A server that has no
service attached yet (still loading) answers every call UNAVAILABLE; the server's request counter
says how many attempts reached it."""
from __future__ import annotations

import time

import grpc
import pytest
from prometheus_client import REGISTRY

from tests.fixtures_server import ServerHarness, server_config

pytestmark = pytest.mark.slow


def _attempts(method: str) -> float:
    """The server counts a call after its reply is sent: wait until the count stops moving."""
    def read() -> float:
        return REGISTRY.get_sample_value("explainrec_requests_total", {
            "method": f"/explainrec.v1.ExplainRec/{method}", "code": "UNAVAILABLE"}) or 0.0
    value = read()
    while True:
        time.sleep(0.3)
        if (now := read()) == value:
            return value
        value = now


@pytest.fixture(scope="module")
def loading_server():
    h = ServerHarness(server_config())     # nothing attached: every call is UNAVAILABLE
    yield h
    h.close()


@pytest.mark.parametrize("method, call, retried", [
    ("Recommend", lambda c: c.recommend(user_id="u1", k=2), True),
    ("RecordEvents", lambda c: c.record_events([("u1", "i1")]), True),    # replay deduplicated by the store
    ("SubmitFeedback", lambda c: c.submit_feedback("u1", "i1", "click"), True),   # idempotency key
    ("DeleteItems", lambda c: c.delete_items(["i1", "i2"]), False),
])
def test_non_idempotent_calls_are_not_replayed(loading_server, method, call, retried):
    before = _attempts(method)
    with loading_server.client(retries=2, backoff_s=0.01, timeout_s=20) as c, pytest.raises(grpc.RpcError) as err:
        call(c)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _attempts(method) - before == (3 if retried else 1)
