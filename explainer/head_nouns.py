"""Whether a short name names a product: it ends in a head noun, and it is more than the maker.

An English noun phrase ends in its head noun ("Leaded Solder Paste", "Over-The-Door Single Hook"),
and the head says what kind of product it is. A name cut from a title can end elsewhere: in a
feature word ("No Clean", from "63/37 No Clean, Leaded Solder Paste"), in a participle ("… Hook
Vinyl Coated"), or be only the maker ("JYE Tech", from "… DIY KIT by JYE Tech FG085"). To a
shopper those name nothing.

The rule (`is_head_noun`), in order:
  - a word of the item's own category is a noun ("Caulk" for "Caulks & Sealants": the catalog
    calls products by it);
  - a colour, a number word, or one of the `DESCRIPTORS` below, is not: words the lexicon also
    lists as nouns, but that in a product title describe ("Heavy Duty", "Lead Free", "Food Grade");
  - an acronym ("LED", "PLA", "USB") is a noun, unless the lexicon has it as an adjective or
    adverb only ("NOT");
  - else the English lexicon decides (lemminflect, built from the AGID word lists): a word it
    lists as a noun is one; a word it lists only as an adjective or adverb ("Digital",
    "Rectangular"), or only as a verb's participle ("Coated", "Graduated", "Made"), is not; a
    verb's base form it knows only as a verb is taken as a noun (titles use "Caulk", "Swivel",
    "Disconnects" as nouns); a word it does not know (coined product words: "Hotend",
    "Borescope") is a noun unless it ends like an adjective or a participle.
The lexicon loads on first use (about 1 s).
"""
from __future__ import annotations

import functools
import re

# Nouns by the lexicon that, at the end of a title's phrase, describe a feature rather than name a
# product: "Heavy Duty", "No Clean", "Lead Free", "Food Grade", "High Precision", "All Purpose".
DESCRIPTORS = frozenset("""
clean free proof waterproof resistant great quick wide sterile disposable straight professional female male
variable bipolar senior out up down precision heavy portable duty grade quality purpose strength performance
capacity use usage style type design series edition version long short ultra extra super small large big mini
one two three four five six ten twin single double triple form width length height thickness diameter depth
""".split())
_COLOURS = frozenset("""
black white red green blue yellow orange purple pink violet brown grey gray silver gold golden clear transparent
translucent natural beige tan ivory cyan magenta teal navy lime olive maroon bronze neon fluorescent
""".split())
_ADJ_ENDING = re.compile(r"(?:able|ible|ous|ful|less|ive|ed|ish|ical)$")
ACRONYM = re.compile(r"^[A-Z][A-Z0-9+&\-]{1,5}s?$")   # LED, PLA, USB, PCBs
_TAG = re.compile(r"\s*\([^()]*\)$|\s+in\s+[^()]+$")   # distinct_names' variant tags: "(1.75 mm)", "in Blue"


@functools.lru_cache(maxsize=1)
def _lexicon():
    import lemminflect   # ~1 s to load its tables: only when a name is judged

    return lemminflect


@functools.lru_cache(maxsize=65_536)
def _lexicon_pos(word: str) -> frozenset[str]:
    """The parts of speech the lexicon lists for the word (empty: unknown)."""
    return frozenset(_lexicon().getAllLemmas(word))


def singular_forms(word: str) -> set[str]:
    """The word and its singular guesses ("vises" -> vise/vis, "batteries" -> battery)."""
    w = word.lower().strip(".'")
    out = {w}
    if w.endswith("ies") and len(w) > 4:
        out.add(w[:-3] + "y")
    if w.endswith("es") and len(w) > 4:
        out.add(w[:-2])
    if w.endswith("s") and len(w) > 3:
        out.add(w[:-1])
    return out


def category_words(category: str) -> frozenset[str]:
    """The words of a category's name and their singular guesses ("Caulks & Sealants" -> caulk, sealant, …)."""
    return frozenset(s for w in re.findall(r"[A-Za-z]+", category or "") if len(w) > 2 for s in singular_forms(w))


