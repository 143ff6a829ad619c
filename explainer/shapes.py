"""Sentence shapes: a justification must read as one of the sentences a shopper accepts.

The other verifier rules check that each word is supported; they pass free-form clauses whose
words all come from the facts but whose sentence does not make sense: "…, but the actual product
is Gorilla's "Black Duct Tape" in the category Duct Tape", "…: 9 other shoppers bought both the
Jr & mini Series Filament", "…: 3 other shoppers bought both PLA Filament and PLA Filament",
"…, but you should avoid the ColorConnex Coupler & Plug Kit, as it is by Legacy Manufacturing".

So the whole text, with the facts' names and values replaced by placeholders, must match a small
grammar: the opening ("Because you bought the ANCHOR, you may like the ITEM" or "You may like the
ITEM"), one link clause in one of its accepted wordings, optionally one more clause that adds a
fact ("…, and the ITEM is also by BRAND"), and the end. What the clauses say is checked by the
other rules (false_link, category_claim, other_brand, …); this rule only checks that the sentence
is one a shopper would read as a reason. A text that fails gets another sample or the template.
"""
from __future__ import annotations

import re

from explainer.facts import ItemFacts
from explainer.search_match import without_search_sentence

# placeholders: letters only, so the grammar's word patterns treat them as words
_ITEM, _ANCHOR, _BRAND, _CAT, _VAL, _NUM = "xitemx", "xanchorx", "xbrandx", "xcatx", "xvalx", "xnumx"

# a category's words (category_claim checks them), but not "a other category of …", "another category":
# "also in another category" says they are apart
_CATPH = r"(?:the\s+)?(?!(?:an?|other|another|different|separate)\b)[^,.:;!?]+?(?:\s+category)?"
_THE = r"(?:the\s+)?"
_OPEN = rf"(?:(?:because|since)\s+you(?:'ve|\s+have)?\s+[a-z]+(?:\s+[a-z]+){{0,2}}\s+(?:the\s+)?{_ANCHOR}(?:\s+to\s+your\s+[a-z]+)?\s*,\s*)?" \
        rf"you\s+(?:may|might)\s+(?:also\s+)?like\s+{_THE}{_ITEM}"

_BY = rf"(?:(?::|,)?\s+which\s+is\s+(?:also\s+)?(?:by|from|made\s+by|an?\s+product\s+(?:by|of|from))\s+{_BRAND}" \
      rf"|,?\s+(?:which\s+is\s+(?:also\s+)?)?(?:an?\s+)?{_BRAND}(?:\s+product)?|\s+by\s+{_BRAND}" \
      rf"|(?::|,)\s+both\s+are\s+(?:made\s+)?by\s+{_BRAND})"
_IN = rf"(?:(?::|,)?\s+which\s+is\s+(?:also\s+)?in\s+(?:the\s+)?(?:category\s+(?:of\s+)?)?{_CATPH}" \
      rf"|,?\s+which\s+is\s+(?:also\s+)?an?\s+(?:type|kind)\s+of\s+{_CATPH}" \
      rf"|\s+from\s+{_CATPH}(?:\s+by\s+{_BRAND})?" \
      rf"|(?::|,)\s+both\s+are\s+in\s+{_CATPH}(?:\s+and\s+(?:both\s+are\s+)?by\s+{_BRAND})?)"
_BOTH_NAMES = rf"(?:\s+{_THE}{_ANCHOR}\s+and\s+{_THE}{_ITEM}|\s+{_THE}{_ITEM}\s+and\s+{_THE}{_ANCHOR})"
_CO = rf"(?:(?::|,)\s+{_NUM}\s+other\s+(?:shoppers|customers)\s+(?:also\s+)?bought\s+both{_BOTH_NAMES}?" \
      rf"|,?\s+which\s+{_NUM}\s+other\s+(?:shoppers|customers)\s+(?:also\s+)?bought" \
      rf"|,?\s+which\s+other\s+(?:shoppers|customers)\s+also\s+bought)"
