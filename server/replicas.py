"""Keeping one replica's in-memory state in step with catalog changes made by the others.

The ranker reads a user's history from the store on every call. Items are different: each replica holds its own vector index and its explainer's read model (category
names, brands, attributes). The store announces every committed upsert or delete (PostgreSQL
LISTEN/NOTIFY, see `Catalog.watch_item_changes`); this follower re-reads those items, re-indexes
or removes them, and hands the new or changed ones to the read model, which updates only what they
change (the co-purchase table is never rebuilt for an item change). After (re)connecting it
compares the whole catalog, so a notice lost while disconnected costs a full comparison, not a
stale index.

The justification cache needs nothing for correctness (its key holds the shopper's history read
from the store, the item's facts and the co-purchase counts, so a change made elsewhere is a new
key), but the followers drop the entries a change orphans, as the process that made it does (only
purchases and item changes are announced: entries a view recorded elsewhere orphans age out of the LRU).

Ratings of justifications (feedback with `helpful` set) feed each process's tally of helpful
link kinds (explainer/link_feedback.py): the store announces each one (`Catalog.watch_feedback_changes`)
and the feedback follower counts it; after (re)connecting it re-reads the latest ratings (a
rating counts once per process, so reading one twice changes nothing).

Events matter to one table: the read model's co-purchases ("N other shoppers bought both"). A
process adds the purchases it records itself at once (`RecService.record_events`); the store
announces which users' events another process committed (`Catalog.watch_event_changes`), and the
event follower reads those users' purchases back into the table (a shopper counts once per item,
so reading one twice changes nothing). After (re)connecting it rebuilds the table from the store.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from explainer.pipeline import RecommendPipeline
    from explainer.service import Explainer
    from ranker.service import Ranker
    from server.app import RecService
    from store.catalog import Catalog

log = logging.getLogger("explainrec.server")


def follow_store(catalog: "Catalog", service: "RecService") -> list[tuple[str, Callable[[], None]]]:
    """Everything a serving process follows in the store, started: (name, stop) pairs in start order."""
    explainer, cache = service.explainer, service.justifications

    def forget_users(user_ids: Sequence[str]) -> None:
        if cache is not None:
            cache.forget_users(user_ids)

    def forget_items(item_ids: Sequence[str]) -> None:
        if cache is not None:
            cache.forget_items(item_ids)
    # the followers act on whichever ranker and pipeline serve now (a hot swap replaces them)
    return [("catalog follower", follow_catalog_changes(catalog, lambda: service.ranker, explainer,
                                                        on_items=forget_items)),
            ("event follower", follow_event_changes(catalog, explainer, on_users=forget_users)),
            ("feedback follower", follow_feedback(catalog, explainer, lambda: service.pipeline))]


def follow_catalog_changes(catalog: "Catalog", ranker: "Ranker | Callable[[], Ranker]",
                           explainer: "Explainer", on_items: Callable[[Sequence[str]], None] | None = None
                           ) -> Callable[[], None]:
    """Starts following; returns the function that stops it.

    ranker: the Ranker, or a function returning the one serving now (a hot swap replaces it).
    on_items(ids): told which items changed or went (not after a full comparison)."""
    def on_change(item_ids: list[str] | None) -> None:
        t0 = time.perf_counter()
        indexed, removed = (ranker() if callable(ranker) else ranker).sync_items(item_ids)
        if item_ids is not None and on_items is not None:
            on_items(item_ids)
        if indexed:
            # deleted items stay in the read model on purpose (an old history still names them)
            explainer.add_items([item for item, deleted in catalog.item_states(item_ids).values() if not deleted])
        if indexed or removed:
            log.info("catalog change from another replica: %d items indexed, %d removed in %.0f ms",
                     indexed, removed, 1000 * (time.perf_counter() - t0))
    return catalog.watch_item_changes(on_change)


def follow_event_changes(catalog: "Catalog", explainer: "Explainer",
                         on_users: Callable[[Sequence[str]], None] | None = None) -> Callable[[], None]:
    """Starts following events other processes record; returns the function that stops it. Only
    purchases change the co-purchase table, so notices of views or ratings alone are skipped.
    on_users(ids): told whose events were recorded (not after a full rebuild)."""
    from explainer.read_model import CO_PURCHASE_KINDS

    def on_events(user_ids: list[str] | None, kinds: list[str]) -> None:
        if user_ids is not None and on_users is not None:
            on_users(user_ids)
        if user_ids is not None and not set(kinds) & set(CO_PURCHASE_KINDS):
            return
        t0 = time.perf_counter()
        explainer.read_model.refresh_co_purchases(catalog, user_ids)
        # one line per other process's purchase write would drown the log: only a full rebuild is INFO
        log.log(logging.DEBUG if user_ids is not None else logging.INFO, "co-purchases: %s from the store in %.0f ms",
                f"purchases of {len(user_ids)} users read" if user_ids is not None else "table rebuilt",
                1000 * (time.perf_counter() - t0))
    return catalog.watch_event_changes(on_events)


def follow_feedback(catalog: "Catalog", explainer: "Explainer", pipeline: "Callable[[], RecommendPipeline]"
                    ) -> Callable[[], None]:
    """Starts counting the ratings other processes store into this one's link-kind tally
    (`explainer.link_preferences`); returns the function that stops it. pipeline(): the one serving
    now, which recomputes the link kind each rated justification stated."""
    from explainer.link_feedback import MAX_RATINGS_READ, link_kinds_for

    def on_ratings(ids: list[int] | None) -> None:
        prefs = explainer.link_preferences
        if prefs is None:
            return
        t0 = time.perf_counter()
        rows = catalog.rated_feedback(ids) if ids is not None else catalog.rated_feedback(latest=MAX_RATINGS_READ)
        serving = pipeline()
        counted = prefs.count_rows(rows, lambda user, item: link_kinds_for(serving, user, item))
        log.log(logging.DEBUG if ids is not None else logging.INFO,
                "link feedback: %d ratings from the store counted in %.0f ms", counted, 1000 * (time.perf_counter() - t0))
    return catalog.watch_feedback_changes(on_ratings)
