"""server/replicas.py: what a replica does when another one changes the catalog. The store's change
notices (PostgreSQL LISTEN/NOTIFY, tested in test_store_backends / test_replicas) are replaced by
calling the follower's callback directly, on a real SQLite catalog, a real ranker (fake encoder)
and a real explainer read model."""
from __future__ import annotations

import pytest

from explainer.config import ExplainerConfig
from explainer.service import Explainer
from ranker.service import Ranker
from ranker.types import RankQuery
from server.replicas import follow_catalog_changes
from store.catalog import Item


class NoticeCatalog:
    """The catalog, with the change notices under the test's control."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.on_change = None

    def __getattr__(self, name):
        return getattr(self.catalog, name)

    def watch_item_changes(self, on_change):
        self.on_change = on_change
        return lambda: None


@pytest.mark.parametrize("notice", ["ids", "compare everything"])
def test_another_replicas_upsert_and_delete_update_index_and_read_model_incrementally(catalog, fake_encoder, notice):
    ranker = Ranker.zero_shot(catalog, device="cpu", encoder=fake_encoder)
    explainer = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog)
    tables = explainer.read_model
    cats, co, verifier = tables.categories, tables.co_purchases, tables.verifier
    watched = NoticeCatalog(catalog)
    follow_catalog_changes(watched, lambda: ranker, explainer)

    new = Item(id="OTHER-REPLICA-1", title="Zorblax quantum flux capacitor calibration kit",
               category="Industrial & Scientific Lab Kits Quantum Flux Kits", brand="Zorblax Works")
    catalog.upsert_items([new])                       # written by the other replica: nothing here knows yet
    assert "zorblax works" not in tables.verifier._brands
    watched.on_change([new.id] if notice == "ids" else None)

    top = ranker.recommend(RankQuery(text="zorblax quantum flux capacitor calibration kit", k=3))
    assert top[0].item_id == new.id
    assert tables.categories is not cats and tables.categories.name(new.category) == "Quantum Flux Kits"
    assert tables.verifier is not verifier and "zorblax works" in tables.verifier._brands
    assert tables.co_purchases is co, "the co-purchase table was rebuilt for an item change"
    assert tables.name(new) and tables.name(new) in explainer.history_names([new])[0]

    # a delete by the other replica takes the item out of the index; the read model keeps it (an old
    # history still names it) and rebuilds nothing
    cats, verifier = tables.categories, tables.verifier
    catalog.delete_items([new.id])
    watched.on_change([new.id] if notice == "ids" else None)
    assert new.id not in [c.item_id for c in ranker.recommend(RankQuery(text="zorblax quantum flux", k=10))]
    assert (tables.categories, tables.verifier, tables.co_purchases) == (cats, verifier, co)
