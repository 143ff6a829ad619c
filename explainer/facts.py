"""Facts: what the system knows about why an item fits a shopper, computed before any LLM call.

The LLM only verbalises these; the verifier checks its text against them. Names are
shortened here (long Amazon titles copied verbatim hit max_tokens mid-sentence), and the
same short names are used in the prompt, the verifier and the template fallback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from ranker.types import Candidate
from store.catalog import Item

_SEGMENT_CUT = re.compile(r"\s*(?:,|\(|\)|\[|\]|;|:| - | – | — |\|| with | for | w/ )\s*", re.I)
_MODEL_CODE = re.compile(r"^(?=[^ ]*\d)(?=[^ ]*[A-Za-z])[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|<\|endoftext\|>", re.I)
_SIZE_WORD = re.compile(r"\d")   # sizes/codes: kept only when the name would be empty without them
MAX_NAME_WORDS = 5


def clean_text(text: str) -> str:
    """Catalog text as inert data: one line, no control characters, no chat special tokens, no double quotes."""
    text = _SPECIAL_TOKENS.sub(" ", text or "")
    text = _CONTROL.sub(" ", text).replace('"', "'").replace("`", "'")
    return re.sub(r"\s+", " ", text).strip()


_PACKAGING = frozenset("pack packs pcs pc piece pieces each count ct lot lots set sets pair pairs roll rolls of".split())


def _name_words(segment: str, brand_words: list[str]) -> list[str]:
    words = segment.split()
    while words and brand_words and [w.lower() for w in words[:len(brand_words)]] == brand_words:
        words = words[len(brand_words):]
    words = [w for w in words if not _MODEL_CODE.match(w)]
    # packaging words and counts at either end ("300 Pieces LED Diode", "Package 1 Piece") name nothing
    def edge(w: str) -> bool:
        return w.lower() in _PACKAGING or bool(re.fullmatch(r"[\d.,/x+#-]+", w))
    while words and edge(words[0]):
        words = words[1:]
    while words and edge(words[-1]):
        words = words[:-1]
    return words


def short_name(title: str, brand: str = "", max_words: int = MAX_NAME_WORDS) -> str:
    """A few words that name the product: the head of the title's first naming segment, brand,
    model codes and pack counts dropped.

    "PORTER-CABLE 740001201 4 1/2-Inch by 10yd 120 Grit Adhesive-Backed Sanding Roll" -> "Grit Adhesive-Backed Sanding Roll"
    "Gorilla Tape, Black Duct Tape, 1.88 x 35 yd" -> "Black Duct Tape"
    """
    title = clean_text(title)
    bw = clean_text(brand).lower().split()
    segments = [s for s in _SEGMENT_CUT.split(title) if s and s.strip()] or [title]
    candidates = [_name_words(seg, bw) for seg in segments]
    words = next((w for w in candidates if len(w) >= 2), max(candidates, key=len))
    # the product noun sits at the end of the segment; drop leading size/count words
    tail = words[-max_words:]
    while len(tail) > 2 and _SIZE_WORD.search(tail[0]):
        tail = tail[1:]
    while len(tail) > 1 and tail[0].lower() in ("the", "a", "an", "and", "of", "for", "with"):
        tail = tail[1:]   # the frame says "the <name>"
    name = " ".join(tail).strip(" .-&")
    if not name:
        name = " ".join(title.split()[:max_words])
    return name


class CategoryNames:
    """Readable category names from unseparated paths ("Industrial & Scientific ... Sanding Rolls").

    A path's name is what it adds to the longest other catalog path that is a prefix of it
    (its parent), e.g. "Sanding Rolls"; without a known parent, its last three words.
    """

    def __init__(self, categories: Iterable[str], root: str = "Industrial & Scientific"):
        self.root = root
        self._paths = sorted({c.strip() for c in categories if c and c.strip()}, key=len)
        self._cache: dict[str, str] = {}

    def name(self, path: str) -> str:
        path = (path or "").strip()
        if not path:
            return ""
        if path in self._cache:
            return self._cache[path]
        parent = ""
        for p in self._paths:
            if len(p) < len(path) and path.startswith(p + " ") and len(p) > len(parent):
                parent = p
        rest = path[len(parent):].strip() if parent else ""
        if not rest or rest == path:
            body = path[len(self.root):].strip() if path.startswith(self.root) else path
            rest = " ".join(body.split()[-3:]) if body else path
        rest = rest.strip(" &,")
        self._cache[path] = clean_text(rest)
        return self._cache[path]


@dataclass(frozen=True)
class ItemFacts:
    """The facts for one (shopper, item) pair, and the names used to state them."""

    item_id: str
    item_name: str                   # short name of the recommended item
    item_title: str                  # full cleaned title (verifier: "you bought <the item>")
    anchor_id: str                   # the history item the justification cites ("" if the history is empty)
    anchor_name: str
    brand: str                       # the item's brand ("" unknown)
    same_brand: bool                 # the anchor has the same brand
    category: str                    # readable category name of the item
    shared_category: str             # readable category the item shares with the anchor ("" none)
    price: float | None
    co_bought: bool                  # other shoppers bought the anchor and the item
    evidence_ids: tuple[str, ...]    # history items the facts rely on (anchor first)
    lines: tuple[str, ...]           # the facts as sentences, for the prompt and the audit

    def text(self) -> str:
        return " ".join(self.lines)


def format_price(price: float | None) -> str:
    return "" if price is None else f"${price:,.2f}"


class CoPurchases:
    """Which items were bought by the same shoppers: item id -> set of user ids.

    Built from the train/valid/live events; the test split stays held out, so an evaluation
    never cites the very purchase it is scored on.
    """

    MIN_SHOPPERS = 2   # "other shoppers bought both" needs at least this many shoppers

    def __init__(self, sequences: dict[str, list[tuple[str, str]]]):
        self._buyers: dict[str, set[str]] = {}
        for user, seq in sequences.items():
            for item_id, split in seq:
                if split != "test":
                    self._buyers.setdefault(item_id, set()).add(user)

    def shoppers(self, a: str, b: str) -> int:
        return len(self._buyers.get(a, set()) & self._buyers.get(b, set()))

    def bought_together(self, a: str, b: str) -> bool:
        return self.shoppers(a, b) >= self.MIN_SHOPPERS


def compute_facts(history: Sequence[Item], item: Item, candidate: Candidate | None,
                  categories: CategoryNames, co: CoPurchases | None = None) -> ItemFacts:
    """Facts from the item's attributes and the ranker's evidence (the strongest cited history item)."""
    by_id = {h.id: h for h in history}
    anchor: Item | None = None
    if candidate is not None:
        cited = [by_id[ev.item_id] for ev in candidate.evidence if ev.item_id in by_id and ev.item_id != item.id]
        # among the cited items, one that shares something nameable makes a reason a person can check;
        # next best, one that other shoppers bought together with the item
        sharing = [h for h in cited if _shares(item, h)]
        together = [h for h in cited if co is not None and co.bought_together(h.id, item.id)]
        anchor = (sharing or together or cited or [None])[0]
    if anchor is None:   # no usable evidence: the most recent purchase sharing something, else the latest
        others = [h for h in history if h.id != item.id]
        sharing = [h for h in others if (h.brand and h.brand.lower() == item.brand.lower())
                   or (h.category and h.category == item.category)]
        anchor = (sharing or others or [None])[-1]

    item_name = short_name(item.title, item.brand)
    brand = clean_text(item.brand)
    category = categories.name(item.category)
    lines: list[str] = []
    anchor_name = ""
    same_brand = False
    co_bought = False
    shared_cat = ""
    if anchor is not None:
        anchor_name = short_name(anchor.title, anchor.brand)
        if anchor_name.lower() == item_name.lower():   # two products with the same head noun: add the brand
            anchor_name = f"{clean_text(anchor.brand)} {anchor_name}".strip()
            item_name = f"{brand} {item_name}".strip()
        if anchor_name.lower() == item_name.lower():   # variants of one product: their titles tell them apart
            anchor_name = " ".join(clean_text(anchor.title).replace(",", " ").split()[:14])
            item_name = " ".join(clean_text(item.title).replace(",", " ").split()[:14])
        lines.append(f'You bought the "{anchor_name}".')
        same_brand = bool(brand) and brand.lower() == clean_text(anchor.brand).lower()
        if item.category and item.category.strip() == anchor.category.strip():
            shared_cat = category
        else:
            common = _common_prefix(item.category, anchor.category)
            if common and common != categories.root and len(common) > len(categories.root) + 3:
                shared_cat = categories.name(common)
        if shared_cat:
            lines.append(f'The "{item_name}" is in the same category as the "{anchor_name}": {shared_cat}.')
        if same_brand:
            lines.append(f'The "{item_name}" is by {brand}, like the "{anchor_name}".')
        co_bought = co is not None and co.bought_together(anchor.id, item.id)
        if co_bought:
            lines.append(f'Other shoppers who bought the "{anchor_name}" also bought the "{item_name}".')
    if brand and not same_brand:
        lines.append(f'The "{item_name}" is by {brand}.')
    if category and not shared_cat:
        lines.append(f'The "{item_name}" is in the category {category}.')
    if item.price is not None:
        lines.append(f'The "{item_name}" costs {format_price(item.price)}.')
    return ItemFacts(
        item_id=item.id, item_name=item_name, item_title=clean_text(item.title),
        anchor_id=anchor.id if anchor else "", anchor_name=anchor_name, brand=brand, same_brand=same_brand,
        category=category, shared_category=shared_cat, price=item.price, co_bought=co_bought,
        evidence_ids=(anchor.id,) if anchor else (), lines=tuple(lines))


def _shares(item: Item, other: Item) -> bool:
    """Same brand, or categories that agree beyond the catalog root."""
    if item.brand.strip() and item.brand.strip().lower() == other.brand.strip().lower():
        return True
    common = _common_prefix(item.category, other.category)
    return bool(common) and len(common.split()) > 3


def _common_prefix(a: str, b: str) -> str:
    wa, wb = (a or "").split(), (b or "").split()
    n = 0
    while n < min(len(wa), len(wb)) and wa[n].lower() == wb[n].lower():
        n += 1
    while n > 0 and wa[n - 1] in {"&", "and", ","}:
        n -= 1
    return " ".join(wa[:n])
