"""The strict verifier: a justification passes only if everything it says is supported by the facts
and its reason states a link the system can show.

One rule, one check function, one row in RULES (each is tested on its own in
tests/test_verifier_rules.py). A text fails on any rule; the names are what
Justification.failed_rules and the evaluation's per-rule counts carry.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from explainer.actions import ACTION_WORDS, claimed_classes, supports, you_did_claims
from explainer.facts import ItemFacts
from explainer.links import CoPurchases, LinkKind
from explainer.makers import Makers
from explainer.names import name_problem
from explainer.price_compare import price_claim
from explainer.search_match import mask_search, search_claim, states_search
from explainer.shapes import off_shape as _off_shape
from explainer.text import clean_text

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
category categories brand brands made maker item items version together customers people
""".split()) | ACTION_WORDS
NEGATIONS = frozenset("not no never none nothing neither nor n't cannot isn't aren't doesn't don't won't".split())
# Praise no fact states: the facts say what the item is, never how good it is.
EVALUATIVE = frozenset("""
best better great greatest excellent perfect perfectly ideal ideally premium high-end top-rated top top-notch
amazing awesome fantastic superb superior outstanding exceptional quality high-quality reliable durable
popular favorite favourite must-have essential recommended-by trusted beloved impressive affordable cheap
""".split())

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,/]\d+)*")
# "because you bought / rated / looked at …": any action the shopper took (explainer/actions.py)
_BECAUSE = re.compile(r"\b(?:because|since|as|given\s+that|now\s+that)\s+you(?:'ve| have)?\s+"
                      r"(?:already\s+|recently\s+)?[a-z]+(?:ed|ought|own|ew)\b", re.I)
_ECHO_MARKERS = ("<|im_", "<|endoftext", "facts:", "fact:", "instruction", "shopper's purchases",
                 "recommended item:", "write one sentence", "one sentence", "text in quotes", "assistant",
                 "system:", "user:")
_IS_A = r"\b(?:which|that|it)\s+(?:is|was)\s+(?:also\s+)?(?:a|an|the)?\s*"
_IS_A_MAKER = re.compile(_IS_A + r"(?:\w+\s+){0,2}?(?:brand|company|manufacturer|maker|supplier|vendor)\b(?!\s+of\s+the)",
                         re.I)

# How a text states each link kind (explainer/links.py), and how it claims one.
_CLAIM: dict[LinkKind, re.Pattern] = {
    LinkKind.BRAND: re.compile(r"\b(?:also|too|likewise|both)\b(?:\s+\w+){0,3}?\s+(?:by|from)\b|\bsame\s+(?:brand|maker|manufacturer)\b"
                                r"|\b(?:made|produced)\s+by\s+the\s+same\b", re.I),
    LinkKind.CATEGORY: re.compile(r"\b(?:also|too|both)\s+(?:\w+\s+){0,2}?(?:in|from)\b|\bsame\s+(?:category|kind|type|range)\b", re.I),
    LinkKind.BOUGHT_TOGETHER: re.compile(r"\b(?:shoppers|customers|people|buyers|others)\b(?:\s+\w+){0,5}?\s+(?:bought|buy|purchased|ordered)\b"
                                         r"|\bbought\s+(?:\w+\s+)?together\b|\bbought\s+both\b", re.I),
    LinkKind.VARIANT: re.compile(r"\bsame\s+(?:\w+\s+){0,3}?(?:in|but|with)\b|\b(?:another|different|other)\s+(?:colou?r|size|version|length)\b"
                                 r"|\bsame\s+product\b", re.I),
    LinkKind.SIMILAR: re.compile(r"\bsimilar\b|\bclose\s+to\b|\bmuch\s+like\b", re.I),
}


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


