"""Every RPC against a real server on port 0 (zero-shot ranker, small catalog, template justifications)."""
from __future__ import annotations

import json

import grpc
import pytest

from protos.explainrec.v1 import explainrec_pb2 as pb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(template_server):
    with template_server.client() as c:
        yield c


def _users_with_history(catalog, n: int, skip: int = 0) -> list[str]:
    out = [u for u in catalog.user_ids() if len(catalog.history(u)) >= 4]
    return out[skip:skip + n]


def test_recommend_returns_ranked_items_with_attributes_and_evidence(client, some_user, server_catalog):
    reply = client.recommend(user_id=some_user, k=7, request_id="req-abc")
    assert reply.request_id == "req-abc" == client.last_request_id
    assert [it.rank for it in reply.items] == list(range(1, 8))
    scores = [it.score for it in reply.items]
    assert scores == sorted(scores, reverse=True)
    history = set(server_catalog.history(some_user))
    assert not history & {it.item.id for it in reply.items}, "serving drops what the user already has"
    first = reply.items[0]
    assert first.item.title == server_catalog.get_item(first.item.id).title
    assert first.evidence and set(e.item_id for e in first.evidence) <= history
    assert not first.HasField("justification")


def test_each_call_keeps_its_own_request_id(client, some_user):
    """The interceptors wrap a method once and reuse it: what varies per call (the caller's
    x-request-id, or a made one) must still be each call's own."""
    given = [client.recommend(user_id=some_user, k=2, request_id=f"req-{n}").request_id for n in range(3)]
    assert given == ["req-0", "req-1", "req-2"]
    made = {client.recommend(user_id=some_user, k=2).request_id for _ in range(3)}
    assert len(made) == 3 and not made & set(given)


def test_recommend_with_templates_when_llm_is_off(client, some_user):
    reply = client.recommend(user_id=some_user, k=3, explain=True)
    assert len(reply.items) == 3, "a loop over an empty reply proves nothing"
    for it in reply.items:
        j = it.justification
        assert j.text and j.source == "template" and j.fallback_reason == "disabled" and j.template
        assert j.model == ""


def test_recommend_by_text_and_inline_history_and_filters(client, server_catalog):
    reply = client.recommend(query="soldering iron station", k=5)
    assert len(reply.items) == 5 and all(it.HasField("query_match") for it in reply.items)
    items = server_catalog.all_items()[:3]
    inline = client.recommend(history=[i.id for i in items], k=5, exclude=[reply.items[0].item.id])
    ids = [it.item.id for it in inline.items]
    assert reply.items[0].item.id not in ids and not set(ids) & {i.id for i in items}
    cat_word = items[0].category.split()[-1]
    filtered = client.recommend(history=[items[0].id], k=3, category=cat_word)
    assert filtered.items and all(cat_word.lower() in it.item.category.lower() for it in filtered.items)


def test_explain_given_items(client, some_user, server_catalog):
    recs = client.recommend(user_id=some_user, k=2)
    ids = [it.item.id for it in recs.items]
    assert len(ids) == 2
    reply = client.explain(ids, user_id=some_user)
    assert [e.item.id for e in reply.explanations] == ids
    for e in reply.explanations:
        assert e.justification.text and e.justification.source == "template"
        assert set(e.justification.evidence_ids) <= set(server_catalog.history(some_user))


def test_stream_with_templates_streams_the_final_text(client, some_user):
    """LLM off: each item's text still arrives as chunks that, joined, equal its final text."""
    messages = list(client.stream_recommend(user_id=some_user, k=3))
    assert messages and messages[0].WhichOneof("event") == "ranked"
    ranked = [it.item.id for it in messages[0].ranked.items]
    assert len(ranked) == 3
    chunks = {i: "" for i in ranked}
    finals = {}
    for m in messages[1:]:
        if m.WhichOneof("event") == "chunk":
            assert m.chunk.item_id not in finals
            chunks[m.chunk.item_id] += m.chunk.delta
        else:
            finals[m.final.item_id] = m.final.justification
    assert set(finals) == set(ranked)
    for i in ranked:
        assert finals[i].source == "template" and finals[i].text and chunks[i] == finals[i].text


