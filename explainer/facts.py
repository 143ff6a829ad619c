"""Facts: what the system knows about why an item fits a shopper, computed before any LLM call.

The LLM only verbalises these; the verifier checks its text against them. The link between the
item and the cited history item (explainer/links.py) comes first, because it is the reason;
what the item is (brand, category, price) follows. Names come from explainer/names.py and are
made distinct across one reply, so the prompt, the verifier and the template all use the same
clean names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from explainer import attributes as attrs_mod
from explainer.actions import action_for, kinds_of
from explainer.categories import CategoryNames
from explainer.links import CoPurchases, Links, choose_anchor
from explainer.names import distinct_names, short_name
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
    links: tuple[str, ...] = ()      # link kinds with the anchor, strongest first (explainer/links.py)
    shoppers: int = 0                # how many other shoppers bought both (0: not stated)
    variant: str = ""                # what tells the item from the anchor when it is a variant of it ("in Blue")
    similar: bool = False            # the ranker's evidence puts the anchor close to the item
    # what the shopper did with the anchor, from its recorded events ("you rated the Titanic"; "" no anchor)
    action: str = ""
    anchor_kinds: tuple[str, ...] = ()
    attribute_link: str = ""         # the best shared attribute as a clause ("both are from the 1990s"), "" none
    shared_values: tuple[str, ...] = ()      # attribute values the item shares with the anchor, as stated
    attribute_values: tuple[str, ...] = ()   # every attribute value the facts state (shared and own)

    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def link(self) -> str:
        """The strongest link kind ("" none): what the justification's reason states."""
        return self.links[0] if self.links else ""


def format_price(price: float | None) -> str:
    return "" if price is None else f"${price:,.2f}"


def item_name(item: Item, categories: CategoryNames) -> str:
    cat = categories.name(item.category)
    name = short_name(item.title, item.brand, cat)
    if name.lower() == categories.root.lower():   # a title that is only the catalog's name: its brand and category
        name = short_name("", item.brand, cat)
    return name


def _link_order(links: Links) -> tuple[str, ...]:
    """Link kinds strongest and most specific first (the template and the prompt state the first)."""
    order = ["variant", "bought_together", "category", "attribute", "brand", "similar"]
    if links.category and links.category_depth <= 1 and (links.brand or links.attribute):
        order = ["variant", "bought_together", "attribute", "brand", "category", "similar"]   # a broad category says less
    kinds = set(links.kinds)
    return tuple(k for k in order if k in kinds)


def _link_lines(f_item: str, f_anchor: str, links: Links, variant: str) -> list[str]:
    lines = []
    for kind in _link_order(links):
        if kind == "variant":
            lines.append(f'The "{f_item}" is the same product as the "{f_anchor}", {variant}.' if variant
                         else f'The "{f_item}" is another version of the "{f_anchor}".')
        elif kind == "bought_together":
            lines.append(f'{links.shoppers} other shoppers bought both the "{f_anchor}" and the "{f_item}".')
        elif kind == "category":
            lines.append(f'The "{f_item}" and the "{f_anchor}" are both in the category {links.category}.')
        elif kind == "brand":
            lines.append(f'The "{f_item}" and the "{f_anchor}" are both by {links.brand}.')
        elif kind == "attribute":
            lines += [f.line for f in links.attribute_facts(f_item, f_anchor)]
        elif kind == "similar":
            lines.append(f'The "{f_item}" is similar to the "{f_anchor}".')
    return lines


