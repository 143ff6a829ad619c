"""The shopper's free-text search ("digital ph meter") in the justification: one fact, one rule.

A text query ranks what it names (RankerConfig.text_weight), so the first thing a shopper who
typed a search wants to read is that the item matches it. The fact exists only when the item
really does (`matches`); then the template opens with it, the LLM's prefill carries it, and the
verifier rule `search_claim` fails a text that claims a search match the facts do not hold.
Kept apart from facts.py and verifier.py, which only register them (like price_compare.py).

The query is the shopper's input: data, never instructions. It is cleaned as catalog text is
(one line, no control characters or chat tokens, no double quotes), cut to MAX_CHARS at a word
end, and always quoted.
"""
from __future__ import annotations

import re

from explainer.text import clean_text

MAX_CHARS = 60
# The ranker's cosine of the query text with the item (Candidate.query_match, item tower). On the
# Scientific catalog the items that are what was typed score .49-.73 and unrelated ones .32-.52
# (bench/read_text_replies.py; README "Justifications for a text query"): no cosine alone separates
# them, so a match needs this floor, the query's head noun in the title, and its other words too
# (MIN_WORD_SHARE) or a closer cosine (MIN_QUERY_MATCH_HEAD).
MIN_QUERY_MATCH = 0.45
MIN_WORD_SHARE = 2 / 3      # 1 word: it; 2 words: both; 3 words: 2 of them ("digital ph meter" on "pH Meter")
# or, closer to the text, the query's last word alone (its head noun: "lab thermometer" on "Pocket
# Thermometer" scores .58; "soldering iron" on "Black Iron Oxide" .46)
MIN_QUERY_MATCH_HEAD = 0.55

_WORD = re.compile(r"[a-z0-9]+")
_CLAIM = re.compile(r"\b(?:your|the\s+shopper's)\s+(?:search|query)\b|\byou\s+(?:searched|looked\s+up|typed)\b"
                    r"|\bmatch(?:es|ed)?\s+(?:what\s+you|your)\b", re.I)
_SENTENCE = re.compile(r'^\s*It matches your search for "[^"]*"\.\s*')


def clean_query(text: str) -> str:
    """The query as the facts quote it: cleaned, one line, at most MAX_CHARS (cut at a word end)."""
    q = clean_text(text)
    if len(q) > MAX_CHARS:
        q = q[:MAX_CHARS + 1].rsplit(" ", 1)[0] if " " in q[:MAX_CHARS + 1] else q[:MAX_CHARS]
    return q.strip(" ,;:.")


def _stem(w: str) -> str:
    """Singular enough to match "gloves"/"glove", "boxes"/"box", "batteries"/"battery"."""
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "xes", "ches", "shes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower())}


def word_share(query: str, title: str) -> float:
    """Share of the query's words that the title holds (plural or not)."""
    want = _stems(query)
    return len(want & _stems(title)) / len(want) if want else 0.0


def matches(query: str, title: str, query_match: float | None) -> bool:
    """The item is what the shopper searched for: the ranker scores it close to the text, the title
    holds the query's last word (its head noun: "lid", not just "rubbermaid container") and most of
    its other words, or, closer still, the head alone ("lab thermometer" on "Pocket Thermometer")."""
    if query_match is None or query_match < MIN_QUERY_MATCH:
        return False
    q = clean_query(query)
    words = _WORD.findall(q.lower())
    if not words or _stem(words[-1]) not in _stems(title):
        return False
    return word_share(q, title) >= MIN_WORD_SHARE or query_match >= MIN_QUERY_MATCH_HEAD


def search_line(item_name: str, query: str) -> str:
    """The fact: 'The "<item>" matches the shopper's search for "<query>".'"""
    return f'The "{item_name}" matches the shopper\'s search for "{clean_query(query)}".'


def search_sentence(search: str) -> str:
    """How a reply states it (the template and the LLM's prefill open with it)."""
    return f'It matches your search for "{search}".'


def without_search_sentence(text: str) -> str:
    """The text after its opening search sentence (the sentence-shape grammar reads the rest)."""
    return _SENTENCE.sub("", text, count=1)


def claims_search(text: str) -> bool:
    """The text says the item matches the shopper's search."""
    return bool(_CLAIM.search(text))


def _quoted(search: str) -> re.Pattern:
    return re.compile(r"[\"“']" + re.escape(search) + r"[\"”']", re.I)


def states_search(text: str, search: str) -> bool:
    """The text claims a match with this search, quoting it."""
    return bool(search) and claims_search(text) and bool(_quoted(search).search(text))


def mask_search(text: str, search: str) -> str:
    """The text with the quoted search replaced by "search": the verifier reads no word of it."""
    return _quoted(search).sub('"search"', text) if search and text else text


def search_claim_unsupported(text: str, search: str) -> bool:
    """True when the text claims a search match without the fact, or quotes another search."""
    return claims_search(text) and not states_search(text, search)


def search_claim(c) -> bool:
    """Verifier rule (a row of explainer.verifier.RULES): an unsupported search-match claim."""
    return search_claim_unsupported(c.raw_text, c.facts.search)