_VARIANT = rf"(?:(?::|,)?\s+(?:the\s+same\s+product|another\s+version\s+of\s+(?:the\s+same\s+product|{_THE}{_ANCHOR}))" \
           rf"(?:\s+as\s+{_THE}{_ANCHOR})?(?:,?\s+(?:in\s+)?{_VAL})?(?:\s+by\s+{_BRAND})?)"
_SIMILAR = rf"(?:,?\s+which\s+is\s+(?:also\s+)?similar\s+to\s+(?:{_THE}{_ANCHOR}|it)" \
           rf"|(?::|,)\s+it\s+is\s+similar\s+to\s+{_THE}{_ANCHOR})"
# a shared attribute: its wording varies by attribute ("both are from the 1990s", "both have the genres
# Drama and Romance"); it must hold a stated value (the attribute rules check which)
_ATTR = rf"(?:(?::|,)\s+(?:both|which\s+(?:is|was|has)(?:\s+also)?)\b[^.:;!?]*{_VAL}[^.:;!?]*)"
_PRICE = r"(?:,?\s+(?:and\s+)?costs?\s+\$?\s*xnumx[^.!?]*)"   # explainer/price_compare.py's comparison
_LINK = rf"(?:{_BY}|{_IN}|{_CO}|{_VARIANT}|{_SIMILAR}|{_ATTR})"
# a second clause that adds one more fact
_MORE = rf"(?:,?\s+(?:and\s+)?(?:also\s+)?in\s+(?:the\s+)?(?:category\s+(?:of\s+)?)?{_CATPH}" \
        rf"|,?\s+and\s+(?:{_THE}{_ITEM}|it|both)\s+(?:is|are)\s+(?:also\s+)?(?:by\s+{_BRAND}|in\s+{_CATPH}|{_BRAND})" \
        rf"|,?\s+and\s+(?:also\s+)?by\s+{_BRAND}" \
        rf"|(?::|,)\s+{_THE}{_ITEM}\s+and\s+{_THE}{_ANCHOR}\s+are\s+both\s+(?:in\s+{_CATPH}|by\s+{_BRAND}))"
_SENTENCE = re.compile(rf"{_OPEN}(?:{_LINK}(?:{_MORE})?)?{_PRICE}?\s*[.!]?", re.I)


def placeholders(text: str, facts: ItemFacts) -> str:
    """The text with the facts' names, brand, categories, values and numbers replaced (longest
    first, quoted or not), lower case and spaces squeezed."""
    subs = [(facts.item_name, _ITEM), (facts.anchor_name, _ANCHOR),
            *((v, _VAL) for v in (*facts.shared_values, *facts.attribute_values, facts.variant,
                                  re.sub(r"^in\s+", "", facts.variant))),
            (facts.brand, _BRAND), (facts.category, _CAT), (facts.shared_category, _CAT)]
    out = text.replace("“", '"').replace("”", '"')
    token_of: dict[str, str] = {}
    for value, token in subs:   # one token per value, the first listed wins ("Drama": a value before a category)
        if value and value.strip():
            token_of.setdefault(value.lower(), token)
    for value, token in sorted(token_of.items(), key=lambda p: (-len(p[0]), p[0])):   # longest first, then fixed
        out = re.sub(r"[\"']?(?<![A-Za-z0-9])" + re.escape(value) + r"(?![A-Za-z0-9])[\"']?", f" {token} ", out,
                     flags=re.I)
    out = re.sub(r"(?<![A-Za-z])\d+(?:[.,]\d+)*(?![A-Za-z])", _NUM, out)
    return re.sub(r"\s+", " ", out).strip().lower().replace(" ,", ",").replace(" .", ".").replace(" :", ":")


def off_shape(text: str, facts: ItemFacts) -> bool:
    """The text is not one of the accepted sentence shapes (after the search sentence the system
    writes for a text query, explainer/search_match.py)."""
    if facts.search:
        text = without_search_sentence(text)
    return _SENTENCE.fullmatch(placeholders(text, facts)) is None
