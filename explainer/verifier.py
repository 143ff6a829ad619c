"""The strict verifier: a justification passes only if everything it names is supported by the facts.

Rules (a text fails on any; the names are what Justification.failed_rules carries):
  other_brand      names a catalog brand other than the item's or a cited history item's
  number           contains a number that is not in the facts
  false_action     the stated action does not match the recorded event: "you bought/rated/looked at X"
                   where X is not in the shopper's history, is the item itself, or what the shopper did
                   with X was something else (a rating is not a purchase); or a text says someone
                   bought/rated/... when no fact uses that action ("other shoppers bought both"
                   on a ratings catalog)
  no_mention       names neither a cited history item nor the item
  unsupported      more than a third of its content words (beyond stop words) are absent from the facts
  truncated        cut by the token limit, or does not end a sentence
  repetitive       repeats a phrase or a word run
  prompt_echo      echoes the prompt's instructions or chat markup
  misidentity      calls the item the history item, or calls a product a brand/company/manufacturer
                   (added after reading audits: "the 1.75mm filament, which is a <the 3mm filament>")
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from explainer.actions import ACTION_WORDS, claimed_classes, supports, you_did_claims
from explainer.facts import ItemFacts, clean_text

RULES = ("other_brand", "number", "false_action", "no_mention", "unsupported", "truncated",
         "repetitive", "prompt_echo", "misidentity")
_IS_A = r"\b(?:which|that|it)\s+(?:is|was)\s+(?:also\s+)?(?:a|an|the)?\s*"
_IS_A_MAKER = re.compile(_IS_A + r"(?:\w+\s+){0,2}?(?:brand|company|manufacturer|maker|supplier|vendor)\b(?!\s+of\s+the)",
                         re.I)

STOP_WORDS = frozenset("""
a an the and or but if then so as of at by for with without to from in on onto into over under
is are was were be been being am it its it's this that these those there here which who whom whose what
you your yours you've you're i me my we our us they them their he she his her
do does did done have has had having can could may might will would shall should must
not no nor also too very just only more most much many some any each every both either neither all
because since while when where why how than such same like likewise well
one's own other others another up down out off again further once about above below between
get gets got make makes made use used using
""".split())

# Words a justification may use without a fact behind them: the frame's connective tissue.
FRAME_WORDS = frozenset("""
bought buy buying purchased purchase ordered recommend recommended product products shopper shoppers
category categories brand brands made maker
""".split()) | ACTION_WORDS
# Words that claim the item shares something with the history item.
SHARING_WORDS = frozenset("also too likewise both same similar another".split())
_ALSO_BRAND = re.compile(r"\b(?:also|too|likewise)\b(?:\s+\w+){0,3}?\s+(?:by|from|of)\b", re.I)
_ALSO_CATEGORY = re.compile(r"\b(?:also|too|likewise)\s+(?:in|a|an)\b", re.I)
# Negations: no fact is negative, so a negation in the model's words is an unsupported claim.
NEGATIONS = frozenset("not no never none nothing neither nor n't cannot isn't aren't doesn't don't".split())

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,/]\d+)*")
_ECHO_MARKERS = ("<|im_", "<|endoftext", "facts:", "fact:", "instruction", "shopper's purchases",
                 "recommended item:", "write one sentence", "one sentence", "text in quotes", "assistant",
                 "system:", "user:")


def words(text: str) -> list[str]:
    return [w.lower().strip("'-") for w in _WORD.findall(text)]


def norm(word: str) -> str:
    """A cheap stem: enough to match "rolls"/"roll", "filaments"/"filament"."""
    w = word.lower().strip("'-")
    for suf in ("'s", "ies", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


def content_words(text: str) -> list[str]:
    return [norm(w) for w in words(text) if w and w not in STOP_WORDS and len(w) > 1]


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def mentions(text: str, name: str) -> bool:
    """The text names `name`: verbatim, or most of its content words appear."""
    if not name:
        return False
    if name.lower() in text.lower():
        return True
    want = set(content_words(name))
    if not want:
        return False
    have = set(content_words(text))
    return len(want & have) >= max(1, round(0.6 * len(want)))


@dataclass(frozen=True)
class Verdict:
    failed: tuple[str, ...]
    mentions_item: bool
    mentions_history: bool
    mentions_attribute: bool          # names the item's brand or category
    unsupported_share: float

    @property
    def ok(self) -> bool:
        return not self.failed


class Verifier:
    """Checks a text against one item's facts. `brands`: every brand in the catalog."""

    def __init__(self, brands: Iterable[str]):
        self._brands: dict[str, re.Pattern] = {}
        for b in {clean_text(b) for b in brands if b}:
            key = re.sub(r"^(?:the|a|an)\s+", "", b.lower())   # "The Hillman Group" vs "the Hillman Group Anchors"
            if len(key) < 2 or key in STOP_WORDS or key in FRAME_WORDS:
                continue
            self._brands[key] = re.compile(r"(?<![A-Za-z0-9])" + re.escape(key) + r"(?![A-Za-z0-9])", re.I)

    def verify(self, text: str, facts: ItemFacts, history_titles: Sequence[str],
               finish_reason: str = "stop", prompt_text: str = "", prefill: str = "",
               history_kinds: Sequence[Sequence[str]] | None = None) -> Verdict:
        """prompt_text: the static instructions (echo check). prefill: the frame the system wrote;
        the unsupported-words share is taken over the words after it (the model's own).
        history_kinds: the recorded event kinds of each history title (same order); None: unknown."""
        failed: list[str] = []
        facts_text = " ".join(facts.lines) + f' "{facts.item_name}" "{facts.anchor_name}"'
        facts_lower = facts_text.lower()
        low = text.lower()

        # other_brand: a catalog brand the facts do not contain
        allowed = {facts.brand.lower()}
        for key, pat in self._brands.items():
            if key in allowed or key in facts_lower:
                continue
            if pat.search(text):
                failed.append("other_brand")
                break

        if numbers(text) - numbers(facts_text):
            failed.append("number")

        if false_action(text, facts, facts_text, history_titles, history_kinds):
            failed.append("false_action")

        m_item = mentions(text, facts.item_name)
        m_hist = bool(facts.anchor_name) and mentions(text, facts.anchor_name)
        if not (m_item or m_hist):
            failed.append("no_mention")
        m_attr = any(a and a.lower() in low for a in (facts.brand, facts.category, facts.shared_category,
                                                      *facts.attribute_values))

        own = text[len(prefill):] if prefill and text.startswith(prefill) else text
        cw = content_words(own)
        negs = sum(1 for w in words(own) if w in NEGATIONS)
        # "also by B", "both", "another": a shared attribute the facts do not state
        claims_sharing = not (facts.same_brand or facts.shared_category or facts.co_bought or facts.shared_values) \
            and any(w in SHARING_WORDS for w in words(own))
        # "also by B" needs the same brand, "also in C" a shared category (co-purchase licenses only "also bought")
        # ("also from the 1990s" states a shared attribute, not a brand)
        if not facts.same_brand and any(not any(v.lower() in own[m.end():m.end() + 60].lower()
                                                for v in facts.shared_values)
                                        for m in _ALSO_BRAND.finditer(own)):
            claims_sharing = True
        if not (facts.shared_category or facts.shared_values) and _ALSO_CATEGORY.search(own):
            claims_sharing = True
        supported = set(content_words(facts_text)) | {norm(w) for w in FRAME_WORDS}
        if cw or negs:
            share = (sum(1 for w in cw if w not in supported) + negs) / (len(cw) + negs)
        else:   # nothing of its own beyond the frame: judged as a whole
            share = 0.0 if own.strip(" .!?") == "" and own != text else (1.0 if not content_words(text) else 0.0)
        if share > 1 / 3 or claims_sharing:
            failed.append("unsupported")

        stripped = text.strip()
        if finish_reason == "length" or not stripped or stripped[-1] not in ".!?":
            failed.append("truncated")

        unnamed = text
        for name in sorted({facts.item_name, facts.anchor_name}, key=len, reverse=True):
            if name:   # two similar product names are not a repetition
                unnamed = re.sub(re.escape(name), " ", unnamed, flags=re.I)
        if (facts.anchor_name and re.search(_IS_A + re.escape(facts.anchor_name), text, re.I)
                and facts.anchor_name.lower() not in facts.item_name.lower()) or _IS_A_MAKER.search(text):
            failed.append("misidentity")

        if _repetitive(unnamed):
            failed.append("repetitive")

        # catalog data may itself contain such words (an injected title): only the text beyond the facts counts
        unnamed_low = unnamed.lower()
        if any(mark in unnamed_low and mark not in facts_lower for mark in _ECHO_MARKERS) \
                or _echoes(unnamed, prompt_text):
            failed.append("prompt_echo")
        return Verdict(tuple(failed), m_item, m_hist, m_attr, share)