def compute_reply_facts(history: Sequence[Item], items: Sequence[tuple[Item, Candidate | None]],
                        categories: CategoryNames, co: CoPurchases | None = None,
                        attribute_stats: "attrs_mod.AttributeStats | None" = None,
                        preference=None) -> list[ItemFacts]:
    """Facts for every item of one reply: anchors first, then names made distinct over the items
    and their anchors together, then the fact lines.

    History entries may be store.history.HistoryItem: their recorded event kinds choose how the
    anchor is cited ("you rated the X"); a plain Item has none and is cited neutrally."""
    anchors = [choose_anchor(history, item, cand, categories, co, attribute_stats, preference)
               for item, cand in items]
    involved: dict[str, Item] = {}
    keys: list[str] = []
    for n, ((item, _), (anchor, _)) in enumerate(zip(items, anchors)):
        key = item.id if involved.get(item.id, item) == item else f"{item.id}#{n}"   # two versions of one id
        involved[key] = item
        keys.append(key)
    # anchors with one title are one product to the shopper (bought twice, under two listings): one name
    anchor_key = {a.id: (a.id if a.id in involved else "t:" + clean_text(a.title).lower())
                  for a, _ in anchors if a is not None}
    for anchor, _ in anchors:
        if anchor is not None:
            involved.setdefault(anchor_key[anchor.id], anchor)
    base = {i: item_name(it, categories) for i, it in involved.items()}
    names = distinct_names({i: (it.title, it.brand) for i, it in involved.items()}, base)
    return [_facts(item, anchor, links, names[key], names[anchor_key[anchor.id]] if anchor else "", categories,
                   attribute_stats)
            for key, (item, _), (anchor, links) in zip(keys, items, anchors)]


def compute_facts(history: Sequence[Item], item: Item, candidate: Candidate | None,
                  categories: CategoryNames, co: CoPurchases | None = None,
                  attribute_stats: "attrs_mod.AttributeStats | None" = None) -> ItemFacts:
    """Facts for one item on its own (names distinct between the item and its anchor only)."""
    return compute_reply_facts(history, [(item, candidate)], categories, co, attribute_stats)[0]


def _facts(item: Item, anchor: Item | None, links: Links | None, name: str, anchor_nm: str,
           categories: CategoryNames, attribute_stats: "attrs_mod.AttributeStats | None") -> ItemFacts:
    brand = clean_text(item.brand)
    category = categories.names(item.categories())
    lines: list[str] = []
    anchor_name, variant, kinds, action = "", "", (), ""
    shared_attrs: list = []
    if anchor is not None and links is not None:
        anchor_name = anchor_nm
        kinds = _link_order(links)
        if links.variant:
            variant = _variant(name, anchor_name)
        did = action_for(kinds_of(anchor))
        action = did.say(anchor_name)
        cited = did.say(f'"{anchor_name}"')
        lines.append(f"{cited[0].upper()}{cited[1:]}.")
        lines += _link_lines(name, anchor_name, links, variant)
        shared_attrs = links.attribute_facts(name, anchor_name)
    shared_cat = links.category if links else ""
    same_brand = bool(links and links.brand)
    if brand and not same_brand:
        lines.append(f'The "{name}" is by {brand}.')
    if category and category != shared_cat:
        lines.append(f'The "{name}" is in the category {category}.')
    own = attrs_mod.descriptive_facts(item, name, attribute_stats, skip=[f.key for f in shared_attrs])
    lines.extend(f.line for f in own)
    if item.price is not None:
        lines.append(f'The "{name}" costs {format_price(item.price)}.')
    return ItemFacts(
        item_id=item.id, item_name=name, item_title=clean_text(item.title),
        anchor_id=anchor.id if anchor else "", anchor_name=anchor_name, brand=brand, same_brand=same_brand,
        category=category, shared_category=shared_cat, price=item.price,
        co_bought=bool(links and links.shoppers), evidence_ids=(anchor.id,) if anchor else (),
        lines=tuple(lines), links=kinds, shoppers=links.shoppers if links else 0, variant=variant,
        similar=bool(links and "similar" in links.kinds),
        action=action, anchor_kinds=kinds_of(anchor) if anchor else (),
        attribute_link=shared_attrs[0].clause if shared_attrs else "",
        shared_values=tuple(v for f in shared_attrs for v in f.values),
        attribute_values=tuple(v for f in (*shared_attrs, *own) for v in f.values))


def _variant(item_nm: str, anchor_nm: str) -> str:
    """The words distinct_names added to the item's name beyond the shared base ("in Blue", "(3 mm)")."""
    n = 0
    while n < min(len(item_nm), len(anchor_nm)) and item_nm[n].lower() == anchor_nm[n].lower():
        n += 1
    while n > 0 and item_nm[n - 1] not in " (":   # back to a word boundary
        n -= 1
    tag = item_nm[n:].strip()
    if tag.startswith("in "):
        return tag
    tag = tag.strip("()")
    return f"in {tag}" if tag else ""
