"""The catalog's own attributes as facts: what the item shares with the cited history item, and
what it is.

Any catalog's `attributes` (free-form: strings, numbers, lists) can give a reason a shopper can
check: "both share the genres Drama and Romance", "both are from the 1990s", "the same size:
1.75 mm". Which attributes make good reasons is not known in advance, so they are ranked from
the catalog itself: ids and SKUs (nearly one value per item) and near-constant attributes (one
value almost everywhere) say nothing and come last; a per-catalog list of preferred attribute
names (ExplainerConfig.preferred_attributes) comes first. Numbers stated here are in the facts,
so the verifier allows them; any other number still fails.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from explainer.text import clean_text
from store.catalog import Item

MAX_LINKS = 2            # shared-attribute facts per item (a small model states two at most)
MAX_DESCRIPTIVE = 2      # own-attribute facts per item
MAX_VALUES = 3           # values named from one list-valued attribute
MAX_VALUE_CHARS = 40     # longer values are prose (descriptions), not a checkable reason
ID_LIKE_DISTINCT = 0.9   # distinct values / items with the attribute above this: an id, a SKU
NEAR_CONSTANT = 0.9      # share of the most common value above this: says nothing
_YEAR_KEY = re.compile(r"(?:^|[\s_-])year$|^year", re.I)


def label(key: str) -> str:
    """Readable attribute name: "release_year" -> "release year", "screenSize" -> "screen size"."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", clean_text(key)).replace("_", " ").replace("-", " ")
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in text.split())


def _singular(name: str) -> str:
    if name.endswith("ies") and len(name) > 4:
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss") and len(name) > 3:
        return name[:-1]
    return name


def _as_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return clean_text(str(v))


def values_of(value) -> list[str]:
    """An attribute's values as display strings (booleans and empty values dropped)."""
    raw = value if isinstance(value, list) else [value]
    out = []
    for v in raw:
        if isinstance(v, bool) or v is None:
            continue
        t = _as_text(v)
        if t and t.lower() not in (o.lower() for o in out):
            out.append(t)
    return out


def _year(key: str, values: list[str]) -> int | None:
    if len(values) != 1 or not _YEAR_KEY.search(label(key)):
        return None
    m = re.fullmatch(r"(\d{4})(?:[-/.]\d{1,2}){0,2}", values[0])
    return int(m.group(1)) if m and 1000 <= int(m.group(1)) <= 2999 else None


def join_values(values: Sequence[str]) -> str:
    values = list(values)[:MAX_VALUES]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


@dataclass(frozen=True)
class AttributeProfile:
    """How an attribute is spread over the catalog."""

    key: str
    items: int               # items that have it
    distinct: int            # distinct values (years counted by decade)
    top_share: float         # share of those items holding its most common value
    long_text: bool          # values are mostly prose

    @property
    def informative(self) -> bool:
        id_like = self.items >= 10 and self.distinct / self.items > ID_LIKE_DISTINCT
        constant = self.items >= 10 and self.top_share > NEAR_CONSTANT
        return not (id_like or constant or self.long_text)


