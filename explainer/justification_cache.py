"""Justifications already written, so a repeated Explain / Recommend(explain) costs no LLM call.

Key: what the LLM's answer depends on. The shopper's state (the whole history with its event
kinds, in order), the item and its facts (which hold its catalog text, price and link to the
history), the prompt template's version, the served model and the sampling settings. Any change
to one of them is a different key, so an entry can never answer for a changed state; the
explicit invalidations below only free the memory of entries that can no longer be asked for:

- new events for a user: `forget_user(user_id)`;
- an upsert or delete of an item: `forget_items(ids)` (entries for it, and entries whose
  history holds it: its name in the prompt may have changed);
- a new model (LLM or ranker): `clear()`.

Only justifications the LLM path produced are kept (source "llm", or the template after every
sample failed the verifier: asking again would spend the same tokens). Templates written because
the LLM was down, slow or off are never kept, so the next call tries the LLM again.

Bounded LRU, in memory only: a restart starts empty (the first request after it pays one LLM
call per item, which is what a persisted cache would save; not worth a store table today).
"""
from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Sequence

from explainer.types import FALLBACK_VERIFIER, SOURCE_LLM, Justification
from ranker.cache import LRUCache

if TYPE_CHECKING:
    from explainer.facts import ItemFacts
    from store.catalog import Item


def cacheable(j: Justification) -> bool:
    return j.source == SOURCE_LLM or j.fallback_reason == FALLBACK_VERIFIER


class JustificationCache:
    def __init__(self, max_entries: int = 50_000):
        self._lru: LRUCache[Justification] = LRUCache(max_entries)
        self._lock = threading.Lock()

    @staticmethod
    def history_state(history: Sequence["Item"]) -> tuple:
        """The shopper's state as the explainer sees it: each history item (id, what was done with
        it, the names the prompt and verifier use), in order."""
        return tuple((h.id, tuple(getattr(h, "kinds", ()) or ()), h.title, h.brand) for h in history)

    @staticmethod
    def key(user_id: str | None, state: tuple, facts: "ItemFacts", template: str, model: str,
            sampling: tuple) -> tuple:
        return (user_id or "", state, facts.item_id, facts, template, model, sampling)

    def get(self, key: tuple) -> Justification | None:
        j = self._lru.get(key)
        return None if j is None else dataclasses.replace(j, cached=True)

    def put(self, key: tuple, j: Justification) -> None:
        if cacheable(j):
            self._lru.put(key, dataclasses.replace(j, cached=False))

    # -- invalidation (memory only: a changed state is already a different key) ---------------
    def forget_user(self, user_id: str) -> int:
        return self._lru.discard_where(lambda k: k[0] == user_id)

    def forget_users(self, user_ids: Sequence[str]) -> int:
        """forget_user for each, in one pass over the entries (a pass holds the lock: 14 ms at 50,000)."""
        users = set(user_ids)
        return self._lru.discard_where(lambda k: k[0] in users)

    def forget_items(self, item_ids: Sequence[str]) -> int:
        ids = set(item_ids)
        return self._lru.discard_where(lambda k: k[2] in ids or any(h[0] in ids for h in k[1]))

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)

    def stats(self) -> dict:
        return self._lru.stats()
