"""The desk's contract additions over real gRPC on loopback (priced catalog, template justifications):
similar_to / price / brand filters, GetHistory, GetItems, and errors that name the field."""
from __future__ import annotations

import grpc
import pytest


def test_like_item_but_cheaper_over_grpc(priced_server, priced_catalog):
    ref = next(i for i in priced_catalog.all_items() if i.price is not None and i.price > 20)
    with priced_server.client() as c:
        reply = c.recommend(similar_to=ref.id, max_price=ref.price - 0.01, k=10)
        assert reply.items and ref.id not in [r.item.id for r in reply.items]
        assert all(r.item.HasField("price") and r.item.price < ref.price for r in reply.items)
        branded = c.recommend(similar_to=ref.id, brands=[ref.brand.upper()], exclude_brands=["Litware"], k=10)
        assert branded.items and all(r.item.brand == ref.brand for r in branded.items)
        streamed = list(c.stream_recommend(similar_to=ref.id, max_price=ref.price, k=5))
        ranked = streamed[0].ranked
        assert [r.item.id for r in ranked.items] == [r.item.id for r in c.recommend(
            similar_to=ref.id, max_price=ref.price, k=5).items]


def test_filter_errors_name_the_field(priced_server):
    with priced_server.client() as c:
        for kwargs, field in [(dict(min_price=-1.0), "min_price"), (dict(min_price=5.0, max_price=1.0), "max_price"),
                              (dict(brands=[" "]), "brands[0]"), (dict(similar_to="has space"), "similar_to_item_id")]:
            with pytest.raises(grpc.RpcError) as err:
                c.recommend(user_id="U001", **kwargs)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details(), kwargs
        with pytest.raises(grpc.RpcError) as err:
            c.recommend(similar_to="NO-SUCH-ITEM")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "similar_to_item_id" in err.value.details()


def test_history_newest_first_and_items(priced_server, priced_catalog):
    user = priced_catalog.user_ids()[3]
    events, total = priced_catalog.recent_events(user, 1000)
    with priced_server.client() as c:
        reply = c.history(user, limit=3)
        assert reply.total == total >= 4 and len(reply.entries) == 3
        ts = [e.ts for e in reply.entries]
        assert ts == sorted(ts, reverse=True) and ts[0] == max(e.ts for e in events)
        assert reply.entries[0].item.id == events[0].item_id and reply.entries[0].item.title
        items = c.get_items([reply.entries[1].item.id, reply.entries[0].item.id])
        assert [i.id for i in items] == [reply.entries[1].item.id, reply.entries[0].item.id]
        with pytest.raises(grpc.RpcError) as err:
            c.history("nobody")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            c.get_items(["P0001", "NOPE"])
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "item_ids" in err.value.details()


def test_excluded_no_price_and_price_comparison_facts(priced_server, priced_catalog):
    items = priced_catalog.all_items()
    ref = next(i for i in items if i.price is not None and i.price > 30)
    unpriced = sum(1 for i in items if i.price is None and i.id != ref.id)
    with priced_server.client() as c:
        reply = c.recommend(similar_to=ref.id, min_price=0.0, k=5, explain=True)
        assert reply.excluded_no_price == unpriced > 0          # nothing else filtered: every unpriced item
        assert c.recommend(similar_to=ref.id, k=5).excluded_no_price == 0   # no price filter: nothing dropped
        ranked = next(iter(c.stream_recommend(similar_to=ref.id, max_price=ref.price, k=5))).ranked
        assert ranked.excluded_no_price == unpriced
        for r in reply.items:    # "like X": each item's facts state its price against X's
            diff = round(ref.price - r.item.price, 2)
            if abs(diff) >= 0.01:
                want = f"costs ${r.item.price:,.2f}, ${abs(diff):,.2f} {'less' if diff > 0 else 'more'} than the"
                assert any(want in f for f in r.justification.facts), (want, list(r.justification.facts))
        plain = c.recommend(similar_to=ref.id, k=40, explain=True)
        unpriced_shown = [r for r in plain.items if not r.item.HasField("price")]
        assert unpriced_shown
        for r in unpriced_shown:    # an item without a price gets no comparison
            assert not [f for f in r.justification.facts if " than the " in f and "costs $" in f]
