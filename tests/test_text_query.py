"""A free-text query ranks what it names, not what is bought after it (RankerConfig.text_weight)."""
from __future__ import annotations

import dataclasses

import pytest

from ranker.service import RankerConfig

pytestmark = pytest.mark.slow   # loads a trained ranker (torch)


def test_text_weight_outside_0_1_is_refused_naming_it():
    with pytest.raises(ValueError, match="text_weight"):
        RankerConfig(text_weight=1.5)


def test_the_text_weight_shares_the_query_between_the_text_and_the_history(tiny_ranker_workdir):
    """At 1 the text alone ranks (two shoppers' histories give the same list); at 0 the user tower
    does (they differ); the default sits between and still finds the item the text names."""
    from ranker.service import Ranker
    from ranker.types import RankQuery
    from store.catalog import Catalog
    from store.paths import db_path

    catalog = Catalog(db_path(tiny_ranker_workdir))
    try:
        ranker = Ranker.load(tiny_ranker_workdir / "ranker", catalog, device="cpu")
        items = [ranker._items[i] for i in ranker._ids]
        a, b, named = items[0], items[len(items) // 2], items[5]

        def top(weight: float, history: str) -> list[str]:
            ranker.config = dataclasses.replace(ranker.config, text_weight=weight)
            ids = [c.item_id for c in ranker.recommend(RankQuery(history=(history,), text=named.title, k=12))]
            return [i for i in ids if i not in (a.id, b.id)][:8]
        assert top(1.0, a.id) == top(1.0, b.id)
        assert top(0.0, a.id) != top(0.0, b.id)
        ranker.config = dataclasses.replace(ranker.config, text_weight=RankerConfig().text_weight)
        assert named.id in {c.item_id for c in ranker.recommend(RankQuery(history=(a.id,), text=named.title, k=5))}
    finally:
        catalog.close()
