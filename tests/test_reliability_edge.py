"""At the edge of the real server on loopback: scoped tokens (every RPC x no / read / write / admin
token), TLS and mutual TLS with certificates made here, bytes that are not a request, and what
the INFO log may say."""
from __future__ import annotations

import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.explainrec.v1 import explainrec_pb2 as pb
from server.auth import METHOD_SCOPES, TokenTable, digest, required_scope
from tests.certs import make_cert

TOKENS = {"read": "r" * 20, "write": "w" * 20, "admin": "a" * 20}
SERVICE = pb.DESCRIPTOR.services_by_name["ExplainRec"]


@pytest.fixture(scope="module")
def auth_server(server_catalog, server_ranker):
    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    # one entry by hash, as a token file holds them; the others in the clear, as the env may
    spec = (f"reader read sha256:{digest(TOKENS['read']).hex()}; writer write {TOKENS['write']};"
            f" ops admin {TOKENS['admin']}")
    cfg = server_config(auth_tokens=spec)
    harness = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    yield harness
    harness.close()


def _request(name: str, user: str, item: str):
    """A request each RPC accepts past auth without changing the catalog (unknown ids: NOT_FOUND)."""
    return {
        "Recommend": pb.RecommendRequest(user_id=user, k=1),
        "StreamRecommend": pb.RecommendRequest(user_id=user, k=1),
        "Explain": pb.ExplainRequest(user_id=user, item_ids=[item]),
        "ExplainBatch": pb.ExplainBatchRequest(key="k", request=pb.ExplainRequest(user_id=user, item_ids=[item])),
        "RecordEvents": pb.RecordEventsRequest(events=[pb.Event(user_id=user, item_id="no-such-item")]),
        "SubmitFeedback": pb.SubmitFeedbackRequest(user_id=user, item_id="no-such-item",
                                                   kind=pb.FEEDBACK_KIND_CLICK),
        "GetHistory": pb.GetHistoryRequest(user_id=user) if hasattr(pb, "GetHistoryRequest") else None,
        "GetItems": pb.GetItemsRequest(item_ids=[item]) if hasattr(pb, "GetItemsRequest") else None,
        "UpsertItems": pb.UpsertItemsRequest(items=[pb.Item(id="", title="x")]),      # INVALID_ARGUMENT
        "DeleteItems": pb.DeleteItemsRequest(item_ids=["no-such-item"]),
    }[name]


def _code(channel, method, request, token: str | None) -> grpc.StatusCode:
    md = [("authorization", f"Bearer {token}")] if token else []
    path = f"/{SERVICE.full_name}/{method.name}"
    out = method.output_type._concrete_class
    try:
        if method.client_streaming:
            call = channel.stream_stream(path, request_serializer=type(request).SerializeToString,
                                         response_deserializer=out.FromString)
            list(call(iter([request]), metadata=md, timeout=60))
        elif method.server_streaming:
            call = channel.unary_stream(path, request_serializer=type(request).SerializeToString,
                                        response_deserializer=out.FromString)
            list(call(request, metadata=md, timeout=60))
        else:
            call = channel.unary_unary(path, request_serializer=type(request).SerializeToString,
                                       response_deserializer=out.FromString)
            call(request, metadata=md, timeout=60)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


def test_every_rpc_against_every_kind_of_token(auth_server, some_user, server_catalog):
    item = server_catalog.history(some_user)[-1]
    denied = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
    wrong = []
    with grpc.insecure_channel(auth_server.target) as ch:
        for method in SERVICE.methods:
            request = _request(method.name, some_user, item)
            need = required_scope(f"/{SERVICE.full_name}/{method.name}")
            for holder in (None, "bogus", "read", "write", "admin"):
                token = TOKENS.get(holder, "x" * 20 if holder else None)
                got = _code(ch, method, request, token)
                if holder in (None, "bogus"):
                    ok = got == grpc.StatusCode.UNAUTHENTICATED
                elif holder == need:
                    ok = got not in denied
                else:
                    ok = got == grpc.StatusCode.PERMISSION_DENIED
                if not ok:
                    wrong.append((method.name, holder, got.name))
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING          # open without a token
    assert not wrong, wrong
    assert set(METHOD_SCOPES) <= {m.name for m in SERVICE.methods}


