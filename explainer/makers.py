"""Which brand a justification may state as an item's maker ("by Gorilla").

The catalog's brand field is not always the maker: it can hold a product line ("Cubitron" on
"3M Hookit Film Disc"), a reseller ("TapeCase" on "3M 468MP Adhesive Transfer Tape"), a parent
company ("Berry Global" on "Nashua 322 Foil Tape") or a placeholder ("Generic", "Unknown").
Saying "by Cubitron" of a 3M disc is false to a shopper even though the field says so, so the
facts state a brand only when nothing in the item's own data contradicts it:

  - a placeholder ("Generic", "Unknown", "N/A", ...) is never stated;
  - a brand the title names is stated (the title and the field agree);
  - a brand the title does not name, on a title that starts with another catalog brand
    ("3M ...", "Scotch-Brite ...", "Spears ..."), is not: the title says who makes it, and the
    field is something else;
  - otherwise the field is the only evidence, and nothing contradicts it: it is stated.

Nothing is inferred: a dropped brand is simply not said (the title's brand is not promoted to the
maker either, since a title can start with a line name too).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterable, TypeVar

from explainer.text import clean_text
from store.catalog import Item

ItemT = TypeVar("ItemT", bound=Item)

PLACEHOLDERS = frozenset({"generic", "unknown", "unbranded", "none", "na", "n/a", "no brand", "nobrand",
                          "does not apply", "other", "various", "oem", "null",
                          "3d"})   # "3D" is the start of "3D printer filament" titles, not a maker
_TITLE_WORDS = 4
# what follows a maker's own name in a company name ("Spears Manufacturing", "Loctite Corp.")
_COMPANY = frozenset("inc co corp corporation company companies llc ltd limited gmbh manufacturing mfg group industries"
                     " international intl products brands enterprises usa america the".split())     # a brand at the title's start is looked for in its first few words


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _first_word_key(brand: str) -> str:
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9&'.\-]*", brand)
    words = [w for w in words if w.lower() not in ("the", "a", "an")]
    return _key(words[0]) if words else ""


class Makers:
    """The catalog's brands, and the rule above. `brands`: every brand in the catalog."""

    def __init__(self, brands: Iterable[str]):
        self._whole: set[str] = set()
        self._first: set[str] = set()
        self._memo = functools.lru_cache(maxsize=65_536)(self._maker)   # per instance: goes with it
        for b in {clean_text(b) for b in brands if b}:
            if b.lower() in PLACEHOLDERS or len(_key(b)) < 2:
                continue
            self._whole.add(_key(b))
            words = b.split()
            first = _first_word_key(b)
            if len(words) > 1 and all(_key(w) in _COMPANY for w in words[1:]) and len(first) >= 3:
                self._first.add(first)   # "Spears" of "Spears Manufacturing", "Hillman" of "Hillman Group"

    def maker(self, title: str, brand: str) -> str:
        """The brand to state as the maker of an item with this title and brand field ("" none).
        Memoised: every reply restates its history and items, and the answer depends only on the
        arguments and this instance's brands (a new brand builds a new Makers)."""
        return self._memo(title, brand)

    def _maker(self, title: str, brand: str) -> str:
        b = clean_text(brand)
        if not b or b.lower() in PLACEHOLDERS or len(_key(b)) < 2:
            return ""
        if self.names_brand(title, b):
            return b
        return "" if self.title_brand(title, b) else b

    def restate(self, item: ItemT) -> ItemT:
        """The item with only the brand that may be stated (a copy when it differs)."""
        b = self.maker(item.title, item.brand)
        return item if b == item.brand else dataclasses.replace(item, brand=b)

    @staticmethod
    def names_brand(title: str, brand: str) -> bool:
        """The title names the brand: all of it, or its first word ("Rubbermaid" of "Rubbermaid
        Commercial Products")."""
        t = _key(title)
        first = _first_word_key(brand)
        return _key(brand) in t or (len(first) >= 3 and first in t)

    def title_brand(self, title: str, own: str = "") -> str:
        """The catalog brand (not `own`) that the title starts with, as the title writes it ("" none).
        A hyphenated first word counts by its first part too ("Scotch-Brite" -> Scotch)."""
        words = re.findall(r"[A-Za-z0-9][A-Za-z0-9&'.\-]*", clean_text(title))[:_TITLE_WORDS]
        own_key = _key(own)
        for n in range(len(words), 0, -1):
            k = _key(" ".join(words[:n]))
            if k and k != own_key and (k in self._whole or (n == 1 and k in self._first)):
                return " ".join(words[:n])
        if words and "-" in words[0]:
            part = _key(words[0].split("-")[0])
            if part and part != own_key and part in self._whole:
                return words[0].split("-")[0]
        return ""
