"""The justification cache: a repeated Explain / Recommend(explain) makes no LLM call, and each
trigger (new events for the user, an item change, a model change) makes the next one call again.

Fast tier: the real service, catalog and ranker, with the LLM call itself replaced by a counter
(`_explain_one`). The real test beside it goes through gRPC to the session's vLLM server.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from explainer.config import ExplainerConfig
from explainer.service import Explainer
from explainer.types import SOURCE_LLM, Justification
from ranker.types import RankQuery
from store.catalog import Event
from tests.fixtures_server import server_config


class CountingExplainer(Explainer):
    """The real explainer with the vLLM round trip replaced by a counted, canned reply."""

    calls = 0

    async def _explain_one(self, history, names, facts, trace, deadline_at=None):
        CountingExplainer.calls += 1
        return Justification(item_id=facts.item_id, text=f"because of {facts.anchor_name}", source=SOURCE_LLM,
                             template=self.prompt.id, model=self.client.model, evidence_ids=facts.evidence_ids,
                             facts=facts.lines)


@pytest.fixture()
def service(catalog, fake_encoder):
    from ranker.service import Ranker
    from server.app import RecService
    ranker = Ranker.zero_shot(catalog, device="cpu", encoder=fake_encoder)
    cfg = server_config(llm="url", vllm_url="http://127.0.0.1:9")
    ex = CountingExplainer.from_catalog(ExplainerConfig(vllm_url=cfg.vllm_url, model="m1"), catalog)
    svc = RecService(catalog, ranker, ex, cfg)
    yield svc
    asyncio.run(svc.aclose())


def _user(catalog) -> str:
    return next(u for u in catalog.user_ids() if len(catalog.history(u)) >= 5)


def _explain(svc, user, item_ids):
    before = CountingExplainer.calls
    recs = asyncio.run(svc.explain(RankQuery(user_id=user), item_ids, 30.0))
    return [r.justification for r in recs], CountingExplainer.calls - before


def test_repeat_is_served_from_the_cache_and_each_trigger_invalidates(service, catalog):
    user = _user(catalog)
    recs = asyncio.run(service.recommend(RankQuery(user_id=user, k=3), True, 30.0))
    items = [r.item.id for r in recs]
    assert not any(r.justification.cached for r in recs)
    # Explain of the same items for the same state: every one from the cache, no LLM call
    justs, calls = _explain(service, user, items)
    assert calls == 0 and all(j.cached for j in justs)
    assert [j.text for j in justs] == [r.justification.text for r in recs]

    # 1. a new event for the user: a new state, the LLM is asked again (then cached again)
    other = next(i.id for i in catalog.all_items() if i.id not in items and i.id not in catalog.history(user))
    asyncio.run(service.record_events([Event(user, other, "purchase", time.time(), "live")]))
    justs, calls = _explain(service, user, items)
    assert calls == len(items) and not any(j.cached for j in justs)
    assert _explain(service, user, items)[1] == 0

    # 2. an item change: that item is asked again, the others stay cached
    changed = catalog.get_item(items[0])
    asyncio.run(service.upsert_items([dataclasses.replace(changed, title=changed.title + " (2024 edition)")]))
    justs, calls = _explain(service, user, items)
    assert calls == 1 and [j.cached for j in justs] == [False, True, True][:len(items)]

    # 3. a model change (the LLM behind the same URL): every item is asked again
    service.explainer._client.model = "m2"
    justs, calls = _explain(service, user, items)
    assert calls == len(items) and all(j.model == "m2" and not j.cached for j in justs)

    # 4. a new ranker (hot swap): the cache is emptied
    assert len(service.justifications) > 0
    service.ranker = service.ranker
    assert len(service.justifications) == 0


def test_templates_written_for_a_failed_llm_are_not_cached(catalog, fake_encoder):
    from ranker.service import Ranker
    from server.app import RecService
    ranker = Ranker.zero_shot(catalog, device="cpu", encoder=fake_encoder)
    cfg = server_config(llm="url", vllm_url="http://127.0.0.1:9")      # nothing listens there
    svc = RecService(catalog, ranker, Explainer.from_catalog(ExplainerConfig(vllm_url=cfg.vllm_url, model="m"), catalog), cfg)
    try:
        user = _user(catalog)
        first = asyncio.run(svc.recommend(RankQuery(user_id=user, k=2), True, 30.0))
        assert all(r.justification.source == "template" for r in first)
        assert len(svc.justifications) == 0
    finally:
        asyncio.run(svc.aclose())


def test_cache_is_bounded_lru():
    from ranker.cache import LRUCache
    lru = LRUCache(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1          # a is now the most recent
    lru.put("c", 3)                   # evicts b
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3 and lru.evictions == 1


@pytest.mark.slow
@pytest.mark.vllm
def test_repeated_explain_through_grpc_makes_no_llm_call(llm_server, server_catalog, server_ranker):
    """Real vLLM: the second Explain is marked cached, is the same text, and is far faster."""
    user = next(u for u in server_catalog.user_ids() if len(server_catalog.history(u)) >= 4)
    item = server_ranker.recommend(RankQuery(user_id=user, k=1))[0].item_id
    with llm_server.client(timeout_s=120) as c:
        t0 = time.perf_counter()
        first = c.explain(user_id=user, item_ids=[item]).explanations[0].justification
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = c.explain(user_id=user, item_ids=[item]).explanations[0].justification
        second_s = time.perf_counter() - t0
    assert not first.cached
    if first.source == "llm" or first.fallback_reason == "verifier":
        assert second.cached and second.text == first.text and second_s < first_s
    else:   # the LLM did not answer (overloaded machine): nothing may be cached
        assert not second.cached
