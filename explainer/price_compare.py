"""Price comparison with the item a shopper asked about ("like X but cheaper"): one fact, one rule.

The fact exists only when both prices are known; the verifier rule `price_claim` fails a text that
says cheaper / pricier / less / more expensive without that fact, or against its direction. Kept
apart from facts.py and verifier.py, which only register them.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from explainer.text import clean_text

if TYPE_CHECKING:
    from store.catalog import Item

_FACT = re.compile(r"\bcosts \$[\d,]+\.\d\d, \$[\d,]+\.\d\d (less|more) than the\b")
_CHEAPER = re.compile(r"\b(?:cheaper|less\s+expensive|lower[-\s]priced|costs?\s+(?:\$[\d,.]+\s+)?less|"
                      r"(?:lower|smaller)\s+price|saves?\s+(?:you\s+)?\$?|for\s+less)\b", re.I)
_PRICIER = re.compile(r"\b(?:pricier|more\s+expensive|higher[-\s]priced|costs?\s+(?:\$[\d,.]+\s+)?more|"
                      r"(?:higher|bigger)\s+price)\b", re.I)


def price_comparison(item: "Item", reference: "Item", item_name: str, reference_name: str) -> str | None:
    """'The "<item>" costs $A, $D less than the "<reference>" ($B).' — None unless both prices are
    known and differ by at least a cent."""
    if item.price is None or reference.price is None:
        return None
    diff = round(reference.price - item.price, 2)
    if abs(diff) < 0.01:
        return None
    direction = "less" if diff > 0 else "more"
    return (f'The "{item_name}" costs ${item.price:,.2f}, ${abs(diff):,.2f} {direction} than the '
            f'"{reference_name}" (${reference.price:,.2f}).')


def reference_name(item: "Item", max_words: int = 6) -> str:
    """How the facts name the item asked about: the head of its cleaned title."""
    return " ".join(clean_text(item.title).replace('"', "'").split()[:max_words]).rstrip(",;:")


def stated_direction(lines: Sequence[str]) -> str | None:
    """'less' / 'more' when the facts hold a price comparison, else None."""
    for line in lines:
        m = _FACT.search(line)
        if m:
            return m.group(1)
    return None


def claims_price(text: str) -> str | None:
    """'less' / 'more' when the text compares prices, else None."""
    if _CHEAPER.search(text):
        return "less"
    if _PRICIER.search(text):
        return "more"
    return None


def price_claim_unsupported(text: str, lines: Sequence[str]) -> bool:
    """True when the text compares prices without the fact, or the other way round."""
    claim = claims_price(text)
    return claim is not None and claim != stated_direction(lines)


def price_claim(c) -> bool:
    """Verifier rule (a row of explainer.verifier.RULES): an unsupported price comparison."""
    return price_claim_unsupported(c.text, c.facts.lines)
