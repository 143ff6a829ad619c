"""A shopper's history as the explainer needs it: the items, and what the shopper did with each.

"You bought the X" is only true when a purchase was recorded; a film catalog has ratings, a shop
has views and cart events too. The kinds come from the stored events; inline history ids sent with
a request carry no event, so their kinds stay unknown (empty) and the explainer words them neutrally.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from core.errors import UnknownItem
from store.catalog import SPLITS, Item

if TYPE_CHECKING:
    from store.catalog import Catalog


@dataclass(frozen=True)
class HistoryItem(Item):
    """A catalog item in one shopper's history. An Item, so every history consumer keeps working."""

    kinds: tuple[str, ...] = ()   # recorded event kinds for this item, oldest first; () unknown


def with_kinds(items: Sequence[Item], kinds_by_id: dict[str, tuple[str, ...]]) -> list[HistoryItem]:
    return [HistoryItem(**{**i.__dict__, "kinds": kinds_by_id.get(i.id, getattr(i, "kinds", ()))}) for i in items]


def history_items(catalog: "Catalog", item_ids: Sequence[str], user_id: str | None = None,
                  splits: Sequence[str] = SPLITS) -> list[HistoryItem]:
    """The items of `item_ids` (oldest first; ids deleted meanwhile are skipped) with the kinds of
    `user_id`'s events on them in `splits`."""
    try:
        items = catalog.get_items(item_ids, field="history")
    except UnknownItem:
        items = catalog.get_items([i for i in item_ids if catalog.has_item(i)], field="history")
    kinds = catalog.event_kinds(user_id, splits) if user_id and catalog.has_user(user_id) else {}
    return with_kinds(items, kinds)
