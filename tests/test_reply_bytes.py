"""Recommend replies written as bytes in the ranking thread (server/reply_bytes.py): parsed, they equal
the message the message path builds (server.convert.add_recommended), for many users and queries
(evidence, a text query's query_match, price filters' excluded_no_price, brand and category filters),
and a client of a real server on loopback gets the same replies with bytes replies on and off."""
from __future__ import annotations

import grpc
import pytest

from explainer.pipeline import Recommendation, RecommendPipeline
from protos.explainrec.v1 import explainrec_pb2 as pb
from ranker.types import Candidate, HistoryEvidence, RankQuery
from server import convert, reply_bytes
from store.catalog import Item


def _message_reply(request_id: str, version: str, excluded: int, recs) -> pb.RecommendResponse:
    reply = pb.RecommendResponse(request_id=request_id, model_version=version, excluded_no_price=excluded)
    convert.add_recommended(reply, ((r.item, r.candidate, r.justification) for r in recs))
    return reply


def _bytes_reply(request_id: str, version: str, excluded: int, recs) -> pb.RecommendResponse:
    return pb.RecommendResponse.FromString(
        reply_bytes.response_bytes(request_id, version, excluded, reply_bytes.items_bytes(recs)))


def _check_same(pipeline: RecommendPipeline, queries: list[RankQuery]) -> list[pb.RecommendResponse]:
    """Each query ranked once; its reply written both ways must parse equal. Returns the replies."""
    replies = []
    for n, (q, prepared) in enumerate(zip(queries, pipeline.rank_many(queries))):
        assert not isinstance(prepared, BaseException), (q, prepared)
        args = (f"req-{n}", "v-test", prepared.excluded_no_price, prepared.recommendations)
        want, got = _message_reply(*args), _bytes_reply(*args)
        assert got == want, q
        replies.append(got)
    return replies


def test_bytes_equal_the_message_for_users_texts_and_filters(zero_shot_ranker, ranker_catalog):
    pipeline = RecommendPipeline(ranker_catalog, zero_shot_ranker, explainer=None)
    users = [u for u in ranker_catalog.user_ids() if ranker_catalog.history(u)][:120]
    items = ranker_catalog.all_items()
    queries = [RankQuery(user_id=u, k=10) for u in users[:80]]
    queries += [RankQuery(user_id=u, text=t, k=10) for u, t in zip(
        users[80:100], ["soldering iron", "nitrile gloves", "sanding roll", "lab beaker glass"] * 5)]
    queries += [RankQuery(history=(items[n].id,), category=items[n].category.split()[-1], k=7)
                for n in range(0, 400, 40)]
    queries += [RankQuery(user_id=u, k=3, exclude=(items[0].id,)) for u in users[100:]]
    replies = _check_same(pipeline, queries)
    assert sum(len(r.items) for r in replies) > 900, "an empty reply proves nothing"
    assert sum(bool(it.evidence) for r in replies for it in r.items) > 500
    assert sum(it.HasField("query_match") for r in replies for it in r.items) >= 150


def test_bytes_equal_the_message_with_prices_and_brand_filters(priced_ranker, priced_catalog):
    pipeline = RecommendPipeline(priced_catalog, priced_ranker, explainer=None)
    users = [u for u in priced_catalog.user_ids() if priced_catalog.history(u)][:30]
    queries = [RankQuery(user_id=u, k=10, min_price=10.0) for u in users[:10]]
    queries += [RankQuery(user_id=u, k=10, max_price=40.0, brands=("Acme", "Contoso")) for u in users[10:20]]
    queries += [RankQuery(user_id=u, k=5, text="water bottle", exclude_brands=("Tailspin",)) for u in users[20:]]
    replies = _check_same(pipeline, queries)
    assert all(r.items for r in replies)
    assert any(r.excluded_no_price for r in replies), "no reply counted items without a price"
    assert any(it.item.HasField("price") for r in replies for it in r.items)


