"""Facts: what the system knows about why an item fits a shopper, computed before any LLM call.

The LLM only verbalises these; the verifier checks its text against them. Three steps, each in
its own module:

  1. anchor choice   the history item each recommended item is justified by, and their link
                     (explainer/links.py: choose_anchor)
  2. naming          short names for the items and their anchors, distinct across the reply
                     (explainer/reply_names.py), so the prompt, the verifier and the template use
                     the same clean names
  3. fact lines      the sentences: the link first, because it is the reason, then what the item
                     is (explainer/fact_lines.py)

`compute_reply_facts` runs them for one reply and packs each item's result into an `ItemFacts`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from explainer import attributes as attrs_mod
from explainer.actions import action_for, kinds_of
from explainer.categories import CategoryNames
from explainer.fact_lines import anchor_lines, format_price, link_order, own_lines, weak_reason_lines
from explainer.links import CoPurchases, LinkKind, Links, WeakReason, choose_anchor, weak_reason
from explainer.makers import Makers
from explainer.names import short_name
from explainer.reply_names import item_name, name_reply, variant_words
from explainer.text import clean_text
from ranker.types import Candidate
from store.catalog import Item

__all__ = ["CategoryNames", "CoPurchases", "ItemFacts", "clean_text", "compute_facts", "compute_reply_facts",
           "short_name", "item_name", "format_price"]


@dataclass(frozen=True)
class ItemFacts:
    """The facts for one (shopper, item) pair, and the names used to state them."""

    item_id: str
    item_name: str                   # short name of the recommended item (distinct within the reply)
    item_title: str                  # full cleaned title (verifier: "you bought <the item>")
    anchor_id: str                   # the history item the justification cites ("" when no history item links)
    anchor_name: str
    brand: str                       # the item's brand ("" unknown)
    same_brand: bool                 # the anchor has the same brand
    category: str                    # readable category name of the item
    shared_category: str             # readable name of the category the item shares with the anchor ("" none)
    price: float | None
    co_bought: bool                  # other shoppers bought the anchor and the item
    evidence_ids: tuple[str, ...]    # history items the facts rely on (anchor first)
    lines: tuple[str, ...]           # the facts as sentences, for the prompt and the audit
    links: tuple[LinkKind, ...] = ()  # link kinds with the anchor, strongest first (explainer/links.py)
    shoppers: int = 0                # how many other shoppers bought both (0: not stated)
    variant: str = ""                # what tells the item from the anchor when it is a variant of it ("in Blue")
    similar: bool = False            # the ranker's evidence puts the anchor close to the item
    # what the shopper did with the anchor, from its recorded events ("you rated the Titanic"; "" no anchor)
    action: str = ""
    anchor_kinds: tuple[str, ...] = ()
    attribute_link: str = ""         # the best shared attribute as a clause ("both are from the 1990s"), "" none
    shared_values: tuple[str, ...] = ()      # attribute values the item shares with the anchor, as stated
    attribute_values: tuple[str, ...] = ()   # every attribute value the facts state (shared and own)
    # no anchor: the weak reason it was recommended (explainer.links.weak_reason): "co_buyers" (a few
    # other shoppers bought `reason_name` and the item, `shoppers` of them), "model_history" (the ranker's
    # closest history items are all from other departments: none is named) or "model_near" (the
    # ranker's closest history item); "" none or an anchor states the reason
    reason: str = ""
    reason_id: str = ""
    reason_name: str = ""
    # the shopper's text query, cleaned, when the item matches it (explainer/search_match.py; "" none):
    # the reply opens with it, and the verifier's search_claim rule allows exactly that claim
    search: str = ""

    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def link(self) -> LinkKind | str:
        """The strongest link kind ("" none): what the justification's reason states."""
        return self.links[0] if self.links else ""


