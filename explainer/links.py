"""Links: what a recommended item and one history item have in common that a shopper can check.

A justification that says "because you bought H" must state one of these, and the history
item it cites (the anchor) is the one whose link is strongest and most specific:

  variant          the same product in another colour or size (same brand or none, same base name)
  bought_together  other shoppers bought both: at least CoPurchases.MIN_SHOPPERS of them when the two
                   share a category; with nothing else in common, at least MIN_SHOPPERS_ALONE and
                   MIN_SHARE_ALONE of each item's buyers (a cut-off wheel "bought with" a trash dolly
                   by 3 shoppers, or anything bought with a best-seller, is no reason a shopper accepts).
                   Fewer than STRONG_SHOPPERS is a weak co-purchase: a category, attribute or brand link
                   states the reason before it
  category         the same category, named at a level of the catalog's own tree
  attribute        an informative attribute value in common ("both are from the 1990s"; explainer/attributes.py)
  brand            the same brand
  similar          the ranker's evidence: the history item is among the closest to the item in the
                   model's space, with a cosine similarity of at least SIMILAR_MIN

A category shared only at the top level below the root ("Industrial Electrical", a shared parent that is
neither item's own category) is no link on its own: it says little, and comes after any other link.

No link with any history item: no anchor, and the justification states the weak reason the item was
recommended, what the system really knows (`weak_reason`): the few other shoppers who bought a history
item and the item, or else the ranker's evidence (the history item closest to it in the model's space).
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from explainer import attributes as attrs_mod
from explainer.categories import CategoryNames
from explainer.names import short_name
from explainer.text import clean_text
from ranker.types import Candidate
from store.catalog import Item



class LinkKind(enum.StrEnum):
    """The kinds of link above (a str: compares, prints and serialises as its value, so a template's
    `facts.link == "brand"`, a JSON report and a stored rating all read the plain word)."""
    VARIANT = "variant"
    BOUGHT_TOGETHER = "bought_together"
    CATEGORY = "category"
    ATTRIBUTE = "attribute"
    BRAND = "brand"
    SIMILAR = "similar"


LINK_KINDS = tuple(LinkKind)
SIMILAR_MIN = 0.75   # cosine in the item tower's space; below it "similar" is not a claim a shopper would accept


class CoPurchases:
    """Which items were bought by the same shoppers: item id -> set of user ids.

    Built from the train/valid/live events; the test split stays held out, so an evaluation
    never cites the very purchase it is scored on.

    A shopper who bought a great many things pairs every one of them with every other: their
    co-purchase says little about the two items (item-kNN practice down-weights such users by
    1/log of their history size, "inverse user frequency"). So whether a pair was bought together
    *enough to say so* is judged on `evidence`, each co-buyer weighing log(1 + REFERENCE_HISTORY) /
    log(1 + their purchases), at most 1: a shopper of up to 10 items counts 1, of 20 items 0.79,
    of 50 items 0.61. The text still states the true number of shoppers (`shoppers`).

    The weak reason also needs `lift` of at least MIN_LIFT: the history item's buyers bought the
    item at least twice as often as shoppers at large. "4 other shoppers who bought your Humidity
    Monitor also bought it" is true, but 4 of its 424 buyers is fewer than chance: no reason at all.
    """

    MIN_SHOPPERS = 2          # "other shoppers bought both" needs at least this much evidence (shoppers)
    MIN_SHOPPERS_ALONE = 5    # ... this much when it is the pair's only link (no shared category)
    MIN_SHARE_ALONE = 0.2     # ... and this share of each item's buyers bought both (not a best-seller's noise)
    STRONG_SHOPPERS = 5       # fewer: a weak co-purchase, stated after the pair's other links
    MIN_WEAK_EVIDENCE = 1.0   # the weak reason "N other shoppers who bought your X also bought it" needs this
    REFERENCE_HISTORY = 10    # a shopper with at most this many purchases counts fully
    MIN_LIFT = 2.0            # the weak reason: the pair bought together at least this many times chance

    def __init__(self, sequences: dict[str, list[tuple[str, str]]], weighted: bool = True):
        self.weighted = weighted   # False: every shopper counts 1 (the table before down-weighting)
        self.min_lift = self.MIN_LIFT   # 0: any co-purchase may be a weak reason (bench_co_purchase_weight)
        self._buyers: dict[str, set[str]] = {}
        self._bought: dict[str, set[str]] = {}   # user id -> items: the history size behind their weight
        for user, seq in sequences.items():
            for item_id, split in seq:
                if split != "test":
                    self._buyers.setdefault(item_id, set()).add(user)
                    self._bought.setdefault(user, set()).add(item_id)

    def add(self, user_id: str, item_id: str) -> None:
        """One more purchase (a live event): pair counts and each item's buyers follow at once. A
        repeat is harmless (a shopper counts once per item); safe beside readers (one set.add each)."""
        self._buyers.setdefault(item_id, set()).add(user_id)
        self._bought.setdefault(user_id, set()).add(item_id)

    def shoppers(self, a: str, b: str) -> int:
        return len(self._buyers.get(a, set()) & self._buyers.get(b, set()))

    def buyers(self, a: str) -> int:
        return len(self._buyers.get(a, ()))

    def weight(self, user_id: str) -> float:
        """How much one shopper's co-purchase counts (1 for up to REFERENCE_HISTORY purchases)."""
        n = len(self._bought.get(user_id, ()))
        if not self.weighted or n <= self.REFERENCE_HISTORY:
            return 1.0
        return math.log1p(self.REFERENCE_HISTORY) / math.log1p(n)

    def evidence(self, a: str, b: str) -> float:
        """The shoppers who bought both, each weighed by `weight` (their number when not weighted)."""
        both = self._buyers.get(a, set()) & self._buyers.get(b, set())
        return sum(self.weight(u) for u in both) if self.weighted else float(len(both))

    def lift(self, a: str, b: str) -> float:
        """How many times more often the pair was bought together than if each shopper had picked
        independently: shoppers(a, b) * all shoppers / (buyers(a) * buyers(b)) (0: no buyers)."""
        denom = self.buyers(a) * self.buyers(b)
        return self.shoppers(a, b) * len(self._bought) / denom if denom else 0.0

    def weak_reason_holds(self, a: str, b: str) -> float:
        """The evidence that a and b were bought together, if enough for the weak reason (else 0)."""
        e = self.evidence(a, b)
        if e < self.MIN_WEAK_EVIDENCE - 1e-9 or (self.min_lift and self.lift(a, b) < self.min_lift):
            return 0.0
        return e

    def bought_together(self, a: str, b: str, alone: bool = False) -> bool:
        """Enough evidence that shoppers bought both to say so; `alone`: the pair has nothing else in
        common, so it takes more, and a good share of each item's buyers."""
        n = self.evidence(a, b)
        if not alone:
            return n >= self.MIN_SHOPPERS - 1e-9
        return n >= self.MIN_SHOPPERS_ALONE - 1e-9 \
            and self.shoppers(a, b) >= self.MIN_SHARE_ALONE * max(self.buyers(a), self.buyers(b))


