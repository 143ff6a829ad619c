"""Health transitions, ordered drain, auth, TLS, overload, unexpected errors and durable feedback,
each on its own small real server (port 0) sharing the session's zero-shot ranker."""
from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.explainrec.v1 import explainrec_pb2 as pb
from tests.fixtures_server import ServerHarness, server_config, template_service_factory

pytestmark = pytest.mark.slow


def _watch(target: str) -> "queue.Queue[str]":
    """Health Watch in a thread; the statuses it sees arrive on the returned queue."""
    seen: queue.Queue = queue.Queue()

    def run():
        with grpc.insecure_channel(target) as ch:
            try:
                for reply in health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""),
                                                                  timeout=60):
                    seen.put(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
            except grpc.RpcError:
                seen.put("ENDED")
    threading.Thread(target=run, daemon=True).start()
    return seen


def test_health_loading_serving_draining_and_ordered_drain(server_catalog, server_ranker, some_user):
    cfg = server_config()
    h = ServerHarness(cfg)          # nothing attached yet: "loading"
    closed: list[str] = []
    h.lifecycle.on_close("local vLLM server", lambda: closed.append("vllm"))
    h.lifecycle.on_close("catalog", lambda: closed.append("catalog"))
    watch = _watch(h.target)
    c = h.client(retries=0, timeout_s=10)
    assert watch.get(timeout=10) == "NOT_SERVING" and c.health() == "NOT_SERVING"
    assert c.health("explainrec.v1.ExplainRec") == "NOT_SERVING"
    with pytest.raises(grpc.RpcError) as err:
        c.recommend(user_id=some_user)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE

    service = template_service_factory(server_catalog, server_ranker, cfg)(h.lifecycle)
    h.attach(service)
    assert watch.get(timeout=10) == "SERVING" and c.health("explainrec.v1.ExplainRec") == "SERVING"
    assert c.recommend(user_id=some_user, k=2).items

    # a call in flight (an open ExplainBatch stream) while the drain starts
    item = server_catalog.all_items()[0].id
    requests: queue.Queue = queue.Queue()
    replies = c.explain_batch(iter(requests.get, None))
    requests.put(("a", pb.ExplainRequest(user_id=some_user, item_ids=[item])))
    assert next(replies).key == "a"
    drained = h.drain(grace_s=20)
    assert watch.get(timeout=10) == "NOT_SERVING"
    with h.client(retries=0, timeout_s=5) as fresh, pytest.raises(grpc.RpcError) as err:
        fresh.recommend(user_id=some_user, k=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not drained.done() and closed == []          # still finishing the stream in flight
    requests.put(("b", pb.ExplainRequest(user_id=some_user, item_ids=[item])))
    assert next(replies).key == "b"
    requests.put(None)
    assert list(replies) == []
    drained.result(30)
    assert closed == ["vllm", "catalog"]                  # after in-flight calls, in order
    c.close()
    h.close()


def test_auth_required_when_a_token_is_configured(server_catalog, server_ranker, some_user):
    cfg = server_config(auth_token="s3cret-token")
    h = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    try:
        for kwargs in ({}, {"token": "wrong"}):
            with h.client(retries=0, **kwargs) as c:
                with pytest.raises(grpc.RpcError) as err:
                    c.recommend(user_id=some_user, k=2)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(grpc.RpcError) as err:
                    list(c.stream_recommend(user_id=some_user, k=2))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert c.health() == "SERVING"          # health is exempt
        with h.client(token="s3cret-token") as c:
            assert len(c.recommend(user_id=some_user, k=2).items) == 2
    finally:
        h.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_tls_when_a_certificate_is_configured(tmp_path, server_catalog, server_ranker, some_user):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    cfg = server_config(tls_cert=str(cert), tls_key=str(key))
    h = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    try:
        with h.client(tls_ca_file=str(cert)) as c:
            assert len(c.recommend(user_id=some_user, k=2).items) == 2
        with h.client(retries=0, timeout_s=3) as plain, pytest.raises(grpc.RpcError) as err:
            plain.recommend(user_id=some_user, k=2)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        h.close()


def test_overload_gives_resource_exhausted(server_catalog, server_ranker, some_user):
    cfg = server_config(max_concurrent_rpcs=1)
    h = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    try:
        with h.client(retries=0) as c:
            requests: queue.Queue = queue.Queue()
            replies = c.explain_batch(iter(requests.get, None))
            requests.put(("a", pb.ExplainRequest(user_id=some_user, item_ids=[server_catalog.all_items()[0].id])))
            assert next(replies).key == "a"            # the stream is in flight
            with pytest.raises(grpc.RpcError) as err:
                c.recommend(user_id=some_user, k=2)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 1" in err.value.details()
            assert c.health() == "SERVING"
            requests.put(None)
            list(replies)
            assert c.recommend(user_id=some_user, k=2).items
    finally:
        h.close()


def test_unexpected_error_is_internal_and_logged_with_the_request_id(server_catalog, some_user, caplog):
    from explainer.config import ExplainerConfig
    from explainer.service import Explainer
    from server.app import RecService
    cfg = server_config()
    broken = RecService(server_catalog, None, Explainer.from_catalog(ExplainerConfig(enabled=False), server_catalog), cfg)
    h = ServerHarness(cfg, lambda lc: broken)     # a facade without a ranker: every ranking call fails
    try:
        with caplog.at_level(logging.ERROR, logger="explainrec.server"), h.client(retries=0) as c:
            with pytest.raises(grpc.RpcError) as err:
                c.recommend(user_id=some_user, request_id="rid-500")
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "rid-500" in err.value.details() and "NoneType" not in err.value.details()
        assert any("rid-500" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        h.close()


def test_client_retries_unavailable_until_the_service_is_loaded(server_catalog, server_ranker, some_user):
    cfg = server_config()
    h = ServerHarness(cfg)
    try:
        factory = template_service_factory(server_catalog, server_ranker, cfg)
        timer = threading.Timer(0.5, lambda: h.attach(factory(h.lifecycle)))
        timer.start()
        with h.client(retries=8, backoff_s=0.1, timeout_s=30) as c:
            assert len(c.recommend(user_id=some_user, k=2).items) == 2
        timer.join()
    finally:
        h.close()


def test_feedback_survives_a_server_restart(tmp_path, small_db, server_ranker):
    from store.catalog import Catalog
    path = tmp_path / "catalog.sqlite"
    shutil.copy(small_db, path)
    ids = []
    for round_ in range(2):
        catalog = Catalog(path)
        cfg = server_config()

        def factory(lc, catalog=catalog):
            lc.on_close("catalog", catalog.close)
            return template_service_factory(catalog, server_ranker, cfg)(lc)
        h = ServerHarness(cfg, factory)
        user = catalog.user_ids()[round_]
        item = catalog.history(user)[0]
        with h.client() as c:
            ids.append(c.submit_feedback(user, item, "rating", helpful=bool(round_), reason=f"round {round_}"))
        h.close()                                   # drains and closes the catalog
    reopened = Catalog(path)
    rows = {r["id"]: r for r in reopened.feedback()}
    reopened.close()
    assert [rows[i]["reason"] for i in ids] == ["round 0", "round 1"]
    assert [rows[i]["helpful"] for i in ids] == [0, 1]
