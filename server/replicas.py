"""Keeping one replica's in-memory index in step with catalog changes made by the others.

Events and feedback need nothing: the ranker reads a user's history from the store on every
call. Items are different: each replica holds its own vector index. The store announces every
committed upsert or delete (PostgreSQL LISTEN/NOTIFY, see `Catalog.watch_item_changes`); this
follower re-reads those items and re-indexes or removes them. After (re)connecting it compares
the whole catalog, so a notice lost while disconnected costs a full comparison, not a stale index.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger("explainrec.server")


def follow_catalog_changes(catalog, ranker, explainer) -> Callable[[], None]:
    """Starts following; returns the function that stops it. A no-op on SQLite.

    ranker: the Ranker, or a function returning the one serving now (a hot swap replaces it)."""
    def on_change(item_ids: list[str] | None) -> None:
        t0 = time.perf_counter()
        indexed, removed = (ranker() if callable(ranker) else ranker).sync_items(item_ids)
        if indexed or removed:
            refresh = getattr(explainer, "refresh_catalog", None)
            if refresh is not None:
                refresh()
            log.info("catalog change from another replica: %d items indexed, %d removed in %.0f ms",
                     indexed, removed, 1000 * (time.perf_counter() - t0))
    return catalog.watch_item_changes(on_change)