@dataclass
class Context:
    """One text and what it is checked against; derived views are computed once."""

    text: str
    facts: ItemFacts
    history_titles: Sequence[str]
    history_kinds: Sequence[Sequence[str]] | None   # recorded event kinds per history title; None unknown
    finish_reason: str
    prompt_text: str
    prefill: str
    brands: dict[str, re.Pattern]
    makers: Makers | None = None   # which brand the item's title lets a text call its maker
    facts_text: str = ""
    own: str = ""          # the model's words: the text after the system-written prefill
    unnamed: str = ""      # the text with the item's and the anchor's names removed
    own_unnamed: str = ""  # the model's words with the names removed
    stated: tuple[LinkKind, ...] = ()     # link kinds the text states and the facts support
    claimed: tuple[LinkKind, ...] = ()    # link kinds the text claims, supported or not
    notes: dict = field(default_factory=dict)
    raw_text: str = ""     # the text as written; `text` has the quoted search masked (below)

    def __post_init__(self) -> None:
        f = self.facts
        # the shopper's search is data: quoted, it is masked in the text, the prefill and the facts alike,
        # so its words license nothing outside the quotes ("…say FREE" does not make "free" a fact)
        self.raw_text = self.text
        self.text, self.prefill = mask_search(self.text, f.search), mask_search(self.prefill, f.search)
        self.facts_text = mask_search(" ".join(f.lines), f.search) + f' "{f.item_name}" "{f.anchor_name}"'
        self.own = self.text[len(self.prefill):] if self.prefill and self.text.startswith(self.prefill) else self.text
        self.unnamed = _without_names(self.text, f)
        self.own_unnamed = _without_names(self.own, f)
        self.claimed = tuple(k for k, pat in _CLAIM.items() if _claims(pat, self.unnamed, f))
        self.stated = stated_links(self.text, f)


def _claims(pat: re.Pattern, text: str, facts: ItemFacts) -> bool:
    """The pattern claims its link, unless a shared attribute value follows it ("also from the 1990s"
    states the attribute link, not a brand)."""
    return any(not any(v.lower() in text[m.end():m.end() + 60].lower() for v in facts.shared_values)
               for m in pat.finditer(text))


def _without_names(text: str, facts: ItemFacts, count: int = 0) -> str:
    """The text with the item's and the anchor's names taken out (count=1: only their first mention,
    so a category that is also a name, "Because you bought the Brad Nails … both are in Brad Nails",
    still counts)."""
    for name in sorted({facts.item_name, facts.anchor_name}, key=len, reverse=True):
        if name:
            text = re.sub(r"(?<![A-Za-z0-9])" + re.escape(name) + r"(?![A-Za-z0-9])", " ", text, count=count,
                          flags=re.I)
    return text


def stated_links(text: str, facts: ItemFacts) -> tuple[LinkKind, ...]:
    """The link kinds (facts.links) that the text states: each needs its words, and the brand or
    the category its name."""
    if not facts.anchor_name or facts.anchor_name.lower() not in text.lower():   # the cited item, by its name
        return ()
    unnamed = _without_names(text, facts, count=1)
    low = unnamed.lower()
    out = []
    for kind in facts.links:
        if kind == LinkKind.BRAND and facts.brand and facts.brand.lower() in low:
            out.append(kind)
        elif kind == LinkKind.CATEGORY and facts.shared_category and (   # the shared category itself, all its words
                facts.shared_category.lower() in low
                or set(content_words(facts.shared_category)) <= set(content_words(unnamed))):
            out.append(kind)
        elif kind in (LinkKind.BOUGHT_TOGETHER, LinkKind.VARIANT, LinkKind.SIMILAR) and _CLAIM[kind].search(unnamed):
            out.append(kind)
        elif kind == LinkKind.ATTRIBUTE and any(v.lower() in low for v in facts.shared_values):
            out.append(kind)
        elif kind == LinkKind.VARIANT and facts.variant and facts.variant.lower() in text.lower() and "same" in low:
            out.append(kind)
    return tuple(out)


# -- the rules: (ctx) -> True when the text fails ------------------------------------------------
def other_brand(c: Context) -> bool:
    """Names a catalog brand other than the item's or one the facts contain."""
    facts_lower, own_brand = c.facts_text.lower(), c.facts.brand.lower()
    # an ASCII brand can only match an ASCII text where its lower-case form is a substring: that test
    # skips the regex for nearly all of the catalog's thousands of brands (non-ASCII text or brand:
    # re.IGNORECASE folds more than lower() does, so the regex alone decides)
    low = c.text.lower() if c.text.isascii() else None
    return any(key != own_brand and key not in facts_lower and (low is None or not key.isascii() or key in low)
               and pat.search(c.text) for key, pat in c.brands.items())


