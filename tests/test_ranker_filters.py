"""Price / brand filters and "more like this" in the ranker, on the small priced catalog with the
real MiniLM: every result obeys the filters, and the filtered ranking equals a brute-force one."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from ranker.service import Ranker
from ranker.types import RankQuery
from store.errors import InvalidInput, UnknownItem


def _reference(ranker: Ranker, catalog, q: RankQuery) -> tuple[list[float], int]:
    """Brute force over the catalog rows: the scores a filtered query must return (items with the
    same title tie, so scores are compared, not ids) and how many items had no price."""
    user, history, _, _ = ranker._query_vector(q)
    skip = set(q.exclude) | ({h.id for h in history} if q.exclude_history else set()) | {q.similar_to}
    brands = {b.lower() for b in q.brands}
    not_brands = {b.lower() for b in q.exclude_brands}
    scored, no_price = [], 0
    for item in catalog.all_items():
        if item.id in skip or (brands and item.brand.lower() not in brands) or item.brand.lower() in not_brands:
            continue
        if q.has_price_filter:
            if item.price is None:
                no_price += 1
                continue
            if (q.min_price is not None and item.price < q.min_price) or \
                    (q.max_price is not None and item.price > q.max_price):
                continue
        scored.append((float(ranker._vecs[ranker._row[item.id]] @ user), item.id))
    scored.sort(key=lambda t: -t[0])
    return [s for s, _ in scored[:q.k]], no_price


def _random_query(rng: random.Random, catalog, users: list[str], items: list) -> RankQuery:
    ref = rng.choice(items)
    kw: dict = {"k": rng.choice([3, 5, 10, 20])}
    mode = rng.random()
    if mode < 0.4:          # "like <ref> but cheaper": the bound is the reference's price
        kw["max_price"] = ref.price if ref.price is not None else 50.0
    elif mode < 0.7:
        lo = round(rng.uniform(0, 80), 2)
        kw["min_price"], kw["max_price"] = lo, round(lo + rng.uniform(0, 150), 2)
    else:
        kw[rng.choice(["min_price", "max_price"])] = round(rng.uniform(0, 200), 2)
    if rng.random() < 0.3:
        kw["brands"] = tuple(rng.sample(["Acme", "northwind", "Contoso", "Fabrikam"], rng.randint(1, 2)))
    elif rng.random() < 0.2:
        kw["exclude_brands"] = ("Tailspin",)
    who = rng.random()
    if who < 0.8:
        kw["user_id"] = rng.choice(users)
    return RankQuery(similar_to=ref.id if who > 0.2 or "user_id" not in kw else "", **kw)


def test_price_filter_correct_over_200_random_requests(priced_ranker, priced_catalog):
    rng = random.Random(12)
    users, items = priced_catalog.user_ids(), priced_catalog.all_items()
    by_id = {i.id: i for i in items}
    checked = no_price_seen = 0
    for _ in range(200):
        q = _random_query(rng, priced_catalog, users, items)
        ranking = priced_ranker.rank(q)
        got = [c.item_id for c in ranking.candidates]
        for iid in got:
            price = by_id[iid].price
            assert price is not None, (q, iid)
            assert q.min_price is None or price >= q.min_price, (q, iid, price)
            assert q.max_price is None or price <= q.max_price, (q, iid, price)
            if q.brands:
                assert by_id[iid].brand.lower() in {b.lower() for b in q.brands}
            assert by_id[iid].brand not in q.exclude_brands and iid != q.similar_to
            checked += 1
        want, no_price = _reference(priced_ranker, priced_catalog, q)
        assert np.allclose([c.score for c in ranking.candidates], want, atol=1e-5), q
        assert ranking.excluded_no_price == no_price, q
        no_price_seen += ranking.excluded_no_price
    print(f"price filter: 200 requests, {checked} results, all within bounds; {no_price_seen} unpriced exclusions")
    assert checked > 500 and no_price_seen > 0


def test_overfetch_path_agrees_with_exact_scan(priced_ranker, priced_catalog):
    """The path for loose filters on big catalogs (search the index, filter, widen) gives the same list."""
    overfetch = dataclasses.replace(priced_ranker.config, exact_filter_max=0)
    rng = random.Random(3)
    users, items = priced_catalog.user_ids(), priced_catalog.all_items()
    for _ in range(30):
        q = _random_query(rng, priced_catalog, users, items)
        exact = [c.score for c in priced_ranker.rank(q).candidates]
        priced_ranker.config = overfetch
        try:
            wide = [c.score for c in priced_ranker.rank(q).candidates]
        finally:
            priced_ranker.config = dataclasses.replace(overfetch, exact_filter_max=50_000)
        assert len(exact) > 0 and np.allclose(wide, exact, atol=1e-5), q


def test_similar_to_alone_ranks_by_closeness_and_blends_with_history(priced_ranker, priced_catalog):
    ref = priced_catalog.get_item("P0002")   # a tent
    alone = priced_ranker.recommend(RankQuery(similar_to=ref.id, k=5))
    assert ref.id not in [c.item_id for c in alone]
    cats = [priced_catalog.get_item(c.item_id).category for c in alone]
    assert sum(c == ref.category for c in cats) >= 4, cats
    scores = [c.score for c in alone]
    assert scores == sorted(scores, reverse=True)
    # a mug shopper asking for "like this tent" still gets tents first, but not the same list
    user = next(u for u in priced_catalog.user_ids()
                if "Mugs" in priced_catalog.get_item(priced_catalog.history(u)[-1]).category)
    blended = priced_ranker.recommend(RankQuery(user_id=user, similar_to=ref.id, k=5))
    assert priced_catalog.get_item(blended[0].item_id).category == ref.category
    user_only = priced_ranker.recommend(RankQuery(user_id=user, k=5))
    assert [c.item_id for c in blended] != [c.item_id for c in user_only]


def test_filter_errors_name_the_field(priced_ranker):
    with pytest.raises(InvalidInput, match="min_price"):
        priced_ranker.rank(RankQuery(similar_to="P0001", min_price=-1.0))
    with pytest.raises(InvalidInput, match="max_price"):
        priced_ranker.rank(RankQuery(similar_to="P0001", min_price=10.0, max_price=5.0))
    with pytest.raises(InvalidInput, match="max_price"):
        priced_ranker.rank(RankQuery(similar_to="P0001", max_price=float("nan")))
    with pytest.raises(InvalidInput, match=r"brands\[0\]"):
        priced_ranker.rank(RankQuery(similar_to="P0001", brands=("  ",)))
    with pytest.raises(UnknownItem) as err:
        priced_ranker.rank(RankQuery(similar_to="NOPE"))
    assert err.value.field == "similar_to_item_id"
    assert np.isnan(priced_ranker._prices).sum() > 0   # the catalog really has unpriced items