@dataclass(frozen=True)
class Links:
    """Everything one history item (the anchor) shares with the item."""

    anchor_id: str
    variant: bool = False
    shoppers: int = 0              # other shoppers who bought both (0: too few to say, CoPurchases.bought_together)
    category: str = ""             # readable name of the deepest category both are in ("" none)
    category_depth: int = 0        # levels of that category below the catalog root
    brand: str = ""                # the shared brand ("" none)
    similarity: float = 0.0        # the ranker's cosine when the anchor is in the item's evidence
    attribute: bool = False        # an informative attribute value in common
    broad_category: bool = False   # the shared category is a top-level parent, neither item's own: weak
    # what attribute_facts needs to word the attribute link with the reply's final names
    _pair: tuple = field(default=(), compare=False, repr=False)

    @property
    def kinds(self) -> tuple[LinkKind, ...]:
        """The kinds this link has, in LINK_KINDS order (explainer.fact_lines.link_order: strongest first)."""
        return tuple(k for k, on in ((LinkKind.VARIANT, self.variant), (LinkKind.BOUGHT_TOGETHER, self.shoppers > 0),
                                     (LinkKind.CATEGORY, bool(self.category)), (LinkKind.ATTRIBUTE, self.attribute),
                                     (LinkKind.BRAND, bool(self.brand)),
                                     (LinkKind.SIMILAR, self.similarity >= SIMILAR_MIN)) if on)

    @property
    def broad_only(self) -> bool:
        """The only link is a top-level shared category ("both are in Industrial Electrical"): no reason."""
        return self.broad_category and set(self.kinds) == {LinkKind.CATEGORY}

    @property
    def weak_co_purchase(self) -> bool:
        return 0 < self.shoppers < CoPurchases.STRONG_SHOPPERS

    def attribute_facts(self, item_name: str, anchor_name: str) -> list:
        """The shared-attribute facts (explainer.attributes.AttributeFact), worded with these names."""
        if not self.attribute or not self._pair:
            return []
        item, anchor, stats = self._pair
        return attrs_mod.link_facts(item, anchor, item_name, anchor_name, stats, self.category)

    def strength(self) -> float:
        """Strongest and most specific first: a variant, then several shoppers, then a deep shared
        category, then the brand; the model's similarity only breaks ties or stands alone."""
        s = 0.0
        if self.variant:
            s += 100
        if self.weak_co_purchase:   # a few shoppers: below a shared brand or category
            s += 2 + self.shoppers
        elif self.shoppers:
            s += 30 + min(self.shoppers, 10)
        if self.category and not self.broad_category:
            s += 8 + 4 * self.category_depth
        elif self.category:
            s += 1
        if self.attribute:
            s += 12
        if self.brand:
            s += 15
        if self.similarity >= SIMILAR_MIN:
            s += 5
        return s + self.similarity   # ties: the closer one


