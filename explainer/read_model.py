"""The explainer's read model of the catalog: what facts, names and the verifier need to know about
the catalog as a whole, held in memory so that no request reads the store for them.

    categories     readable category names and shared ancestors (explainer.categories.CategoryNames)
    verifier       the Verifier over every brand in the catalog (a brand the text names must be the item's)
    makers         which brand may be stated as an item's maker (explainer.makers.Makers)
    attributes     how informative each attribute is (explainer.attributes.AttributeStats)
    co_purchases   which items the same shoppers bought (explainer.links.CoPurchases)
    name(item)     an item's short readable name

The explainer is handed this object, never a store `Catalog`. `from_catalog` builds it once, at
start-up (about a second on the Scientific data); `add_items` keeps it current after an upsert,
made here or by another replica (server/replicas.py), rebuilding only the tables the new items
change and never the co-purchase table (events are unchanged by an upsert). Deleted items stay on
purpose: an old history still names them, so a delete needs no call.

Live purchases join the co-purchase table as they are recorded, per process: `add_events` for the
events this process wrote (RecordEvents), `refresh_co_purchases` for those another process or
replica wrote, read back from the store when its notice arrives (server/replicas.py), or the whole
table again when notices may have been lost. Adding a purchase updates both what "N other shoppers
bought both" counts and each item's own buyers, which the thresholds weigh it against.
"""
from __future__ import annotations

import threading
from typing import Iterable, Protocol, Sequence

from explainer.attributes import AttributeStats
from explainer.categories import CategoryNames
from explainer.links import CoPurchases
from explainer.reply_names import item_name
from explainer.verifier import Verifier
from store.catalog import Event, Item

# "other shoppers bought both" counts purchases in these splits (the test split stays held out, so
# an evaluation never cites the very purchase it is scored on); a view or a rating is no purchase
CO_PURCHASE_SPLITS = ("train", "valid", "live")
CO_PURCHASE_KINDS = ("purchase",)


class CatalogSource(Protocol):
    """What `from_catalog` reads (a store.catalog.Catalog has it)."""

    def all_items(self, include_deleted: bool = False) -> list[Item]: ...

    def sequences(self, splits: Sequence[str] = ..., kinds: Sequence[str] | None = ...,
                  users: Sequence[str] | None = ...) -> dict[str, list[tuple[str, str]]]: ...


class CatalogReadModel:
    """Catalog-wide tables for the explainer; `add_items` keeps them current (not thread-safe: the
    server calls it from its one upsert path and its one replica follower). The co-purchase updates
    (`add_events`, `refresh_co_purchases`) may come from any thread: they take their own lock, and
    a reader sees a purchase either counted or not yet."""

    def __init__(self, items: Iterable[Item], co_purchases: CoPurchases, preferred_attributes: Sequence[str] = ()):
        self.preferred_attributes = tuple(preferred_attributes)
        self.co_purchases = co_purchases
        # purchases recorded while the table is rebuilt from the store are applied to the new one too
        self._co_lock = threading.Lock()
        self._pending: list[tuple[str, str]] | None = None
        self._items: dict[str, Item] = {i.id: i for i in items}
        self._category_values = {i.category for i in self._items.values() if i.category}
        self._brand_values = {i.brand for i in self._items.values() if i.brand}
        self.categories = self._build_categories()
        self.verifier = self._build_verifier()
        self.makers = self.verifier.makers   # built from the same brands
        self.attributes = self._build_attributes()

    @classmethod
    def from_catalog(cls, catalog: CatalogSource, preferred_attributes: Sequence[str] = ()) -> "CatalogReadModel":
        """Every item (deleted ones too) and the co-purchases of the catalog as it is now."""
        return cls(catalog.all_items(include_deleted=True), _co_purchases_of(catalog), preferred_attributes)

    def add_events(self, events: Iterable[Event]) -> int:
        """Events just recorded: the purchases among them (in CO_PURCHASE_SPLITS) join the co-purchase
        table. Returns how many did."""
        return self._add_purchases((e.user_id, e.item_id) for e in events
                                   if e.kind in CO_PURCHASE_KINDS and e.split in CO_PURCHASE_SPLITS)

    def refresh_co_purchases(self, catalog: CatalogSource, user_ids: Sequence[str] | None = None) -> None:
        """Purchases another process recorded, read back from the store: those of `user_ids`, or
        with None the whole table again (a notice may have been lost; purchases this process adds
        meanwhile are applied to the new table as well)."""
        if user_ids is not None:
            seqs = catalog.sequences(CO_PURCHASE_SPLITS, kinds=CO_PURCHASE_KINDS, users=user_ids)
            self._add_purchases((u, item) for u, seq in seqs.items() for item, _split in seq)
            return
        with self._co_lock:
            self._pending = []
        try:
            table = _co_purchases_of(catalog)
        except BaseException:
            with self._co_lock:
                self._pending = None
            raise
        with self._co_lock:
            for user_id, item_id in self._pending or ():
                table.add(user_id, item_id)
            self.co_purchases, self._pending = table, None

    def _add_purchases(self, pairs: Iterable[tuple[str, str]]) -> int:
        n = 0
        with self._co_lock:
            for user_id, item_id in pairs:
                self.co_purchases.add(user_id, item_id)
                if self._pending is not None:
                    self._pending.append((user_id, item_id))
                n += 1
        return n

    def name(self, item: Item) -> str:
        """The item's short readable name (the reply's own names are made distinct in explainer.facts)."""
        return item_name(item, self.categories)

    def __len__(self) -> int:
        return len(self._items)

    def add_items(self, items: Sequence[Item]) -> None:
        """New or changed items join the tables: the category names are rebuilt only for a new
        category, the verifier only for a new brand, the attribute profiles only when attributes
        are added or changed. The co-purchase table is kept."""
        changed = [i for i in items if self._items.get(i.id) != i]
        if not changed:
            return
        had_attributes = any(self._items[i.id].attributes for i in changed if i.id in self._items)
        new_categories = {i.category for i in changed if i.category} - self._category_values
        new_brands = {i.brand for i in changed if i.brand} - self._brand_values
        self._items.update({i.id: i for i in changed})
        if new_categories:
            self._category_values |= new_categories
            self.categories = self._build_categories()
        if new_brands:
            self._brand_values |= new_brands
            self.verifier = self._build_verifier()
            self.makers = self.verifier.makers   # built from the same brands
        if had_attributes or any(i.attributes for i in changed):
            self.attributes = self._build_attributes()

    def _build_categories(self) -> CategoryNames:
        return CategoryNames(self._category_values)

    def _build_verifier(self) -> Verifier:
        return Verifier(self._brand_values)

    def _build_attributes(self) -> AttributeStats:
        return AttributeStats(self._items.values(), self.preferred_attributes)


def _co_purchases_of(catalog: CatalogSource) -> CoPurchases:
    return CoPurchases(catalog.sequences(CO_PURCHASE_SPLITS, kinds=CO_PURCHASE_KINDS))
