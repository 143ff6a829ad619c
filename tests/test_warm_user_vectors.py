"""The user-vector cache filled before serving (Ranker.warm_user_vectors): the most recently active
shoppers first, never more than the cache holds, and a warmed shopper's Recommend skips the tower
with the same answer as a cold one."""
from __future__ import annotations

from ranker.service import Ranker, RankerConfig
from ranker.types import RankQuery


def _tower_calls(ranker: Ranker) -> list[int]:
    calls: list[int] = []
    inner = ranker.scorer.user_vectors

    def counting(histories):
        calls.append(len(histories))
        return inner(histories)

    ranker.scorer.user_vectors = counting       # type: ignore[method-assign]
    return calls


def test_warmed_shoppers_skip_the_tower_with_the_same_answer(catalog, fake_encoder):
    cold = Ranker.zero_shot(catalog, encoder=fake_encoder, config=RankerConfig(user_cache_size=50))
    warm = Ranker.zero_shot(catalog, encoder=fake_encoder, config=RankerConfig(user_cache_size=50))
    assert warm.warm_user_vectors(10_000) == 50          # capped at the cache's size
    assert len(warm.user_vectors) == 50
    recent = catalog.recently_active_user_ids(50)
    calls = _tower_calls(warm)
    got = warm.rank_many([RankQuery(user_id=u, k=10) for u in recent])
    want = cold.rank_many([RankQuery(user_id=u, k=10) for u in recent])
    assert sum(calls) == 0
    assert [[c.item_id for c in r.candidates] for r in got] == [[c.item_id for c in r.candidates] for r in want]
    assert [[c.score for c in r.candidates] for r in got] == [[c.score for c in r.candidates] for r in want]
    assert warm.warm_user_vectors(10) == 0              # already cached: nothing computed again


def test_the_most_recently_active_come_first(catalog):
    ids = catalog.recently_active_user_ids(5)
    last = {u: max(e.ts for e in catalog.recent_events(u, 1)[0]) for u in catalog.recently_active_user_ids(10_000)}
    assert ids == sorted(last, key=lambda u: (-last[u], u))[:5]
