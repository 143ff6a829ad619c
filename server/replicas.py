"""Keeping one replica's in-memory state in step with catalog changes made by the others.

Feedback needs nothing, and the ranker reads a user's history from the store on every call. Items
are different: each replica holds its own vector index and its explainer's read model (category
names, brands, attributes). The store announces every committed upsert or delete (PostgreSQL
LISTEN/NOTIFY, see `Catalog.watch_item_changes`); this follower re-reads those items, re-indexes
or removes them, and hands the new or changed ones to the read model, which updates only what they
change (the co-purchase table is never rebuilt for an item change). After (re)connecting it
compares the whole catalog, so a notice lost while disconnected costs a full comparison, not a
stale index.

Events matter to one table: the read model's co-purchases ("N other shoppers bought both"). A
process adds the purchases it records itself at once (`RecService.record_events`); the store
announces which users' events another process committed (`Catalog.watch_event_changes`), and the
event follower reads those users' purchases back into the table (a shopper counts once per item,
so reading one twice changes nothing). After (re)connecting it rebuilds the table from the store.
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


def follow_event_changes(catalog: "Catalog", explainer: "Explainer") -> Callable[[], None]:
    """Starts following events other processes record; returns the function that stops it. Only
    purchases change the co-purchase table, so notices of views or ratings alone are skipped."""
    from explainer.read_model import CO_PURCHASE_KINDS

    def on_events(user_ids: list[str] | None, kinds: list[str]) -> None:
        if user_ids is not None and not set(kinds) & set(CO_PURCHASE_KINDS):
            return
        t0 = time.perf_counter()
        explainer.read_model.refresh_co_purchases(catalog, user_ids)
        # one line per other process's purchase write would drown the log: only a full rebuild is INFO
        log.log(logging.DEBUG if user_ids is not None else logging.INFO, "co-purchases: %s from the store in %.0f ms",
                f"purchases of {len(user_ids)} users read" if user_ids is not None else "table rebuilt",
                1000 * (time.perf_counter() - t0))
    return catalog.watch_event_changes(on_events)