class AttributeStats:
    """Catalog-wide attribute profiles and their order of preference."""

    def __init__(self, items: Iterable[Item], preferred: Sequence[str] = ()):
        counts: dict[str, Counter] = {}
        n_items: Counter = Counter()
        lengths: dict[str, list[int]] = {}
        for item in items:
            for key, value in (item.attributes or {}).items():
                vals = values_of(value)
                if not vals:
                    continue
                y = _year(key, vals)
                keys = [f"{y // 10 * 10}s"] if y is not None else [v.lower() for v in vals]
                n_items[key] += 1
                counts.setdefault(key, Counter()).update(set(keys))
                lengths.setdefault(key, []).extend(len(v) for v in vals)
        self.value_counts = counts
        self.profiles = {
            k: AttributeProfile(k, n_items[k], len(c), c.most_common(1)[0][1] / n_items[k],
                                sorted(lengths[k])[len(lengths[k]) // 2] > MAX_VALUE_CHARS)
            for k, c in counts.items()}
        self.preferred = [p.lower() for p in preferred]

    def rank(self, key: str) -> tuple:
        """Sort key: preferred names first (in the configured order), then informative attributes,
        the more specific first (more distinct values per item: sharing a director says more than
        sharing a decade), ids and near-constant attributes last."""
        low = key.lower()
        pref = self.preferred.index(low) if low in self.preferred else len(self.preferred)
        prof = self.profiles.get(key)
        informative = prof.informative if prof else True
        specificity = prof.distinct / prof.items if prof else 0.0
        return (pref, not informative, -specificity, low)

    def value_share(self, key: str, values: Sequence[str]) -> float:
        """Share of the items with `key` that hold the rarest of `values`: sharing a rare value (a
        director) says more than sharing a common one (the colour black)."""
        prof, counts = self.profiles.get(key), self.value_counts.get(key)
        if not prof or not counts or not values:
            return 1.0
        return min(counts.get(v.lower(), 0) for v in values) / prof.items

    def link_rank(self, key: str, values: Sequence[str]) -> tuple:
        pref, uninformative, *_ = self.rank(key)
        return (pref, uninformative, round(self.value_share(key, values), 2), key.lower())

    def informative(self, key: str) -> bool:
        prof = self.profiles.get(key)
        return (prof.informative if prof else True) or key.lower() in self.preferred


@dataclass(frozen=True)
class AttributeFact:
    key: str
    values: tuple[str, ...]   # the values stated ("Drama", "Romance"; "1990s"; "1.75 mm")
    shared: bool              # a link: the cited history item has them too
    line: str                 # the fact as a sentence (prompt, audit, verifier)
    clause: str               # the same for the fallback template, after "you may like the Y: "


def _q(name: str) -> str:
    return f'the "{name}"'


def link_facts(item: Item, anchor: Item, item_name: str, anchor_name: str,
               stats: AttributeStats | None, already_said: str = "") -> list[AttributeFact]:
    """Attributes the item shares with the anchor, best first. Ids and near-constant attributes
    ("both are in English" in an all-English catalog) are no reason unless configured as preferred;
    values `already_said` (the shared category's name) are not repeated."""
    out: list[tuple[tuple, AttributeFact]] = []
    other = {k.lower(): v for k, v in (anchor.attributes or {}).items()}
    said = {w.strip().lower() for w in re.split(r",| and ", already_said) if w.strip()}
    for key, value in (item.attributes or {}).items():
        if stats is not None and not stats.informative(key):
            continue
        mine, theirs = values_of(value), values_of(other.get(key.lower()))
        if not mine or not theirs or len(max(mine, key=len)) > MAX_VALUE_CHARS:
            continue
        name = label(key)
        y1, y2 = _year(key, mine), _year(key, theirs)
        if y1 is not None and y2 is not None:
            if y1 // 10 != y2 // 10:
                continue
            decade = f"{y1 // 10 * 10}s"
            fact = AttributeFact(key, (decade,), True,
                                 f'The "{item_name}" and {_q(anchor_name)} are both from the {decade}.',
                                 f"both are from the {decade}")
        elif isinstance(value, list) or isinstance((anchor.attributes or {}).get(key), list):
            low = {t.lower() for t in theirs}
            shared = [v for v in mine if v.lower() in low]
            if not [v for v in shared if v.lower() not in said]:
                continue
            shared = shared[:MAX_VALUES]
            lab = name if len(shared) > 1 else _singular(name)
            vals = join_values(shared)
            fact = AttributeFact(key, tuple(shared), True,
                                 f'The "{item_name}" and {_q(anchor_name)} share the {lab} {vals}.',
                                 f"both have the {lab} {vals}")
        else:
            if mine[0].lower() != theirs[0].lower() or mine[0].lower() in said:
                continue
            fact = AttributeFact(key, (mine[0],), True,
                                 f'The "{item_name}" has the same {name} as {_q(anchor_name)}: {mine[0]}.',
                                 f"both have the same {name}, {mine[0]}")
        out.append(((stats.link_rank(key, fact.values) if stats else (0, False, 0, key.lower())), fact))
    out.sort(key=lambda t: t[0])
    return [f for _, f in out[:MAX_LINKS]]


def descriptive_facts(item: Item, item_name: str, stats: AttributeStats | None,
                      skip: Iterable[str] = ()) -> list[AttributeFact]:
    """What the item is, from its informative attributes not already stated as links."""
    skip = {s.lower() for s in skip}
    out: list[tuple[tuple, AttributeFact]] = []
    for key, value in (item.attributes or {}).items():
        vals = values_of(value)
        if key.lower() in skip or not vals or len(max(vals, key=len)) > MAX_VALUE_CHARS:
            continue
        if stats is not None and not stats.informative(key):
            continue
        name = label(key)
        y = _year(key, vals)
        if y is not None:
            fact = AttributeFact(key, (vals[0],), False, f'The "{item_name}" is from {vals[0]}.',
                                 f"from {vals[0]}")
        else:
            shown = vals[:MAX_VALUES]
            lab = name if len(shown) > 1 else _singular(name) if isinstance(value, list) else name
            fact = AttributeFact(key, tuple(shown), False,
                                 f'The "{item_name}" has the {lab} {join_values(shown)}.',
                                 f"it has the {lab} {join_values(shown)}")
        out.append(((stats.rank(key) if stats else (0, False, 0, key.lower())), fact))
    out.sort(key=lambda t: t[0])
    return [f for _, f in out[:MAX_DESCRIPTIVE]]


def shares_attribute(item: Item, other: Item, stats: AttributeStats | None = None) -> bool:
    """An informative attribute value in common (a year: the same decade): a nameable link for anchor choice."""
    return bool(link_facts(item, other, "a", "b", stats))


def states_link(text: str, facts) -> bool:
    """The text names a shared attribute value (evaluation's attribute-link rate). A value that is also
    the shared category's name ("Animation" as a genre and as the category) does not count: the
    category link states it anyway."""
    low = text.lower()
    category = (getattr(facts, "shared_category", "") or "").lower()
    return any(v.lower() in low and v.lower() not in category for v in getattr(facts, "shared_values", ()))
