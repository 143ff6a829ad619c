"""Facts: what the system knows about why an item fits a shopper, computed before any LLM call.

The LLM only verbalises these; the verifier checks its text against them. Names are
shortened here (long Amazon titles copied verbatim hit max_tokens mid-sentence), and the
same short names are used in the prompt, the verifier and the template fallback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from explainer import attributes as attrs_mod
from explainer.actions import action_for, kinds_of
from ranker.evidence import category_levels, common_root
from ranker.types import Candidate
from store.catalog import Item, split_categories

_SEGMENT_CUT = re.compile(r"\s*(?:,|\(|\)|\[|\]|;|:| - | – | — |\|| with | for | w/ )\s*", re.I)
_MODEL_CODE = re.compile(r"^(?=[^ ]*\d)(?=[^ ]*[A-Za-z])[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|<\|endoftext\|>", re.I)
_LEVELS = re.compile(r"\s>\s|/")    # explicit category level separators
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
        # an item may have several paths ("Drama; Romance"): each is a category of its own
        self._paths = sorted({p for c in categories for p in split_categories(c)}, key=len)
        self._cache: dict[str, str] = {}
        # catalogs with explicit level separators ("Movies > Drama"): the levels (almost) all share
        self.root_levels = common_root([p for p in self._paths if _LEVELS.search(p)])

    def names(self, paths: Iterable[str]) -> str:
        """Readable names of several paths: "Drama and Romance"."""
        names = list(dict.fromkeys(n for n in (self.name(p) for p in paths) if n))
        return attrs_mod.join_values(names) if names else ""

    def name(self, path: str) -> str:
        path = (path or "").strip()
        if not path:
            return ""
        if path in self._cache:
            return self._cache[path]
        if _LEVELS.search(path):   # "Electronics > Audio > Headphones" -> "Headphones"
            self._cache[path] = clean_text(category_levels(path)[-1])
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
    # what the shopper did with the anchor, from its recorded events ("you rated the Titanic"; "" no anchor)
    action: str = ""
    anchor_kinds: tuple[str, ...] = ()
    attribute_link: str = ""         # the best shared attribute as a clause ("both are from the 1990s"), "" none
    shared_values: tuple[str, ...] = ()      # attribute values the item shares with the anchor, as stated
    attribute_values: tuple[str, ...] = ()   # every attribute value the facts state (shared and own)

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
                  categories: CategoryNames, co: CoPurchases | None = None,
                  attribute_stats: "attrs_mod.AttributeStats | None" = None) -> ItemFacts:
    """Facts from the item's attributes and the ranker's evidence (the strongest cited history item).

    History entries may be store.history.HistoryItem: their recorded event kinds choose how the
    anchor is cited ("you rated the X"); a plain Item has none and is cited neutrally."""
    by_id = {h.id: h for h in history}
    anchor: Item | None = None
    if candidate is not None:
        cited = [by_id[ev.item_id] for ev in candidate.evidence if ev.item_id in by_id and ev.item_id != item.id]
        # among the cited items, one that shares something nameable makes a reason a person can check;
        # next best, one that other shoppers bought together with the item
        sharing = [h for h in cited if _shares(item, h, attribute_stats)]
        together = [h for h in cited if co is not None and co.bought_together(h.id, item.id)]
        anchor = (sharing or together or cited or [None])[0]
    if anchor is None:   # no usable evidence: the most recent purchase sharing something, else the latest
        others = [h for h in history if h.id != item.id]
        sharing = [h for h in others if (h.brand and h.brand.lower() == item.brand.lower())
                   or (h.category and h.category == item.category) or attrs_mod.shares_attribute(item, h, attribute_stats)]
        anchor = (sharing or others or [None])[-1]

    item_name = short_name(item.title, item.brand)
    brand = clean_text(item.brand)
    category = categories.names(item.categories())
    lines: list[str] = []
    action = ""
    links: list = []
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
        did = action_for(kinds_of(anchor))
        action = did.say(anchor_name)
        cited = did.say(f'"{anchor_name}"')
        lines.append(f"{cited[0].upper()}{cited[1:]}.")
        same_brand = bool(brand) and brand.lower() == clean_text(anchor.brand).lower()
        shared_cat = shared_category_name(item, anchor, categories)
        if shared_cat:
            lines.append(f'The "{item_name}" is in the same category as the "{anchor_name}": {shared_cat}.')
        if same_brand:
            lines.append(f'The "{item_name}" is by {brand}, like the "{anchor_name}".')
        co_bought = co is not None and co.bought_together(anchor.id, item.id)
        if co_bought:
            lines.append(f'Other shoppers who bought the "{anchor_name}" also bought the "{item_name}".')
        links = attrs_mod.link_facts(item, anchor, item_name, anchor_name, attribute_stats, shared_cat)
        lines.extend(f.line for f in links)
    if brand and not same_brand:
        lines.append(f'The "{item_name}" is by {brand}.')
    if category and not shared_cat:
        lines.append(f'The "{item_name}" is in the category {category}.')
    own = attrs_mod.descriptive_facts(item, item_name, attribute_stats, skip=[f.key for f in links])
    lines.extend(f.line for f in own)
    if item.price is not None:
        lines.append(f'The "{item_name}" costs {format_price(item.price)}.')
    return ItemFacts(
        item_id=item.id, item_name=item_name, item_title=clean_text(item.title),
        anchor_id=anchor.id if anchor else "", anchor_name=anchor_name, brand=brand, same_brand=same_brand,
        category=category, shared_category=shared_cat, price=item.price, co_bought=co_bought,
        evidence_ids=(anchor.id,) if anchor else (), lines=tuple(lines),
        action=action, anchor_kinds=kinds_of(anchor) if anchor else (),
        attribute_link=links[0].clause if links else "",
        shared_values=tuple(v for f in links for v in f.values),
        attribute_values=tuple(v for f in (*links, *own) for v in f.values))


def shared_category_name(item: Item, anchor: Item, categories: CategoryNames) -> str:
    """Readable name of what the item's category paths share with the anchor's ("" nothing beyond the
    catalog root). Equal paths first (all of them: "Drama and Romance"), else the deepest common parent."""
    mine, theirs = item.categories(), anchor.categories()
    exact = [p for p in mine if p.lower() in {t.lower() for t in theirs}]
    if exact:
        return categories.names(exact)
    best = ""
    for a in mine:
        for b in theirs:
            if _LEVELS.search(a) or _LEVELS.search(b):
                la, lb = category_levels(a), category_levels(b)
                n = 0
                while n < min(len(la), len(lb)) and la[n].lower() == lb[n].lower():
                    n += 1
                common = " > ".join(la[:n]) if n > categories.root_levels else ""
            else:   # unseparated words (the Scientific data): agree beyond the catalog root
                common = _common_prefix(a, b)
                if not (common and common != categories.root and len(common) > len(categories.root) + 3):
                    common = ""
            if len(common) > len(best):
                best = common
    return categories.name(best) if best else ""


def _shares(item: Item, other: Item, attribute_stats: "attrs_mod.AttributeStats | None" = None) -> bool:
    """Same brand, categories that agree beyond the catalog root, or a shared attribute value."""
    if item.brand.strip() and item.brand.strip().lower() == other.brand.strip().lower():
        return True
    theirs = {p.lower() for p in other.categories()}
    if any(p.lower() in theirs for p in item.categories()):
        return True
    common = _common_prefix(item.category, other.category)
    return (bool(common) and len(common.split()) > 3) or attrs_mod.shares_attribute(item, other, attribute_stats)


def _common_prefix(a: str, b: str) -> str:
    wa, wb = (a or "").split(), (b or "").split()
    n = 0
    while n < min(len(wa), len(wb)) and wa[n].lower() == wb[n].lower():
        n += 1
    while n > 0 and wa[n - 1] in {"&", "and", ","}:
        n -= 1
    return " ".join(wa[:n])
