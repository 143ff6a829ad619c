"""Storage: the SQLite catalog (items, users, events, feedback) and ingestion."""
from store.errors import IngestError, StoreError, UnknownItem, UnknownUser
from store.catalog import Catalog, Item, Event

__all__ = ["Catalog", "Item", "Event", "IngestError", "StoreError", "UnknownItem", "UnknownUser"]