def number(c: Context) -> bool:
    """A number that is not in the facts."""
    return bool(numbers(c.text) - numbers(c.facts_text))


def false_action(c: Context) -> bool:
    """The stated action must match the recorded event: "you bought/rated/looked at X" where X is not
    in the shopper's history, is the item itself, or what the shopper did with X was something else
    (a rating is not a purchase); or a text says someone bought/rated/... when no fact uses that
    action ("other shoppers bought both" on a ratings catalog)."""
    facts, text = c.facts, c.text
    anchor = facts.anchor_name
    kinds_by_title = list(zip(c.history_titles, c.history_kinds if c.history_kinds is not None
                              else [()] * len(c.history_titles)))
    names = [facts.item_name, anchor, facts.item_title, *c.history_titles]
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
    return bool(claimed_classes(text, names) - claimed_classes(c.facts_text, names))


def no_mention(c: Context) -> bool:
    """Names neither the item nor the cited history item."""
    return not (mentions(c.text, c.facts.item_name) or (c.facts.anchor_name and mentions(c.text, c.facts.anchor_name)))


def unsupported(c: Context) -> bool:
    """More than a third of the model's content words are absent from the facts."""
    return unsupported_share(c) > 1 / 3


def unsupported_share(c: Context) -> float:
    cw = content_words(c.own)
    if not cw:   # nothing of its own beyond the frame: judged as a whole
        return 0.0 if c.own.strip(" .!?") == "" and c.own != c.text else (1.0 if not content_words(c.text) else 0.0)
    supported = set(content_words(c.facts_text)) | {norm(w) for w in FRAME_WORDS}
    return sum(1 for w in cw if w not in supported) / len(cw)


def truncated(c: Context) -> bool:
    """Cut by the token limit, or does not end a sentence."""
    s = c.text.strip()
    return c.finish_reason == "length" or not s or s[-1] not in ".!?"


def repetitive(c: Context) -> bool:
    """Repeats a word three times, a three-word phrase, or a token run ("100% 100% 100%")."""
    ws = words(c.unnamed)
    if any(ws[i] == ws[i + 1] == ws[i + 2] for i in range(len(ws) - 2)):
        return True
    grams = [tuple(ws[i:i + 3]) for i in range(len(ws) - 2)]
    if len(grams) != len(set(grams)):
        return True
    toks = re.findall(r"\S+", c.unnamed)
    return any(toks[i] == toks[i + 1] == toks[i + 2] for i in range(len(toks) - 2))


def prompt_echo(c: Context) -> bool:
    """Echoes the prompt's instructions or chat markup (catalog data may hold such words: only the
    text beyond the facts counts)."""
    low, facts_lower = c.unnamed.lower(), c.facts_text.lower()
    return any(mark in low and mark not in facts_lower for mark in _ECHO_MARKERS) or _echoes(c.unnamed, c.prompt_text)


_SAME_AS = re.compile(r"\bsame\s+(?:product|item|one)\s+as\s+(?:the\s+)?[\"“']?", re.I)


def misidentity(c: Context) -> bool:
    """Calls the item the history item, calls it the same product as anything but its anchor, or calls a
    product a brand/company/manufacturer."""
    f = c.facts
    if f.anchor_name and re.search(_IS_A + re.escape(f.anchor_name), c.text, re.I) \
            and f.anchor_name.lower() not in f.item_name.lower():
        return True
    if f.item_name and re.search(r"\bsame\s+(?:\w+\s+){0,2}as\s+the\s+" + re.escape(f.item_name), c.text, re.I):
        return True   # "the X, the same product as the X"
    if f.anchor_name:
        for m in _SAME_AS.finditer(c.text):
            if not c.text[m.end():].lower().startswith(f.anchor_name.lower()):
                return True   # "the same product as the <a brand / another item>": only the anchor can be
    if re.search(r"\bsame\s+(?:\w+\s+)?(?:product|item|one)\s+(?:that\s+)?you(?:'ve| have)?\s+(?:already\s+)?"
                 r"(?:bought|purchased|own)", c.text, re.I):
        return True   # a variant is not "the same product you bought"
    return bool(_IS_A_MAKER.search(c.text))


