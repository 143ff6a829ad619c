"""Naming, the second step of the facts: the short name of every item a reply mentions.

The recommended items and the history items they cite (their anchors) are named together, and the
names are made distinct across the whole reply (explainer/names.py), so the prompt, the verifier
and the template all use the same clean names and no two products share one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from explainer.categories import CategoryNames
from explainer.names import distinct_names, short_name
from explainer.text import clean_text
from store.catalog import Item


def item_name(item: Item, categories: CategoryNames) -> str:
    """One item's short name on its own (before the reply's names are made distinct)."""
    cat = categories.name(item.category)
    name = short_name(item.title, item.brand, cat)
    root_words = {w.lower() for w in re.findall(r"[A-Za-z]+", categories.root)}
    if {w.lower() for w in re.findall(r"[A-Za-z]+", item.title)} <= root_words:   # a title that is only the catalog's name: its brand and category
        name = short_name("", item.brand, cat)
    return name


@dataclass(frozen=True)
class ReplyNames:
    """The names of one reply, in the order of its items."""

    items: tuple[str, ...]      # each recommended item's name
    anchors: tuple[str, ...]    # each item's anchor's name ("" for an item with no anchor)


def name_reply(items: Sequence[Item], anchors: Sequence[Item | None], categories: CategoryNames) -> ReplyNames:
    """Distinct names for the items and their anchors (anchors[n] is items[n]'s, or None).

    Two versions of one id in a reply are two products; anchors with one title are one product to
    the shopper (bought twice, under two listings), so they share one name."""
    involved: dict[str, Item] = {}
    keys: list[str] = []
    for n, item in enumerate(items):
        key = item.id if involved.get(item.id, item) == item else f"{item.id}#{n}"   # two versions of one id
        involved[key] = item
        keys.append(key)
    anchor_key = {a.id: (a.id if a.id in involved else "t:" + clean_text(a.title).lower())
                  for a in anchors if a is not None}
    for anchor in anchors:
        if anchor is not None:
            involved.setdefault(anchor_key[anchor.id], anchor)
    base = {i: item_name(it, categories) for i, it in involved.items()}
    names = distinct_names({i: (it.title, it.brand) for i, it in involved.items()}, base)
    return ReplyNames(tuple(names[k] for k in keys),
                      tuple(names[anchor_key[a.id]] if a is not None else "" for a in anchors))


_LISTING = re.compile(r"\s*\(listing \d+\)$")


def variant_words(item_nm: str, anchor_nm: str) -> str:
    """The words distinct_names added to the item's name beyond the shared base ("in Blue", "(3 mm)").

    A "(listing N)" tag only tells two same-named listings apart: it says nothing a shopper could
    call a variant ("in 2"), so it gives no words and the reply says "another version of"."""
    if _LISTING.search(item_nm) or _LISTING.search(anchor_nm):
        return ""
    n = 0
    while n < min(len(item_nm), len(anchor_nm)) and item_nm[n].lower() == anchor_nm[n].lower():
        n += 1
    if n == len(item_nm):   # the item's name adds nothing to the anchor's ("Tek Screws" of "Tek Screws (1 inch)")
        return ""           # (its last word is no variant: "the same product in Screws")
    while n > 0 and item_nm[n - 1] not in " (":   # back to a word boundary
        n -= 1
    tag = item_nm[n:].strip()
    if tag.startswith("in "):
        return tag
    tag = tag.strip("()")
    return f"in {tag}" if tag else ""