def compute_reply_facts(history: Sequence[Item], items: Sequence[tuple[Item, Candidate | None]],
                        categories: CategoryNames, co: CoPurchases | None = None,
                        attribute_stats: "attrs_mod.AttributeStats | None" = None,
                        preference: Callable[[Sequence[str]], float] | None = None,
                        makers: Makers | None = None) -> list[ItemFacts]:
    """Facts for every item of one reply: anchors first, then names made distinct over the items
    and their anchors together, then the fact lines.

    makers: which brand may be stated as an item's maker (explainer/makers.py): a brand field the
    title contradicts ("Cubitron" on "3M Hookit Film Disc") is left out of the facts, so no link,
    line or template says "by" it. None: every brand field is stated.

    History entries may be store.history.HistoryItem: their recorded event kinds choose how the
    anchor is cited ("you rated the X"); a plain Item has none and is cited neutrally.
    preference: explainer.link_feedback's bonus per link kind (None: the unrated choice)."""
    if makers is not None:
        history = [makers.restate(h) for h in history]
        items = [(makers.restate(item), cand) for item, cand in items]
    anchors = [choose_anchor(history, item, cand, categories, co, attribute_stats, preference)
               for item, cand in items]
    weak = [weak_reason(history, item, cand, co, categories) if anchor is None else None
            for (item, cand), (anchor, _) in zip(items, anchors)]
    cited = [anchor if anchor is not None else (w.item if w else None) for (anchor, _), w in zip(anchors, weak)]
    names = name_reply([item for item, _ in items], cited, categories)
    return [item_facts(item, anchor, links, name, anchor_name, categories, attribute_stats, w)
            for (item, _), (anchor, links), w, name, anchor_name
            in zip(items, anchors, weak, names.items, names.anchors)]


def compute_facts(history: Sequence[Item], item: Item, candidate: Candidate | None,
                  categories: CategoryNames, co: CoPurchases | None = None,
                  attribute_stats: "attrs_mod.AttributeStats | None" = None) -> ItemFacts:
    """Facts for one item on its own (names distinct between the item and its anchor only)."""
    return compute_reply_facts(history, [(item, candidate)], categories, co, attribute_stats)[0]


def item_facts(item: Item, anchor: Item | None, links: Links | None, name: str, anchor_nm: str,
               categories: CategoryNames, attribute_stats: "attrs_mod.AttributeStats | None",
               weak: WeakReason | None = None) -> ItemFacts:
    """One item's fact lines, and the facts they state, from its anchor and link (None, None: no
    history item links; then `weak`, the weak reason, and anchor_nm names its history item) and the
    reply's names for both."""
    brand = clean_text(item.brand)
    category = categories.names(item.categories())
    if anchor is None or links is None:
        anchor, links = None, None
    anchor_name, variant, action = "", "", ""
    kinds: tuple[LinkKind, ...] = ()
    lines: list[str] = []
    shared_attrs: list[attrs_mod.AttributeFact] = []
    if anchor is not None and links is not None:
        anchor_name = anchor_nm
        variant = variant_words(name, anchor_name) if links.variant else ""
        did = action_for(kinds_of(anchor))
        action, kinds = did.say(anchor_name), link_order(links)
        shared_attrs = links.attribute_facts(name, anchor_name)
        lines = anchor_lines(name, anchor_name, did, links, variant)
    elif weak is not None:
        lines = weak_reason_lines(name, anchor_nm, weak.kind, weak.shoppers)
    shared_cat = links.category if links else ""
    same_brand = bool(links and links.brand)
    own_attrs = attrs_mod.descriptive_facts(item, name, attribute_stats, skip=[f.key for f in shared_attrs])
    lines += own_lines(item, name, "" if same_brand else brand, "" if category == shared_cat else category, own_attrs)
    return ItemFacts(
        item_id=item.id, item_name=name, item_title=clean_text(item.title),
        anchor_id=anchor.id if anchor else "", anchor_name=anchor_name, brand=brand, same_brand=same_brand,
        category=category, shared_category=shared_cat, price=item.price,
        co_bought=bool(links and links.shoppers),
        evidence_ids=(anchor.id,) if anchor else ((weak.item.id,) if weak and weak.item else ()),
        lines=tuple(lines), links=kinds, shoppers=links.shoppers if links else (weak.shoppers if weak else 0),
        variant=variant, similar=bool(links and LinkKind.SIMILAR in links.kinds),
        action=action, anchor_kinds=kinds_of(anchor) if anchor else (),
        attribute_link=shared_attrs[0].clause if shared_attrs else "",
        shared_values=tuple(v for f in shared_attrs for v in f.values),
        attribute_values=tuple(v for f in (*shared_attrs, *own_attrs) for v in f.values),
        reason=weak.kind if weak and anchor is None else "",
        reason_id=weak.item.id if weak and weak.item and anchor is None else "",
        reason_name=anchor_nm if weak and weak.item and anchor is None else "")