def because_link(c: Context) -> bool:
    """A "because / since / as you bought" clause must be followed by a link the facts support."""
    return bool(_BECAUSE.search(c.text)) and not c.stated


# a weak reason (explainer.links.weak_reason) states one claim that is no link: a few shoppers' purchases,
# or the model's closeness
_WEAK_REASON_CLAIM = {"co_buyers": LinkKind.BOUGHT_TOGETHER, "model_near": LinkKind.SIMILAR}


def false_link(c: Context) -> bool:
    """Claims a link ("also by", "also in", "shoppers bought both", "similar", "same product in")
    that the facts do not hold."""
    return any(k not in c.facts.links and k != _WEAK_REASON_CLAIM.get(c.facts.reason) for k in c.claimed)


def no_reason(c: Context) -> bool:
    """No link with the history, and the text does not state the weak reason the facts hold (the
    few shoppers who bought the named history item too, or the model's closest one): a description
    ("You may like the Trash Dolly from Dollies by Rubbermaid") is no reason to the shopper."""
    f = c.facts
    if states_search(c.raw_text, f.search):
        return False   # the search the item matches is the reason (explainer/search_match.py)
    if f.reason == "model_history":   # no history item to name: the model's ranking is the reason
        return not f.links and not re.search(r"\bour model\b", c.text, re.I)
    return bool(f.reason) and not f.links and not (f.reason_name and mentions(c.text, f.reason_name))


def missing_link(c: Context) -> bool:
    """The facts hold a link with a history item, and the text states none."""
    return bool(c.facts.links) and not c.stated


_CATEGORY_AFTER = re.compile(r"\bcategor(?:y|ies)\b\s*(?:of|:|,|is|called|named)?\s*(?:the\s+)?([^,.;!?]{2,60})", re.I)
_ALSO_IN = re.compile(r"\b(?:also|both\s+are|are\s+both)\s+in\s+(?:the\s+)?(?:categor(?:y|ies)\s*(?:of\s+)?(?:the\s+)?)?"
                      r"([^,.;!?]{2,60})", re.I)
_CATEGORY_BEFORE = re.compile(r"\b(?:in|from|of)\s+(?:the\s+)?([^,.;!?]{2,60}?)\s+categor(?:y|ies)\b", re.I)


def category_claim(c: Context) -> bool:
    """A category the text names must be the item's category or, after "also"/"both", the one it
    shares with the anchor; named with the category's own words, not more ("Fork Terminals" is not
    "Terminals")."""
    own = [n for n in (c.facts.category, c.facts.shared_category) if n]
    shared = [c.facts.shared_category] if c.facts.shared_category else []
    for name in (c.facts.item_name, c.facts.anchor_name):   # "in the category of <a product's name>"
        if name and name.lower() not in {n.lower() for n in own} and re.search(
                r"\bcategor(?:y|ies)\s*(?:of|:|,|is|called|named)?\s*(?:the\s+)?" + re.escape(name) + r"(?![A-Za-z0-9])",
                c.text, re.I):   # the name whole: "Rubber Stopper" is not the category "Rubber Stoppers"
            return True
    for m in _ALSO_IN.finditer(c.unnamed):   # "also in Single Resistors" where only Resistors is shared
        phrase = re.split(r"\s+(?:and|by|from|with|which)\s+", m.group(1).strip(), maxsplit=1)[0]
        phrase = re.sub(r"\s+categor(?:y|ies)\b.*$", "", phrase)   # "both are in the Locknuts category"
        if content_words(phrase) and shared and not any(
                set(content_words(phrase)) <= set(content_words(n)) for n in shared) \
                and not any(v.lower() in phrase.lower() for v in c.facts.shared_values):
            return True
    for pat in (_CATEGORY_AFTER, _CATEGORY_BEFORE):
        for m in pat.finditer(c.unnamed):
            phrase = m.group(1).strip()
            if not content_words(phrase) or re.fullmatch(r"(?:same|this|that|a|one|its|their)\b.*", phrase, re.I) \
                    or re.match(r"(?:as|and|because|so)\b", phrase, re.I):
                continue   # "in the category …", "in the same category"
            real = shared if re.search(r"\b(?:also|both|too)\b", c.unnamed[max(0, m.start() - 25):m.start() + 5], re.I) \
                else own
            if not any(mentions(phrase, n) and set(content_words(phrase)) <= set(content_words(n)) for n in real):
                return True
    return False


