"""In-memory state of a serving process that must follow the store when several processes serve it
(`serve --workers N`, replicas): two services in this process, each on its own connection to one
store (a SQLite file; PostgreSQL in the slow tier) with its own followers (`server.replicas.follow_store`, as `serve` starts them), so each
hears the other's writes only through the store's notices, as two workers do.

- the tally of helpful / not-helpful ratings per link kind: a rating stored through A counts in B;
- the justification cache: B never answers from an entry that A's writes made stale (new events for
  the shopper, a changed item), and drops those entries when it hears of them.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from explainer.config import ExplainerConfig
from explainer.link_feedback import link_kinds_for, preferences_from_catalog
from ranker.types import RankQuery
from store.catalog import Catalog, Event, Feedback
from tests.fixtures_server import server_config
from tests.test_justification_cache import CountingExplainer


@pytest.fixture()
def catalog(any_catalog):
    """The small catalog on each backend (its PostgreSQL half is slow)."""
    return any_catalog


@pytest.fixture()
def two_processes(catalog, fake_encoder):
    from ranker.service import Ranker
    from server.app import RecService
    from server.replicas import follow_store
    services, stops, catalogs = [], [], [catalog, Catalog(catalog.path or catalog.location)]
    for cat in catalogs:
        cfg = server_config(llm="url", vllm_url="http://127.0.0.1:9")
        ex = CountingExplainer.from_catalog(ExplainerConfig(vllm_url=cfg.vllm_url, model="m1"), cat)
        svc = RecService(cat, Ranker.zero_shot(cat, device="cpu", encoder=fake_encoder), ex, cfg)
        ex.link_preferences = preferences_from_catalog(cat, svc.pipeline)
        stops += [stop for _name, stop in follow_store(cat, svc)]
        services.append(svc)
    yield services
    for stop in stops:
        stop()
    for svc in services:
        asyncio.run(svc.aclose())
    catalogs[1].close()


def _wait(cond, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _rated(svc) -> dict[str, int]:
    return {k: v["helpful"] + v["not_helpful"] for k, v in svc.explainer.link_preferences.summary().items()}


def test_a_rating_stored_through_one_process_counts_in_every_process(two_processes, catalog):
    a, b = two_processes
    user, item, kind = next((u, r.item.id, kinds[0]) for u in catalog.user_ids() if len(catalog.history(u)) >= 5
                            for r in asyncio.run(a.recommend(RankQuery(user_id=u, k=5), False))
                            for kinds in [link_kinds_for(a.pipeline, u, r.item.id)] if kinds)
    before = _rated(a).get(kind, 0)
    assert _rated(b).get(kind, 0) == before          # both read the same stored ratings at start
    rating = Feedback(user, item, "rating", helpful=False)
    first = asyncio.run(a.submit_feedback(rating, idempotency_key="r-1"))
    assert asyncio.run(a.submit_feedback(rating, idempotency_key="r-1")) == first     # a retry: one row
    asyncio.run(a.submit_feedback(Feedback(user, item, "click")))                       # no rating
    assert _rated(a)[kind] == before + 1
    assert _wait(lambda: _rated(b).get(kind, 0) == before + 1), _rated(b)
    asyncio.run(b.submit_feedback(Feedback(user, item, "rating", helpful=True)))
    assert _wait(lambda: _rated(a)[kind] == before + 2), _rated(a)
    time.sleep(0.5)                                  # a few notice polls later: nothing counted twice
    assert _rated(a)[kind] == _rated(b)[kind] == before + 2
    assert a.explainer.link_preferences.summary() == b.explainer.link_preferences.summary()


def _explain(svc, user, item_ids):
    before = CountingExplainer.calls
    justs = [r.justification for r in asyncio.run(svc.explain(RankQuery(user_id=user), item_ids, 30.0))]
    return justs, CountingExplainer.calls - before


def test_justifications_cached_in_one_process_do_not_outlive_writes_through_another(two_processes, catalog):
    a, b = two_processes
    user = next(u for u in catalog.user_ids() if len(catalog.history(u)) >= 5)
    items = [r.item.id for r in asyncio.run(b.recommend(RankQuery(user_id=user, k=3), True, 30.0))]
    assert len(b.justifications) == len(items) and _explain(b, user, items)[1] == 0    # B's cache answers

    # a purchase recorded through A: B's next answer is asked of the LLM again (the history it reads
    # from the store is a new key), and B drops the orphaned entries when the notice comes
    other = next(i.id for i in catalog.all_items() if i.id not in items and i.id not in catalog.history(user))
    asyncio.run(a.record_events([Event(user, other, "purchase", time.time(), "live")]))
    assert _wait(lambda: len(b.justifications) == 0)
    justs, calls = _explain(b, user, items)
    assert calls == len(items) and not any(j.cached for j in justs)

    # an item changed through A: once B has it, that item is asked again and the others stay cached
    changed = catalog.get_item(items[0])
    asyncio.run(a.upsert_items([dataclasses.replace(changed, title=changed.title + " (2024 edition)")]))
    assert _wait(lambda: len(b.justifications) == len(items) - 1)
    justs, calls = _explain(b, user, items)
    assert calls == 1 and [j.cached for j in justs] == [False] + [True] * (len(items) - 1)