def test_token_entries_are_checked_and_kept_as_hashes(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# comment\nbot read,write sha256:{digest('t' * 20).hex()}\n")
    table = TokenTable.load(f)
    assert table.authenticate("t" * 20).scopes == {"read", "write"} and table.authenticate("t" * 19) is None
    assert all(len(t.sha256) == 32 for t in table.tokens)
    for bad, field in [("bot reed tttttttttttttttttttt", "scopes"), ("bot read short", "16"),
                       ("bot read", "fields"), ("bot read sha256:abc", "hex")]:
        with pytest.raises(ValueError, match=field):
            TokenTable.load(inline=bad)


@pytest.mark.parametrize("mutual", [False, True])
def test_tls_with_a_self_signed_certificate(tmp_path, server_catalog, server_ranker, some_user, mutual):
    from server.client import ExplainRecClient
    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    ca_crt, ca_key, ca_cert, ca_k = make_cert(tmp_path, "test-ca")
    srv_crt, srv_key, _, _ = make_cert(tmp_path, "localhost", (ca_cert, ca_k))
    extra = {}
    if mutual:
        extra["tls_client_ca"] = str(ca_crt)
    cfg = server_config(tls_cert=str(srv_crt), tls_key=str(srv_key), **extra)
    harness = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    target = f"localhost:{harness.port}"
    try:
        kw = {}
        if mutual:
            cli_crt, cli_key, _, _ = make_cert(tmp_path, "client", (ca_cert, ca_k))
            kw = {"tls_cert_file": str(cli_crt), "tls_key_file": str(cli_key)}
        with ExplainRecClient(target, tls_ca_file=str(ca_crt), timeout_s=30, **kw) as c:
            assert len(c.recommend(user_id=some_user, k=2).items) == 2
        if mutual:   # TLS without a client certificate is refused
            with ExplainRecClient(target, tls_ca_file=str(ca_crt), timeout_s=5, retries=0) as c:
                with pytest.raises(grpc.RpcError) as err:
                    c.recommend(user_id=some_user, k=2)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with ExplainRecClient(target, timeout_s=5, retries=0) as c:      # plaintext to a TLS port
            with pytest.raises(grpc.RpcError):
                c.recommend(user_id=some_user, k=2)
    finally:
        harness.close()


def test_bytes_that_are_not_a_request_get_invalid_argument(template_server):
    import random
    rng = random.Random(7)
    identity = (lambda b: b)
    codes: dict[str, int] = {}
    with grpc.insecure_channel(template_server.target) as ch:
        for method in ("Recommend", "SubmitFeedback", "ExplainBatch", "StreamRecommend"):
            m = SERVICE.methods_by_name[method]
            path = f"/{SERVICE.full_name}/{method}"
            for _ in range(15):
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
                data = b"\x0a\xff\xff\xff\xff\x0f" + data       # a length past the end: never parses
                try:
                    if m.client_streaming:
                        list(ch.stream_stream(path, request_serializer=identity)(iter([data]), timeout=30))
                    elif m.server_streaming:
                        list(ch.unary_stream(path, request_serializer=identity)(data, timeout=30))
                    else:
                        ch.unary_unary(path, request_serializer=identity)(data, timeout=30)
                    code = "OK"
                except grpc.RpcError as err:
                    code = err.code().name
                    assert code != "INVALID_ARGUMENT" or "request" in err.details()
                codes[code] = codes.get(code, 0) + 1
        health = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=identity)
        with pytest.raises(grpc.RpcError) as err:
            health(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert codes == {"INVALID_ARGUMENT": 60}


def test_info_log_has_no_catalog_text_nor_feedback_reason(template_server, server_catalog, some_user, caplog):
    from server.client import ExplainRecClient
    title_canary, reason_canary = "ZQXcanaryTitle", "ZQXcanaryReason"
    item = pb.Item(id="canary-item-1", title=f"{title_canary} digital scale", brand="ZQXbrand",
                   category="Industrial & Scientific")
    with caplog.at_level(logging.DEBUG):
        with ExplainRecClient(template_server.target, timeout_s=60) as c:
            c.upsert_items([item])
            c.explain(["canary-item-1"], user_id=some_user)
            c.recommend(query=title_canary, k=3, explain=True)
            c.submit_feedback(some_user, "canary-item-1", "rating", helpful=False, reason=reason_canary)
            with pytest.raises(grpc.RpcError):
                c.submit_feedback(some_user, "canary-item-1", "rating", reason=reason_canary)  # no helpful: refused
            c.delete_items(["canary-item-1"])
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert info, "the refused call should have an INFO access line"
    leaked = [m for m in info if title_canary in m or reason_canary in m or "ZQXbrand" in m]
    assert not leaked, leaked
    # the access lines name the user only by a hash
    access = [r.getMessage() for r in caplog.records if r.name == "explainrec.access"]
    assert access and not any(some_user in m for m in access)
    assert any("user=" in m and "user=-" not in m for m in access)