def negation(c: Context) -> bool:
    """A negation in the model's words: no fact is negative, so "not a product of …" is unsupported."""
    facts_words = set(words(c.facts_text))   # a brand may hold one ("Never Pay Retail Again Inc.")
    return any((w in NEGATIONS or w.endswith("n't")) and w not in facts_words for w in words(c.own_unnamed))


def evaluative(c: Context) -> bool:
    """Praise with no fact behind it ("high-end", "best", "premium", "perfect", "top-rated")."""
    facts_words = set(words(c.facts_text))
    return any(w in EVALUATIVE and w not in facts_words for w in words(c.own_unnamed))


def name_quality(c: Context) -> bool:
    """The names the text uses are clean noun phrases, and the item's differs from the anchor's."""
    f = c.facts
    if name_problem(f.item_name) or (f.anchor_name and name_problem(f.anchor_name)):
        return True
    return bool(f.anchor_name) and f.anchor_name.lower() == f.item_name.lower()


def brand_not_maker(c: Context) -> bool:
    """Calls the brand field the maker ("by Cubitron") where the item's title names another maker
    ("3M Hookit Film Disc"): the field holds a product line, a reseller or a parent (explainer/makers.py).
    The facts leave such a brand out; this catches facts or texts that did not."""
    b = c.facts.brand
    if not b or c.makers is None or c.makers.maker(c.facts.item_title, b):
        return False
    return bool(re.search(r"(?<![A-Za-z0-9])" + re.escape(b) + r"(?![A-Za-z0-9])", c.unnamed, re.I))


def weak_link(c: Context) -> bool:
    """Gives "N other shoppers bought both" as the reason where too few did for a pair with nothing
    else in common (explainer/links.py: a cut-off wheel and a trash dolly bought by 3 shoppers)."""
    f = c.facts
    alone = not (f.shared_category or f.variant or f.shared_values or f.same_brand
                 or any(k in f.links for k in (LinkKind.VARIANT, LinkKind.CATEGORY, LinkKind.ATTRIBUTE, LinkKind.BRAND)))
    if f.reason == "co_buyers":   # stated as the weak reason it is ("3 other shoppers who bought your X also bought it")
        return False
    return alone and 0 < f.shoppers < CoPurchases.MIN_SHOPPERS_ALONE and LinkKind.BOUGHT_TOGETHER in c.claimed


def off_shape(c: Context) -> bool:
    """The model's sentence is not one a shopper reads as a reason (explainer/shapes.py): a free-form
    clause made of the facts' words ("…, but the actual product is Gorilla's Black Duct Tape …").
    Only a generated text (one that continues the system's prefill) is held to the shapes; the
    template's are fixed and tested on their own."""
    return bool(c.prefill) and c.text.startswith(c.prefill) and _off_shape(c.text, c.facts)


@dataclass(frozen=True)
class Rule:
    name: str
    check: Callable[[Context], bool]
    kind: str   # "hallucination" (says something false), "link" (the reason), "form" (the text itself)


