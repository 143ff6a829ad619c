"""Readable category names, and the deepest category two items share.

Scientific category paths are one string of words with no separators ("Industrial & Scientific
Fasteners Collated Fasteners Collated Screws"). The catalog's own paths are the known nodes of
the tree: a path's name is what it adds to its longest known parent, cut to its last level
(a level ends with a plural noun: "Collated Fasteners | Collated Screws"). Two items share the
longest known path that is a prefix of both: a word prefix alone can stop mid-name ("… Lab").
Paths with explicit separators (" > ", "/", "|") are split on them.
"""
from __future__ import annotations

import re
from typing import Iterable

from explainer import attributes as attrs_mod
from explainer.text import clean_text
from ranker.evidence import common_root
from store.catalog import split_categories

_SEPARATORS = re.compile(r"\s*(?:>|/|\|)\s*")
MAX_CATEGORY_WORDS = 5


def _levels_of_rest(words: list[str]) -> list[list[str]]:
    """Split unseparated words into levels: a level ends after a plural noun that is not followed by
    a connective ("Rods & Studs" stays one level)."""
    levels: list[list[str]] = [[]]
    for i, w in enumerate(words):
        levels[-1].append(w)
        nxt = words[i + 1] if i + 1 < len(words) else ""
        low = w.lower().rstrip(",")
        plural = low.endswith("s") and not low.endswith(("ss", "us", "is")) and len(low) > 3
        if plural and nxt and nxt not in ("&", "and", ",") and not w.endswith(",") and nxt[:1].isupper():
            levels.append([])
        elif nxt.lower() in (low + "s", low + "es"):   # "Tubing, Pipe & Hose | Hoses": a singular then its plural
            levels.append([])
    return [lv for lv in levels if lv]


class CategoryNames:
    """Readable names for a catalog's category paths, and their shared ancestors."""

    def __init__(self, categories: Iterable[str], root: str = "Industrial & Scientific"):
        self.root = root
        # an item may have several paths ("Drama; Romance"): each is a category of its own
        self._paths = sorted({p for c in categories for p in split_categories(c)}, key=len)
        self._root_levels = common_root([p for p in self._paths if _SEPARATORS.search(p)])   # levels all share
        self._cache: dict[str, str] = {}

    def names(self, paths: Iterable[str]) -> str:
        """Readable names of several paths: "Drama and Romance"."""
        names = list(dict.fromkeys(n for n in (self.name(p) for p in paths) if n))
        return attrs_mod.join_values(names) if names else ""

    def _parent(self, path: str) -> str:
        parent = ""
        for p in self._paths:
            if len(p) < len(path) and path.startswith(p + " ") and len(p) > len(parent):
                parent = p
        return parent

    def name(self, path: str) -> str:
        path = (path or "").strip()
        if not path:
            return ""
        if path not in self._cache:
            self._cache[path] = clean_text(self._name(path))
        return self._cache[path]

    def _name(self, path: str) -> str:
        if _SEPARATORS.search(path):
            return [p for p in _SEPARATORS.split(path) if p][-1]
        parent = self._parent(path)
        base = parent if parent else (self.root if path.startswith(self.root + " ") else "")
        rest = path[len(base):].strip(" &,").split()
        if not rest:
            return path.split()[-1]
        leaf = _levels_of_rest(rest)[-1]
        if len(leaf) > MAX_CATEGORY_WORDS:   # no level boundary found (or free text): the last words
            leaf = leaf[-3:]
        while len(leaf) > 1 and (leaf[0] in ("&", "and", ",") or leaf[0].lower() == leaf[1].lower()):
            leaf = leaf[1:]   # "& Vacuum Gauges", "Aluminum Aluminum Channels"
        return " ".join(leaf).strip(" &,")

    def shared_path(self, a: str, b: str) -> str:
        """The deepest known category both paths are in, below the root ("" none)."""
        a, b = (a or "").strip(), (b or "").strip()
        if not a or not b:
            return ""
        if a.lower() == b.lower():
            return a
        if _SEPARATORS.search(a) and _SEPARATORS.search(b):
            la, lb = [p.strip() for p in _SEPARATORS.split(a)], [p.strip() for p in _SEPARATORS.split(b)]
            n = 0
            while n < min(len(la), len(lb)) and la[n].lower() == lb[n].lower():
                n += 1
            return " > ".join(la[:n]) if n > self._root_levels else ""
        best = ""
        for p in self._paths:
            if (a == p or a.startswith(p + " ")) and (b == p or b.startswith(p + " ")) and len(p) > len(best):
                best = p
        return "" if best in ("", self.root) else best

    def depth(self, path: str) -> int:
        """Levels below the root (a rough count for unseparated paths: known ancestors + 1)."""
        if _SEPARATORS.search(path):
            return len([p for p in _SEPARATORS.split(path) if p]) - self._root_levels
        return 1 + sum(1 for p in self._paths if len(p) < len(path) and path.startswith(p + " ") and p != self.root)