def links_between(item: Item, other: Item, categories: CategoryNames, co: CoPurchases | None,
                  similarity: float = 0.0, attribute_stats: "attrs_mod.AttributeStats | None" = None) -> Links:
    brand = clean_text(item.brand)
    same_brand = bool(brand) and brand.lower() == clean_text(other.brand).lower()
    cat, depth = shared_category(item, other, categories)
    theirs = {t.lower() for t in other.categories()}
    broad = bool(cat) and depth <= 1 and not any(p.lower() in theirs for p in item.categories())
    variant = False
    if same_brand or not (brand or clean_text(other.brand)):   # a titles-only catalog: the name alone
        a = short_name(item.title, item.brand, categories.name(item.category)).lower()
        b = short_name(other.title, other.brand, categories.name(other.category)).lower()
        variant = a == b and clean_text(item.title).lower() != clean_text(other.title).lower()
    attribute = bool(attrs_mod.link_facts(item, other, "a", "b", attribute_stats, cat))
    alone = not (cat or variant or attribute or same_brand)
    shoppers = co.shoppers(item.id, other.id) if co is not None and co.bought_together(item.id, other.id, alone) else 0
    return Links(anchor_id=other.id, variant=variant, shoppers=shoppers,
                 category=cat, category_depth=depth, brand=brand if same_brand else "", similarity=similarity,
                 attribute=attribute, broad_category=broad, _pair=(item, other, attribute_stats) if attribute else ())


def shared_category(item: Item, other: Item, categories: CategoryNames) -> tuple[str, int]:
    """(readable name, depth below the root) of what the two items' category paths share; ("", 0) none.
    Paths both items have come first, all of them ("Drama and Romance"); else the deepest shared parent."""
    mine, theirs = item.categories(), other.categories()
    exact = [p for p in mine if p.lower() in {t.lower() for t in theirs}]
    if exact:
        return categories.names(exact), max(categories.depth(p) for p in exact)
    best = ""
    for a in mine:
        for b in theirs:
            path = categories.shared_path(a, b)
            if len(path) > len(best):
                best = path
    return (categories.name(best), categories.depth(best)) if best else ("", 0)