def test_explain_batch_tags_results_with_keys_and_reports_errors_per_key(client, some_user, server_catalog):
    item = server_catalog.all_items()[10].id
    reqs = [(f"k{i}", pb.ExplainRequest(user_id=some_user, item_ids=[item])) for i in range(4)]
    reqs.insert(2, ("bad", pb.ExplainRequest(user_id=some_user, item_ids=["NO_SUCH_ITEM"])))
    reqs.append(("empty", pb.ExplainRequest(user_id=some_user)))
    replies = {r.key: r for r in client.explain_batch(reqs)}
    assert set(replies) == {"k0", "k1", "k2", "k3", "bad", "empty"}
    assert replies["bad"].error.code == grpc.StatusCode.NOT_FOUND.value[0] and "NO_SUCH_ITEM" in replies["bad"].error.message
    assert replies["empty"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "item_ids" in replies["empty"].error.message
    assert replies["k3"].result.explanations[0].item.id == item


def test_record_events_change_the_next_recommendations(client, server_catalog):
    user = _users_with_history(server_catalog, 1, skip=5)[0]
    before = [it.item.id for it in client.recommend(user_id=user, k=10).items]
    # three purchases from the far end of the catalog pull the user's vector elsewhere
    far = [i.id for i in server_catalog.all_items()[-40:] if i.id not in before][:3]
    assert client.record_events([(user, i) for i in far]) == 3
    after = [it.item.id for it in client.recommend(user_id=user, k=10).items]
    assert after != before and not set(far) & set(after)
    assert server_catalog.history(user, splits=("live",))[-3:] == far


def test_feedback_is_stored_before_the_call_returns(client, some_user, server_catalog):
    item = server_catalog.all_items()[3].id
    fid = client.submit_feedback(some_user, item, "rating", helpful=False, reason="too generic", request_id="r-9")
    row = [f for f in server_catalog.feedback(some_user) if f["id"] == fid][0]
    assert (row["kind"], row["helpful"], row["reason"], row["request_id"]) == ("rating", 0, "too generic", "r-9")
    assert client.submit_feedback(some_user, item, "click") > fid


def test_upserted_item_is_recommended_and_explained_at_once(client, some_user):
    new = pb.Item(id="NEW-CRYO-1", title="Liquid nitrogen cryogenic storage dewar 10 L with neck tube",
                  category="Industrial & Scientific Lab & Scientific Products Lab Supplies & Consumables",
                  brand="FrostLab", price=199.0, attributes={"capacity_l": "10"})
    assert client.upsert_items([new]) == 1
    reply = client.recommend(query="liquid nitrogen cryogenic dewar", k=5)
    assert "NEW-CRYO-1" in [it.item.id for it in reply.items]
    got = next(it for it in reply.items if it.item.id == "NEW-CRYO-1")
    assert got.item.brand == "FrostLab" and got.item.price == 199.0 and got.item.attributes["capacity_l"] == "10"
    explained = client.explain(["NEW-CRYO-1"], user_id=some_user)
    assert explained.explanations[0].justification.text
    assert client.delete_items(["NEW-CRYO-1"]) == 1
    reply = client.recommend(query="liquid nitrogen cryogenic dewar", k=5)
    assert "NEW-CRYO-1" not in [it.item.id for it in reply.items]


@pytest.mark.parametrize("call, code, field", [
    (lambda c, u: c.recommend(user_id=u, k=5000), grpc.StatusCode.INVALID_ARGUMENT, "k"),
    (lambda c, u: c.recommend(), grpc.StatusCode.INVALID_ARGUMENT, "user_id"),
    (lambda c, u: c.recommend(query="x" * 5000), grpc.StatusCode.INVALID_ARGUMENT, "query"),
    (lambda c, u: c.recommend(history=["ok", "has space"]), grpc.StatusCode.INVALID_ARGUMENT, "history[1]"),
    (lambda c, u: c.recommend(user_id="NOBODY-42"), grpc.StatusCode.NOT_FOUND, "NOBODY-42"),
    (lambda c, u: c.recommend(history=["NO_SUCH_ITEM"]), grpc.StatusCode.NOT_FOUND, "NO_SUCH_ITEM"),
    (lambda c, u: c.explain(["NO_SUCH_ITEM"], user_id=u), grpc.StatusCode.NOT_FOUND, "item_ids"),
    (lambda c, u: c.record_events([(u, "NO_SUCH_ITEM")]), grpc.StatusCode.NOT_FOUND, "events[0].item_id"),
    (lambda c, u: c.delete_items(["NO_SUCH_ITEM"]), grpc.StatusCode.NOT_FOUND, "NO_SUCH_ITEM"),
    (lambda c, u: c.upsert_items([pb.Item(id="X1", title="")]), grpc.StatusCode.INVALID_ARGUMENT, "items[0].title"),
    (lambda c, u: c.submit_feedback(u, "B00TNNWMXI", "rating"), grpc.StatusCode.INVALID_ARGUMENT, "helpful"),
    # the ranker's one validation, through the one error table
    (lambda c, u: c.recommend(user_id=u, min_price=5, max_price=1), grpc.StatusCode.INVALID_ARGUMENT, "max_price"),
    (lambda c, u: c.recommend(user_id=u, brands=[" "]), grpc.StatusCode.INVALID_ARGUMENT, "brands[0]"),
    (lambda c, u: c.explain([], user_id=u), grpc.StatusCode.INVALID_ARGUMENT, "item_ids"),
    (lambda c, u: c.explain(["B00TNNWMXI"]), grpc.StatusCode.INVALID_ARGUMENT, "user_id"),
    (lambda c, u: c.explain(["has space"], user_id=u), grpc.StatusCode.INVALID_ARGUMENT, "item_ids[0]"),
    (lambda c, u: c.explain(["B00TNNWMXI"] * 101, user_id=u), grpc.StatusCode.INVALID_ARGUMENT, "item_ids"),
    (lambda c, u: c.explain(["B00TNNWMXI"], history=["a b"]), grpc.StatusCode.INVALID_ARGUMENT, "history[0]"),
])
def test_errors_map_to_status_codes_naming_the_field(client, some_user, call, code, field):
    with pytest.raises(grpc.RpcError) as err:
        call(client, some_user)
    assert err.value.code() == code
    assert field in err.value.details()


def test_a_request_is_validated_once(client, some_user, server_catalog, monkeypatch):
    """The ranker owns the validation (core.validation): a Recommend or Explain call runs it once,
    not once in the server's conversion and again in the ranker."""
    import core.validation
    import ranker.service
    import server.convert
    calls = []
    real = core.validation.validate_query

    def counted(q, limits=core.validation.DEFAULT_LIMITS):
        calls.append(q)
        return real(q, limits)
    for module in (core.validation, ranker.service, server.convert):
        if hasattr(module, "validate_query"):
            monkeypatch.setattr(module, "validate_query", counted)
    client.recommend(user_id=some_user, k=3)
    assert len(calls) == 1
    client.explain([server_catalog.all_items()[0].id], user_id=some_user)
    assert len(calls) == 2


def test_oversize_message_is_refused(template_server, some_user):
    with template_server.client() as c, pytest.raises(grpc.RpcError) as err:
        c.recommend(user_id=some_user, query="y" * (template_server.config.max_message_bytes + 10))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_undecodable_bytes_are_invalid_argument_every_time(template_server):
    """The decode guard's wrapper is built once per method: it still answers each call."""
    with grpc.insecure_channel(template_server.target) as ch:
        raw = ch.unary_unary("/explainrec.v1.ExplainRec/Recommend")     # bytes in, bytes out
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as err:
                raw(b"\xff\xff\xff", timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "RecommendRequest" in err.value.details()


def test_reflection_lists_the_services(template_server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
    from google.protobuf.descriptor_pool import DescriptorPool
    with grpc.insecure_channel(template_server.target) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        assert {"explainrec.v1.ExplainRec", "grpc.health.v1.Health"} <= services
        desc = DescriptorPool(db).FindServiceByName("explainrec.v1.ExplainRec")
        assert "StreamRecommend" in [m.name for m in desc.methods]


def test_metrics_count_requests_latency_and_fallbacks(client, some_user):
    import httpx
    from server.metrics import start_metrics_server
    client.recommend(user_id=some_user, k=2, explain=True)
    with pytest.raises(grpc.RpcError):
        client.recommend(user_id="NOBODY-43")
    httpd, port = start_metrics_server("127.0.0.1", 0)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        httpd.shutdown()
    assert 'explainrec_requests_total{code="OK",method="/explainrec.v1.ExplainRec/Recommend"}' in text
    assert 'explainrec_requests_total{code="NOT_FOUND",method="/explainrec.v1.ExplainRec/Recommend"}' in text
    assert "explainrec_request_latency_seconds_bucket" in text
    assert 'explainrec_template_fallbacks_total{reason="disabled"}' in text


def test_query_command_prints_json(template_server, some_user, capsys):
    from server.cli import main
    assert main(["query", "--target", template_server.target, "recommend", "--user", some_user, "-k", "2",
                 "--explain"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["items"]) == 2 and out["items"][0]["justification"]["source"] == "template"
    item = out["items"][0]["item"]["id"]
    assert main(["query", "--target", template_server.target, "feedback", "--user", some_user, "--item", item,
                 "--kind", "rating", "--helpful", "yes"]) == 0
    assert json.loads(capsys.readouterr().out)["feedback_id"] > 0
    assert main(["query", "--target", template_server.target, "explain", "--user", some_user, "--items",
                 "NO_SUCH_ITEM"]) == 1
    assert json.loads(capsys.readouterr().err)["error"] == "NOT_FOUND"


def test_upsert_updates_explainer_tables_incrementally_and_delete_counts_distinct_ids(client, template_server):
    """An upsert adds the item's category and brand to the explainer's tables without rebuilding the
    co-purchase table from every event; DeleteItems with a repeated id deletes one item."""
    tables = template_server.lifecycle.service.explainer.read_model     # built at start-up
    cats, co = tables.categories, tables.co_purchases
    new = pb.Item(id="INCR-1", title="Quantum flux regulator for cryostats",
                  category="Industrial & Scientific Lab & Scientific Products Quantum Flux Devices",
                  brand="Zyxwv Quantum Works")
    assert client.upsert_items([new]) == 1
    assert tables.co_purchases is co, "the co-purchase table was rebuilt for an upsert"
    assert tables.categories is not cats and "Quantum Flux Devices" in tables.categories.name(new.category)
    assert "zyxwv quantum works" in tables.verifier._brands
    assert client.delete_items(["INCR-1", "INCR-1"]) == 1


def test_explain_batch_keeps_only_the_requests_in_flight(client, some_user, server_catalog, monkeypatch):
    """A long ExplainBatch stream must not hold every finished request's task until it ends."""
    import asyncio
    import gc
    import threading
    import time
    import weakref

    created: list[weakref.ref] = []
    real_create_task = asyncio.create_task

    def recording_create_task(coro, **kw):
        task = real_create_task(coro, **kw)
        if getattr(coro, "__qualname__", "").endswith("ExplainBatch.<locals>.one"):
            created.append(weakref.ref(task))
        return task
    monkeypatch.setattr(asyncio, "create_task", recording_create_task)
    item = server_catalog.all_items()[20].id
    done_sending = threading.Event()

    def requests():
        for i in range(8):
            yield f"k{i}", pb.ExplainRequest(user_id=some_user, item_ids=[item])
        done_sending.wait(30)        # the stream stays open while we look

    replies = client.explain_batch(requests())
    got = [next(replies) for _ in range(8)]
    assert len(got) == 8 and all(r.HasField("result") for r in got)
    time.sleep(0.5)
    gc.collect()
    alive = [r for r in created if r() is not None]
    done_sending.set()
    assert list(replies) == []
    assert len(created) == 8
    # at most the newest, which the reader still names in a local variable (it held all 8 before)
    assert len(alive) <= 1, f"{len(alive)} finished tasks still held by the open stream"