def test_item_bytes_carry_attributes_and_follow_an_upsert():
    """Attributes (a list travels as JSON text) and an unset price parse back as the message has them;
    an upsert's new Item object with the same id is encoded again, not served from the cache."""
    old = Item(id="RB-1", title="Pipette", category="Lab", brand="Acme", price=None,
               description="A pipette.", attributes={"volumes": ["10 ml", "20 ml"], "material": "glass"})
    new = Item(id="RB-1", title="Pipette, renamed", category="Lab", brand="Acme", price=4.5,
               description="A pipette.", attributes={"material": "plastic"})
    cand = Candidate("RB-1", 0.25, (HistoryEvidence("H-1", 0.5, ("brand",)),), query_match=0.125)
    for item in (old, new, old):
        recs = [Recommendation(item, cand)]
        assert _bytes_reply("r", "v", 0, recs) == _message_reply("r", "v", 0, recs)
    assert _bytes_reply("r", "v", 0, [Recommendation(new, cand)]).items[0].item.title == "Pipette, renamed"


def test_fields_written_by_hand_parse_as_the_message_at_the_edges():
    """rank, score, query_match and evidence written field by field: a zero score (not written), a zero
    query_match (written: it has presence), no evidence, a score beyond float32 (the message path), a
    rank past the precomputed ones, and evidence objects reused across calls and items."""
    item = Item(id="RB-2", title="Beaker", category="Lab", brand="Acme", price=2.0)
    shared_ev = HistoryEvidence("H-9", -0.75, ("brand", "category"), "Lab")
    cases = [Candidate("RB-2", 0.0, (), query_match=0.0), Candidate("RB-2", -1.5, (shared_ev,)),
             Candidate("RB-2", 1e39, (shared_ev, HistoryEvidence("H-1", 0.0))),
             Candidate("RB-2", 0.1, (shared_ev,), query_match=-1e39), Candidate("RB-2", 3.25, (shared_ev,))]
    recs = [Recommendation(item, c) for c in cases]
    assert _bytes_reply("r", "v", 2, recs) == _message_reply("r", "v", 2, recs)
    many = [Recommendation(item, cases[n % len(cases)]) for n in range(1030)]   # ranks past 1,024
    got = _bytes_reply("r", "v", 0, many)
    assert got == _message_reply("r", "v", 0, many) and got.items[-1].rank == 1030
    assert got.items[0].HasField("query_match") and got.items[0].query_match == 0.0


# -- a client of a real server on loopback ---------------------------------------------------------
@pytest.fixture(scope="module")
def message_server(server_catalog, server_ranker):
    """The same catalog and ranker as template_server, serving Recommend with bytes replies off."""
    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    cfg = server_config(reply_bytes=False)
    harness = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    yield harness
    harness.close()


def test_a_client_gets_the_same_replies_with_bytes_on_and_off(template_server, message_server, server_catalog,
                                                               monkeypatch):
    assert template_server.config.reply_bytes and not message_server.config.reply_bytes
    encoded = []      # the calls whose items were written as bytes (in a ranking thread)

    def counted(recs):
        encoded.append(len(recs))
        return real(recs)
    real = reply_bytes.items_bytes
    monkeypatch.setattr(reply_bytes, "items_bytes", counted)
    users = [u for u in server_catalog.user_ids() if server_catalog.history(u)][:15]
    asks = [dict(user_id=u, k=10) for u in users[:10]]
    asks += [dict(user_id=u, query="soldering iron", k=5, category="Industrial") for u in users[10:]]
    asks += [dict(user_id=users[0], k=3, explain=True)]       # the message path on both
    with template_server.client() as on, message_server.client() as off:
        for n, ask in enumerate(asks):
            got, want = on.recommend(request_id=f"rb-{n}", **ask), off.recommend(request_id=f"rb-{n}", **ask)
            assert got.items and got == want, ask
        assert got.items[0].HasField("justification")
    assert len(encoded) == len(asks) - 1, "the bytes path served every call without explain, and only those"


@pytest.mark.parametrize("ask, field", [(dict(k=-1), "k"), (dict(history=["a b"]), "history[0]"),
                                        (dict(min_price=5, max_price=1), "max_price")])
def test_bad_input_is_invalid_argument_naming_the_field(template_server, some_user, ask, field):
    with template_server.client() as c, pytest.raises(grpc.RpcError) as err:
        c.recommend(**{"user_id": some_user, **ask})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