RULE_TABLE: tuple[Rule, ...] = (
    Rule("other_brand", other_brand, "hallucination"),
    Rule("number", number, "hallucination"),
    Rule("false_action", false_action, "hallucination"),
    Rule("unsupported", unsupported, "hallucination"),
    Rule("misidentity", misidentity, "hallucination"),
    Rule("false_link", false_link, "hallucination"),
    Rule("category_claim", category_claim, "hallucination"),
    Rule("negation", negation, "hallucination"),
    Rule("evaluative", evaluative, "hallucination"),
    Rule("price_claim", price_claim, "hallucination"),   # explainer/price_compare.py
    Rule("search_claim", search_claim, "hallucination"),   # explainer/search_match.py
    Rule("brand_not_maker", brand_not_maker, "hallucination"),
    Rule("because_link", because_link, "link"),
    Rule("missing_link", missing_link, "link"),
    Rule("weak_link", weak_link, "link"),
    Rule("no_reason", no_reason, "link"),
    Rule("no_mention", no_mention, "form"),
    Rule("truncated", truncated, "form"),
    Rule("repetitive", repetitive, "form"),
    Rule("prompt_echo", prompt_echo, "form"),
    Rule("name_quality", name_quality, "form"),
    Rule("off_shape", off_shape, "form"),
)
RULES = tuple(r.name for r in RULE_TABLE)
HALLUCINATION_RULES = tuple(r.name for r in RULE_TABLE if r.kind == "hallucination")


@dataclass(frozen=True)
class Verdict:
    failed: tuple[str, ...]
    mentions_item: bool
    mentions_history: bool
    mentions_attribute: bool          # names the item's brand or category
    unsupported_share: float
    links_stated: tuple[LinkKind, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def linked(self) -> bool:
        """The reason states a supported link, or honestly gives none where the facts have none
        (the evaluation's link_rate)."""
        return bool(self.links_stated) or ("missing_link" not in self.failed and "because_link" not in self.failed
                                           and "false_link" not in self.failed)


@functools.lru_cache(maxsize=None)
def _brand_pattern(key: str) -> re.Pattern:
    """One brand as a whole word. Cached across verifiers: the read model builds a new Verifier when an
    upsert brings a new brand, and compiling thousands of brands again took most of a second."""
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(key) + r"(?![A-Za-z0-9])", re.I)


class Verifier:
    """Checks a text against one item's facts. `brands`: every brand in the catalog."""

    def __init__(self, brands: Iterable[str], rules: Sequence[Rule] = RULE_TABLE):
        self.rules = tuple(rules)
        self._brands: dict[str, re.Pattern] = {}
        for b in {clean_text(b) for b in brands if b}:
            key = re.sub(r"^(?:the|a|an)\s+", "", b.lower())   # "The Hillman Group" vs "the Hillman Group Anchors"
            if len(key) < 2 or key in STOP_WORDS or key in FRAME_WORDS:
                continue
            self._brands[key] = _brand_pattern(key)
        self.makers = Makers(brands)   # which brand may be called an item's maker; the facts use it too

    def context(self, text: str, facts: ItemFacts, history_titles: Sequence[str], finish_reason: str = "stop",
                prompt_text: str = "", prefill: str = "",
                history_kinds: Sequence[Sequence[str]] | None = None) -> Context:
        return Context(text, facts, history_titles, history_kinds, finish_reason, prompt_text, prefill, self._brands,
                       self.makers)

    def verify(self, text: str, facts: ItemFacts, history_titles: Sequence[str],
               finish_reason: str = "stop", prompt_text: str = "", prefill: str = "",
               history_kinds: Sequence[Sequence[str]] | None = None) -> Verdict:
        """prompt_text: the static instructions (echo check). prefill: the frame the system wrote;
        rules on the model's own words look at the text after it. history_kinds: the recorded event
        kinds of each history title (same order); None: unknown."""
        c = self.context(text, facts, history_titles, finish_reason, prompt_text, prefill, history_kinds)
        failed = tuple(r.name for r in self.rules if r.check(c))
        low = text.lower()
        m_attr = any(a and a.lower() in low for a in (facts.brand, facts.category, facts.shared_category,
                                                      *facts.attribute_values))
        m_hist = bool(facts.anchor_name) and mentions(text, facts.anchor_name)
        return Verdict(failed, mentions(text, facts.item_name), m_hist, m_attr, unsupported_share(c), c.stated)


def _echoes(text: str, prompt_text: str, n: int = 8) -> bool:
    """An 8-word run copied from the instructions (not from the data, which the text may quote)."""
    if not prompt_text:
        return False
    pw = words(prompt_text)
    grams = {tuple(pw[i:i + n]) for i in range(len(pw) - n + 1)}
    tw = words(text)
    return any(tuple(tw[i:i + n]) in grams for i in range(len(tw) - n + 1))