def false_action(text: str, facts: ItemFacts, facts_text: str, history_titles: Sequence[str],
                 history_kinds: Sequence[Sequence[str]] | None) -> bool:
    """The stated action must match the recorded event (see the module docstring)."""
    anchor = facts.anchor_name
    kinds_by_title = list(zip(history_titles, history_kinds if history_kinds is not None
                              else [()] * len(history_titles)))
    names = [facts.item_name, anchor, facts.item_title, *history_titles]
    for claim in you_did_claims(text, names):
        phrase = claim.obj
        if claim.cls == "unrecorded":
            return True
        prefix_of_anchor = bool(anchor) and anchor.lower().startswith(phrase.lower())
        if mentions(phrase, facts.item_name) and not mentions(phrase, anchor) and not prefix_of_anchor:
            return True   # "you bought <the recommended item>"
        names_anchor = bool(anchor) and (mentions(phrase, anchor) or mentions(anchor, phrase) or prefix_of_anchor)
        if names_anchor:
            kinds: set[str] = set(facts.anchor_kinds)
        else:
            named = [k for t, k in kinds_by_title if t and (mentions(phrase, t) or mentions(t, phrase))]
            if not named:
                return True   # not in the history at all
            kinds = {k for ks in named for k in ks}
        if not supports(claim.cls, kinds):
            return True
    # "other shoppers bought both", "highly rated": an action no fact states
    return bool(claimed_classes(text, names) - claimed_classes(facts_text, names))


def _repetitive(text: str) -> bool:
    ws = words(text)
    for i in range(len(ws) - 2):   # the same word three times in a row
        if ws[i] == ws[i + 1] == ws[i + 2]:
            return True
    grams = [tuple(ws[i:i + 3]) for i in range(len(ws) - 2)]
    if len(grams) != len(set(grams)):   # a repeated three-word phrase
        return True
    toks = re.findall(r"\S+", text)
    for i in range(len(toks) - 2):   # "100% 100% 100%"
        if toks[i] == toks[i + 1] == toks[i + 2]:
            return True
    return False


def _echoes(text: str, prompt_text: str, n: int = 8) -> bool:
    """An 8-word run copied from the instructions (not from the data, which the text may quote)."""
    if not prompt_text:
        return False
    pw = words(prompt_text)
    grams = {tuple(pw[i:i + n]) for i in range(len(pw) - n + 1)}
    tw = words(text)
    return any(tuple(tw[i:i + n]) in grams for i in range(len(tw) - n + 1))