def is_head_noun(word: str, category: str = "") -> bool:
    """Whether `word` can end a product's name as its head noun (the rule in the module docstring)."""
    w = word.strip(".,;:!?'’\"()-")
    if not w or not re.search(r"[A-Za-z]", w):
        return False
    if "/" in w and all(len(p) <= 3 for p in w.split("/")):
        return False   # "AC/DC", "L/C/R", "MOS/PNP/NPN": a list of specs, not a product
    low = w.lower()
    last = re.split(r"[-/]", low)[-1] or low   # "Tri-Dolly", "Hook/Loop": the last part heads it
    if singular_forms(low) & category_words(category) or singular_forms(last) & category_words(category):
        return True
    if low in DESCRIPTORS or last in DESCRIPTORS or low in _COLOURS or last in _COLOURS:
        return False
    pos = _lexicon_pos(low) or _lexicon_pos(last)
    if ACRONYM.match(w) and not ({"ADJ", "ADV"} & pos and "NOUN" not in pos):
        return True   # "LED" (not the verb), "PCB", "MCU"; but "NOT" is an adverb
    if not pos:
        return not _ADJ_ENDING.search(last)
    if "NOUN" in pos or "PROPN" in pos:
        return True
    if "VERB" in pos:
        # a participle ("Coated", "Printing", "Made") describes; a base form or an -s form is used as a noun
        lemma = _lexicon().getAllLemmas(last or low).get("VERB", (last,))[0]
        return last == lemma or last in (lemma + "s", lemma + "es")
    return False   # an adjective, adverb, determiner, … only


def participle(word: str) -> bool:
    """A verb's -ing or -ed form ("Drilling", "Shielded"), even where the lexicon also lists it as a noun:
    in a title it may lean on the word before ("Self Drilling", "Single Row Shielded"). One the lexicon
    also lists as an adjective ("Depressed", "Prepared") describes the word after it."""
    low = word.lower().strip(".,")
    if not low.endswith(("ing", "ed")) or "ADJ" in _lexicon_pos(low) or ACRONYM.match(word):   # "LED": no "lead"
        return False
    verbs = _lexicon().getAllLemmas(low).get("VERB", ()) if "VERB" in _lexicon_pos(low) else ()
    return bool(verbs) and low not in verbs


def base_of(name: str) -> str:
    """A name without the variant tags distinct_names adds ("PLA Filament in Blue" -> "PLA Filament")."""
    prev = None
    while prev != name:
        prev, name = name, _TAG.sub("", name).strip()
    return name


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_COMPANY = frozenset("inc co corp corporation company llc ltd limited gmbh manufacturing mfg group industries"
                     " international intl products brands enterprises usa technology technologies tech".split())


def is_brand(words: str, brand: str) -> bool:
    """The words are the brand's name, or part of it with company suffixes ("JYE Tech" of JYETech,
    "Bob Smith Ind" of Bob Smith Industries)."""
    key, bkey = _key(words), _key(brand)
    if not key or not bkey:
        return False
    bwords = {_key(w) for w in re.findall(r"[A-Za-z0-9]+", brand)}
    return key == bkey or (len(key) >= 4 and key in bkey) \
        or all(_key(w) in bwords or _key(w) in _COMPANY for w in re.findall(r"[A-Za-z0-9]+", words))


def known_noun(word: str, category: str = "") -> bool:
    """A noun the lexicon or the item's category knows (not merely an unknown word)."""
    low = word.lower().strip(".,")
    return bool(singular_forms(low) & category_words(category)) or "NOUN" in _lexicon_pos(low) and low not in DESCRIPTORS


def head_problem(name: str, brand: str = "", category: str = "") -> str:
    """Why a name names no product ("" when it does): "brand_only" (only the maker's name, as in
    "JYE Tech" for brand "JYETech"), or "no_head_noun" (it ends in a feature word, an adjective or a
    participle: "No Clean", "… Vinyl Coated")."""
    base = base_of(name)
    words = base.split()
    if not words:
        return ""
    if brand and is_brand(base, brand) and not known_noun(words[-1], category):
        return "brand_only"   # "Silica Gel" by the brand Silica Gel still says what it is
    if not is_head_noun(words[-1], category):
        return "no_head_noun"
    return ""
