"""What the shopper did with a history item, in words: the event kind chooses the wording.

One table, used by the facts ("You rated the X."), the prompt's history block, the prompt prefill
and the fallback template ("Because you rated the X, ...") and the verifier (a stated action must
match a recorded event). A film catalog has ratings, a shop views and cart events: saying "you
bought" for those is a false claim.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

# The action classes a text can claim, and the recorded event kinds that make each claim true.
PURCHASE, RATING, REVIEW, VIEW, CART, INTEREST = "purchase", "rating", "review", "view", "cart", "interest"
SUPPORTED_BY: dict[str, frozenset[str]] = {
    PURCHASE: frozenset({"purchase"}),
    RATING: frozenset({"rating"}),
    REVIEW: frozenset({"review"}),
    VIEW: frozenset({"view", "click"}),
    CART: frozenset({"cart"}),
    INTEREST: frozenset(),          # neutral wording: true of anything in the history, recorded or inline
}


@dataclass(frozen=True)
class Action:
    """How to say one action class. `phrase` takes the (short) item name."""

    cls: str
    verb: str            # "bought": the history block's "- bought "X""
    phrase: str          # "you bought the {name}" (the frame and the facts)

    def say(self, name: str) -> str:
        return self.phrase.format(name=name)


ACTIONS: dict[str, Action] = {
    PURCHASE: Action(PURCHASE, "bought", "you bought the {name}"),
    RATING: Action(RATING, "rated", "you rated the {name}"),
    REVIEW: Action(REVIEW, "reviewed", "you reviewed the {name}"),
    VIEW: Action(VIEW, "looked at", "you looked at the {name}"),
    CART: Action(CART, "added to your cart", "you added the {name} to your cart"),
    INTEREST: Action(INTEREST, "showed interest in", "you showed interest in the {name}"),
}
# Event kind -> the action class its wording uses (view and click read the same to a shopper).
KIND_TO_ACTION = {"purchase": PURCHASE, "rating": RATING, "review": REVIEW, "view": VIEW, "click": VIEW,
                  "cart": CART}
# When one item has several events, the strongest one is stated ("bought" beats "looked at").
_STRENGTH = (PURCHASE, REVIEW, RATING, CART, VIEW)


def action_for(kinds: Iterable[str]) -> Action:
    """The wording for an item with these recorded event kinds; no recorded event -> neutral."""
    classes = {KIND_TO_ACTION[k] for k in kinds if k in KIND_TO_ACTION}
    for cls in _STRENGTH:
        if cls in classes:
            return ACTIONS[cls]
    return ACTIONS[INTEREST]


def kinds_of(item) -> tuple[str, ...]:
    """The recorded kinds of a history entry (store.history.HistoryItem); a plain Item has none."""
    return tuple(getattr(item, "kinds", ()) or ())


def supports(cls: str, kinds: Iterable[str]) -> bool:
    """Does a recorded history with these event kinds make the claim of action class `cls` true?"""
    if cls == INTEREST:
        return True
    return bool(SUPPORTED_BY.get(cls, frozenset()) & set(kinds))


# -- claims in free text (the verifier) -----------------------------------------------------------
# Verbs a text may use to say what someone did, by action class. "watched", "loved", "enjoyed"...
# are claims no event records: they never match.
_CLAIM_VERBS: tuple[tuple[str, str], ...] = (
    (PURCHASE, r"bought|purchased|ordered|got|own|owned|used"),
    (RATING, r"rated"),
    (REVIEW, r"reviewed"),
    (VIEW, r"looked\s+at|viewed|clicked(?:\s+on)?|browsed|checked\s+out"),
    (CART, r"added|put|placed|carted"),
    (INTEREST, r"showed\s+(?:an\s+)?interest\s+in"),
    ("unrecorded", r"watched|saw|seen|liked|loved|enjoyed|read|listened\s+to|played|tried"),
)
_VERB = "|".join(f"(?P<{cls}>{pat})" for cls, pat in _CLAIM_VERBS)
# "you (have) (already) <verb> (the) <object>": the object runs to punctuation or a clause break
YOU_DID = re.compile(
    r"\byou(?:'ve|\s+have)?\s+(?:already\s+|recently\s+|previously\s+|also\s+|just\s+)?(?:" + _VERB + r")\b\s*"
    r"(?:the|a|an|your|some)?\s*(?P<object>[^,.;:!?]{2,80})", re.I)
_CART_TAIL = re.compile(r"\s+(?:to|in|into)\s+(?:your|the|their)\s+(?:shopping\s+)?(?:cart|basket|bag)\b.*$", re.I)
# The same verbs with any subject ("other shoppers bought both"): the facts must use that action.
ANY_CLAIM = {cls: re.compile(r"\b(?:" + pat + r")\b", re.I)
             for cls, pat in _CLAIM_VERBS if cls not in ("unrecorded", INTEREST)}
ANY_CLAIM[PURCHASE] = re.compile(r"\b(?:bought|purchased|ordered)\b", re.I)   # "got", "used" are too common
ANY_CLAIM[CART] = re.compile(r"\b(?:to|in|into)\s+(?:your|their|the)\s+(?:shopping\s+)?(?:cart|basket)\b", re.I)


@dataclass(frozen=True)
class Claim:
    cls: str        # action class, or "unrecorded"
    obj: str        # what the text says it was done to


def you_did_claims(text: str, names: Iterable[str] = ()) -> list[Claim]:
    """Every "you <did> <something>" in the text, except inside a product name ("You've Got Mail")."""
    spans = _name_spans(text, names)
    out = []
    for m in YOU_DID.finditer(text):
        if any(a <= m.start() < b for a, b in spans):
            continue
        cls = next(c for c, _ in _CLAIM_VERBS if m.group(c))
        obj = _CART_TAIL.sub("", m.group("object").strip())
        if cls != CART or _CART_TAIL.search(m.group("object")):
            out.append(Claim(cls, obj.strip()))
        # "you added X" without a cart is no action claim ("you added protection"): ignored
    return out


def claimed_classes(text: str, names: Iterable[str] = ()) -> set[str]:
    """Action classes named anywhere in the text, whoever the subject (product names masked)."""
    for a, b in sorted(_name_spans(text, names), reverse=True):
        text = text[:a] + " " + text[b:]
    return {cls for cls, pat in ANY_CLAIM.items() if pat.search(text)}


def _name_spans(text: str, names: Iterable[str]) -> list[tuple[int, int]]:
    low = text.lower()
    spans = []
    for name in {n.lower() for n in names if n and len(n) > 2}:
        start = low.find(name)
        while start >= 0:
            spans.append((start, start + len(name)))
            start = low.find(name, start + 1)
    return spans


def wording_mismatch(text: str, facts) -> bool:
    """An evaluation check, simpler than the verifier's: a text citing the anchor must say what the
    shopper recorded ("you rated the X" for a rating) and no action the facts do not state."""
    names = [facts.item_name, facts.anchor_name]
    if facts.anchor_name and facts.anchor_name.lower() in text.lower():
        expected = action_for(facts.anchor_kinds)
        if expected.phrase.split("{name}")[0].strip().lower() not in text.lower():
            return True
    return bool(claimed_classes(text, names) - claimed_classes(" ".join(facts.lines), names))


# Words of the wording table: frame words for the verifier's unsupported-words share.
ACTION_WORDS = frozenset(w for a in ACTIONS.values() for w in re.findall(r"[a-z]+", a.phrase.replace("{name}", ""))
                         if w not in ("you", "the"))