def choose_anchor(history: Sequence[Item], item: Item, candidate: Candidate | None,
                  categories: CategoryNames, co: CoPurchases | None,
                  attribute_stats: "attrs_mod.AttributeStats | None" = None,
                  preference: Callable[[Sequence[str]], float] | None = None) -> tuple[Item | None, Links | None]:
    """The history item with the strongest link to the item, and that link; (None, None) when no
    history item has any. Among equal links the more recent purchase wins; a history item with the
    item's very title (the same product listed twice) is never cited.

    preference(kinds) -> strength points added to a link (explainer.link_feedback: shoppers' ratings
    of justifications per link kind); None adds nothing."""
    sims = {ev.item_id: ev.similarity for ev in (candidate.evidence if candidate else ())}
    best: tuple[float, int] | None = None
    out: tuple[Item | None, Links | None] = (None, None)
    title = clean_text(item.title).lower()
    for pos, h in enumerate(history):
        if h.id == item.id or clean_text(h.title).lower() == title:   # a duplicate listing is no reason
            continue
        link = links_between(item, h, categories, co, sims.get(h.id, 0.0), attribute_stats)
        if not link.kinds or link.broad_only:
            continue
        key = (link.strength() + (preference(link.kinds) if preference is not None else 0.0), pos)
        if best is None or key > best:
            best, out = key, (h, link)
    return out


@dataclass(frozen=True)
class WeakReason:
    """Why an item with no link to the history was recommended, as far as the system knows it.

    kind "co_buyers": `shoppers` other shoppers (fewer than a link needs) bought the history item
    and the item; kind "model_near": nobody did, and the ranker's evidence puts the history item
    closest to the item in the model's space (trained on what shoppers buy), cosine `similarity`;
    kind "model_history": the ranker's closest history items are all from other departments of the
    catalog (duct tape "close to" a vacuum cleaner, at a cosine of 0.43 beside 0.42 for the next):
    naming one would read as a claim nobody can stand behind, so no history item is named (`item`
    None) and the text says the model ranks it high for the shopper's purchases."""

    kind: str
    item: Item | None
    shoppers: int = 0
    similarity: float = 0.0


def same_department(item: Item, other: Item, categories: CategoryNames | None) -> bool:
    """The two share a category below the catalog's root (at any level), or either has none to
    compare (a catalog of titles only: nothing says they are apart)."""
    if categories is None or not item.categories() or not other.categories():
        return True
    return any(categories.shared_path(a, b) for a in item.categories() for b in other.categories())


def weak_reason(history: Sequence[Item], item: Item, candidate: Candidate | None,
                co: CoPurchases | None, categories: CategoryNames | None = None) -> WeakReason | None:
    """The history item with the most co-purchase evidence with the item (CoPurchases.weak_reason_holds:
    one heavy buyer's pair, or fewer co-buyers than chance, is not enough; the more recent on ties), else the
    ranker's closest history item of the item's department ("model_history" when its evidence holds
    only other departments' items); None when neither exists (no history, no evidence)."""
    best: tuple[int, int] | None = None
    chosen: Item | None = None
    title = clean_text(item.title).lower()
    usable = [h for h in history if h.id != item.id and clean_text(h.title).lower() != title]
    best_evidence = 0.0
    if co is not None:
        for pos, h in enumerate(usable):
            # shoppers who bought everything say little: the evidence decides, the count is stated
            e = co.weak_reason_holds(item.id, h.id)
            if e and (best is None or (e, pos) > (best_evidence, best[1])):
                best, best_evidence, chosen = (co.shoppers(item.id, h.id), pos), e, h
    if chosen is not None and best is not None:
        return WeakReason("co_buyers", chosen, shoppers=best[0])
    by_id = {h.id: h for h in usable}
    near = [(by_id[ev.item_id], ev.similarity) for ev in (candidate.evidence if candidate else ())   # strongest first
            if ev.item_id in by_id]
    for h, sim in near:
        if same_department(item, h, categories):
            return WeakReason("model_near", h, similarity=sim)
    return WeakReason("model_history", None, similarity=near[0][1]) if near else None
