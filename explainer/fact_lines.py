"""Fact lines, the third step of the facts: the sentences the prompt shows the LLM, the verifier
checks against and the audit keeps, worded with the reply's names (explainer/reply_names.py).

The reason comes first: what the shopper did with the cited history item (the anchor), then each
link with it, strongest and most specific first. What the item itself is (brand, category,
attributes, price) follows, leaving out what a link has already said.
"""
from __future__ import annotations

from typing import Sequence

from explainer.actions import Action
from explainer.attributes import AttributeFact
from explainer.links import LinkKind, Links
from store.catalog import Item

# strongest and most specific first: the template and the prompt state the first
_ORDER = (LinkKind.VARIANT, LinkKind.BOUGHT_TOGETHER, LinkKind.CATEGORY, LinkKind.ATTRIBUTE, LinkKind.BRAND,
          LinkKind.SIMILAR)
# a broad category (the top level below the root) says less than a shared brand or attribute
_ORDER_BROAD_CATEGORY = (LinkKind.VARIANT, LinkKind.BOUGHT_TOGETHER, LinkKind.ATTRIBUTE, LinkKind.BRAND,
                         LinkKind.CATEGORY, LinkKind.SIMILAR)


def format_price(price: float | None) -> str:
    return "" if price is None else f"${price:,.2f}"


def link_order(links: Links) -> tuple[LinkKind, ...]:
    """The link's kinds, strongest and most specific first. A weak co-purchase (a few shoppers) comes
    after the category, attribute and brand links: what the two have in common says more."""
    broad = bool(links.category) and links.category_depth <= 1 and (bool(links.brand) or links.attribute)
    kinds = set(links.kinds)
    order: tuple[LinkKind, ...] = _ORDER_BROAD_CATEGORY if broad else _ORDER
    if links.weak_co_purchase:
        order = tuple(k for k in order if k != LinkKind.BOUGHT_TOGETHER)
        order = order[:-1] + (LinkKind.BOUGHT_TOGETHER, order[-1])   # before only "similar"
    if links.broad_category:   # a top-level parent ("Industrial Electrical") says least: after every other link
        order = tuple(k for k in order if k != LinkKind.CATEGORY) + (LinkKind.CATEGORY,)
    return tuple(k for k in order if k in kinds)


def weak_reason_lines(item_nm: str, reason_nm: str, kind: str, shoppers: int) -> list[str]:
    """The weak reason for an item with no link (explainer.links.weak_reason), stated as what it is."""
    if kind == "co_buyers":
        who = "1 other shopper who" if shoppers == 1 else f"{shoppers} other shoppers who"
        return [f'{who} bought your "{reason_nm}" also bought the "{item_nm}".']
    if kind == "model_near":
        return [f'Our model, trained on shoppers\' purchases, rates the "{item_nm}" close to your "{reason_nm}".']
    if kind == "model_history":
        return [f'Our model, trained on shoppers\' purchases, ranks the "{item_nm}" high for your purchase history.']
    return []


def link_lines(item_nm: str, anchor_nm: str, links: Links, variant: str) -> list[str]:
    """One sentence per link kind, in link_order (an attribute link may give several)."""
    lines = []
    for kind in link_order(links):
        if kind == LinkKind.VARIANT:
            lines.append(f'The "{item_nm}" is the same product as the "{anchor_nm}", {variant}.' if variant
                         else f'The "{item_nm}" is another version of the "{anchor_nm}".')
        elif kind == LinkKind.BOUGHT_TOGETHER:
            lines.append(f'{links.shoppers} other shoppers bought both the "{anchor_nm}" and the "{item_nm}".')
        elif kind == LinkKind.CATEGORY:
            lines.append(f'The "{item_nm}" and the "{anchor_nm}" are both in the category {links.category}.')
        elif kind == LinkKind.BRAND:
            lines.append(f'The "{item_nm}" and the "{anchor_nm}" are both by {links.brand}.')
        elif kind == LinkKind.ATTRIBUTE:
            lines += [f.line for f in links.attribute_facts(item_nm, anchor_nm)]
        elif kind == LinkKind.SIMILAR:
            lines.append(f'The "{item_nm}" is similar to the "{anchor_nm}".')
    return lines


def anchor_lines(item_nm: str, anchor_nm: str, did: Action, links: Links, variant: str) -> list[str]:
    """The reason: what the shopper did with the anchor ("You rated the "X"."), then the links."""
    cited = did.say(f'"{anchor_nm}"')
    return [f"{cited[0].upper()}{cited[1:]}.", *link_lines(item_nm, anchor_nm, links, variant)]


def own_lines(item: Item, item_nm: str, brand: str, category: str, own_attributes: Sequence[AttributeFact]) -> list[str]:
    """What the item is. `brand` and `category`: "" when a link already states them."""
    lines = []
    if brand:
        lines.append(f'The "{item_nm}" is by {brand}.')
    if category:
        lines.append(f'The "{item_nm}" is in the category {category}.')
    lines.extend(f.line for f in own_attributes)
    if item.price is not None:
        lines.append(f'The "{item_nm}" costs {format_price(item.price)}.')
    return lines
