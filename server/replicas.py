"""Keeping one replica's in-memory state in step with catalog changes made by the others.

Events and feedback need nothing: the ranker reads a user's history from the store on every
call. Items are different: each replica holds its own vector index and its explainer's read model
(category names, brands, attributes). The store announces every committed upsert or delete
(PostgreSQL LISTEN/NOTIFY, see `Catalog.watch_item_changes`); this follower re-reads those items,
re-indexes or removes them, and hands the new or changed ones to the read model, which updates
only what they change (the co-purchase table is never rebuilt for an item change). After
(re)connecting it compares the whole catalog, so a notice lost while disconnected costs a full
comparison, not a stale index.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from explainer.service import Explainer
    from ranker.service import Ranker
    from store.catalog import Catalog

log = logging.getLogger("explainrec.server")


def follow_catalog_changes(catalog: "Catalog", ranker: "Ranker | Callable[[], Ranker]",
                           explainer: "Explainer") -> Callable[[], None]:
    """Starts following; returns the function that stops it. A no-op on SQLite.

    ranker: the Ranker, or a function returning the one serving now (a hot swap replaces it)."""
    def on_change(item_ids: list[str] | None) -> None:
        t0 = time.perf_counter()
        indexed, removed = (ranker() if callable(ranker) else ranker).sync_items(item_ids)
        if indexed:
            # deleted items stay in the read model on purpose (an old history still names them)
            explainer.add_items([item for item, deleted in catalog.item_states(item_ids).values() if not deleted])
        if indexed or removed:
            log.info("catalog change from another replica: %d items indexed, %d removed in %.0f ms",
                     indexed, removed, 1000 * (time.perf_counter() - t0))
    return catalog.watch_item_changes(on_change)
