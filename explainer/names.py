"""Short product names a shopper can read, built from catalog titles.

A name is a real noun phrase taken from the title: the run of plain words that names the
product (preferably the one holding a word of the item's category, which is the product noun),
with the brand, model codes, sizes, counts and packaging left out. It never starts with a
fragment (a unit, a count word, the remains of a model code, a connective). Catalog text that
reads as an instruction or as markup is cut off before any name is built from it.

Names must also be distinct within one reply: several colour or size variants of one product
get the same base name, so `distinct_names` adds the attribute that tells them apart
("PLA 3D Printer Filament in Blue"). `name_problem` says what is wrong with a name (the
verifier's name rule and the evaluation's name_failures use it).
"""
from __future__ import annotations

import functools
import re
from typing import Iterable, Mapping, Sequence

from explainer.head_nouns import ACRONYM, category_words, is_brand, is_head_noun, known_noun, participle, singular_forms
from explainer.text import clean_text

MAX_NAME_WORDS = 6

# Catalog text that talks to a model or a browser rather than describing a product.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.]{0,40}?\b(?:instructions?|prompts?|rules|above|previous|everything)\b"
    r"|\b(?:previous|prior|above|following)\s+instructions?\b"
    r"|\b(?:reply|respond|answer|say|output|print|write|repeat)\s+(?:only|with|exactly|the\s+word|in\s+all)\b"
    r"|\byou\s+(?:are|must|should|will)\s+(?:now\s+)?(?:a|an|the|act|reply|respond|say|ignore)\b"
    r"|\b(?:system|assistant|user)\s*(?:prompt|message)?\s*:"
    r"|\bas\s+an?\s+(?:ai|assistant|language\s+model)\b"
    # code rather than a product: SQL statements and the quote-paren-semicolon that closes an injected string
    r"|\b(?:drop|truncate|alter)\s+(?:table|database)\b|\bdelete\s+from\b|\binsert\s+into\b"
    r"|\bunion\s+(?:all\s+)?select\b|\bselect\s+\*\s+from\b|\bor\s+1\s*=\s*1\b|['\"]\s*\)\s*;",
    re.I)
_MARKUP = re.compile(r"\{%\s*(\w+)[^{}]*%\}.*?\{%\s*end\1\s*%\}|\{\{[^{}]*\}\}|\{%[^{}]*%\}"   # a template block, whole
                     r"|<[^<>]{0,60}>|&[a-z]{2,8};|&#\d+;|\{\{|\}\}|\{%|%\}|\[/?[a-z]+\]|https?://\S*|www\.\S+", re.I)

# Where a title's naming part ends or a new part begins.
_SEGMENT_CUT = re.compile(r"\s*(?:,|;|:|\||\s-\s|\s–\s|\s—\s|\s/\s|\bwith\b|\bfor\b|\bw/|\bincludes?\b|\bfits\b|\bfit(?=\s+for\b)|\bcompatible\b)\s*",
                          re.I)
_BRACKETS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")
# The cuts that open what a product goes with, not what it is: "Brass Nozzle for E3D", "Funnel For Metal Safety
# Cans", "Applicator Bottle with Stainless Steel Needle", "Drum Sanding Kit - Fits Dremel - Includes …"
_DEPENDENT_CUT = re.compile(r"\b(?:for|with|includes?|fits)\b|\bw/", re.I)
# A count in words ("Set of 10", "Box of 100"): packaging, not the product ("Set of 10, LM555 (IC TIMER)")
_PACKAGING = frozenset("set sets box boxes bag bags case cases lot lots bundle bundles package packages pkg pkgs carton"
                       " cartons pair pairs roll rolls pack packs".split())
_COUNT_PHRASE = re.compile(r"\b(?:" + "|".join(sorted(_PACKAGING)) + r")\s+of\s+\d[\d,]*\b", re.I)

# The rest of a maker's name ("Duck Brand EZ Start Packing Tape", "Plumbing Products PVC Pipe Tee"): never a name's start
_MAKER_TAIL = frozenset("brand brands products inc co corp llc ltd company industries manufacturing mfg".split())
_DETERMINERS = frozenset("this these that those it its your our my their".split())
CONNECTIVES = frozenset("a an the and or of for with by in on to from per at as x w into plus &".split())
# Joins two plain words inside a name ("Kitchen and Bath Caulk"), never starts or ends one.
_INNER_CONNECTIVES = frozenset("and & or of pack set kit".split())
UNITS = frozenset("""
mm cm m km meters metres in inch inches ft foot feet yd yds yard yards mil mils micron microns um
oz ounce ounces fl lb lbs pound pounds kg g gr gram grams mg ml l liter liters litre litres gal gallon gallons qt quart
v volt volts vac vdc w watt watts a amp amps mah kw hz khz mhz ghz ohm ohms psi bar rpm awg ga gauge deg degree degrees
pcs pc pk pack packs piece pieces count ct each ea lot lots dozen
""".split())
# Words that only make sense after a number ("497 Series", "120 Grit", "50 Count"): never a name's first word.
_AFTER_NUMBER = frozenset("series grit count pack piece pieces size gauge mil thick wide long dia diameter od id x"
                          " type number qty quantity style position length crown width height way pin pins port ports gang step speed"
                          " channel channels layer ply values value terminals part parts sizes positions postions flute generation hp peak"
                          " point minute percent capacity".split())
# After-number words that never start a product's name (name_problem; "Long Nosed Marker" is fine)
_COUNT_WORDS = frozenset("series grit count pack piece pieces gauge mil position way pin pins ply x number qty values"
                         " part sizes positions postions flute generation".split())
# Words that only make sense before a number ("Number 8", "Schedule 40"): never a name's last word.
_BEFORE_NUMBER = frozenset("number no size model type style grade schedule class part version".split())
COLOURS = frozenset("""
black white red green blue yellow orange purple pink violet brown grey gray silver gold golden clear transparent
translucent natural beige tan ivory cyan magenta teal navy lime olive maroon bronze copper glow neon fluorescent
""".split())
_COLOUR_MODIFIERS = frozenset("light dark bright deep pale warm cool true real neon fire sky navy royal matte glossy"
                              " transparent translucent silk metallic".split())
_NUMBERISH = re.compile(r"^[#~±+\-]?[\d.,/:%x×\-+]*\d[\d.,/:%x×\-+\"']*[a-z]{0,6}\.?$", re.I)   # 10, 1.75mm, 2-Inch, 10pcs, 3/8
_SIZE_TOKEN = re.compile(r"^\d[\d.,/]*(?:-?(?:mm|cm|m|in|inch|inches|ft|foot|feet|yd|oz|ounce|lb|lbs|kg|g|ml|l|gal|mil|v|w|a|"
                         r"awg|ga|gauge|pcs|pc|pack|count|ct))?$", re.I)
_KEEP_CODES = re.compile(r"^(?:[234]D|[A-Z]{2,5}\+?|PLA\+|M\d+)$")   # 3D, PLA, PETG, ABS, PLA+: words, not codes
_CODE = re.compile(r"^(?=\S*\d)(?=\S*[A-Za-z])[A-Za-z0-9]+(?:[-_./][A-Za-z0-9]+)*$")
_ROMAN = re.compile(r"^(?:II|III|IV|VI|VII|VIII|IX|XI|XII)$")   # "II Flap Disc": the remains of a model name
_WORD = re.compile(r"^[A-Za-z][A-Za-z'’\-/+]*(?:\.[A-Za-z]+)*\.?!?$")   # E.T., L.A., Airplane!


def instruction_like(text: str) -> bool:
    """Catalog text that reads as an instruction to a model, or as markup."""
    return bool(_INSTRUCTION.search(text or "") or _MARKUP.search(text or ""))


def _safe_part(title: str) -> str:
    """The title up to the first instruction-like or markup passage (nothing after it is trusted)."""
    title = clean_text(title)
    cut = len(title)
    m = _INSTRUCTION.search(title)
    if m:
        cut = m.start()
    return _MARKUP.sub(" ", title[:cut]).strip(" .,;:-|")


def _kind(token: str) -> str:
    """word | number | unit | code | conn."""
    low = token.lower().strip(".")
    if low in CONNECTIVES or token in ("&", "+", "/", "-"):
        return "conn"
    if low in UNITS and token not in ("Vac", "Vacs"):   # "120 VAC" is a unit, "Wet/Dry Vac" the product
        return "unit"
    if _KEEP_CODES.match(token):
        return "word"
    if _NUMBERISH.match(token):
        return "number"
    if _CODE.match(token):
        return "code"
    if _WORD.match(token):
        return "word"
    return "number" if any(ch.isdigit() for ch in token) else "code"


def _runs(segment: str, brand_words: Sequence[str], brand: str = "") -> list[list[str]]:
    """Runs of plain words in a segment; numbers and units end a run, model codes are skipped,
    "and"/"of" may join two words inside a run."""
    tokens = segment.replace("#", " #").split()
    n = 0   # the brand's words at the start ("Apera Instruments" of "Apera Instruments, LLC")
    while n < min(len(tokens), len(brand_words)) and tokens[n].lower().strip(",.") == brand_words[n]:
        n += 1
    tokens = tokens[n:]
    runs: list[list[str]] = []
    cur: list[str] = []
    maker = False   # the run being read follows "by": a maker's name ("DIY KIT by JYE Tech FG085")
    after_by = False
    for i, tok in enumerate(tokens):
        kind = _kind(tok)
        if kind == "unit" and cur and tok.lower() in _UNIT_NOUNS and cur[-1].lower() not in _MEASURE_WORDS:
            kind = "word"   # after a word these are nouns: "Foot Switch", "Rectangular Bar", "Pressure Gauge"
        if kind == "word":
            if not cur:
                maker = after_by
            after_by = False
            cur.append(tok.rstrip("."))
        elif kind == "code":
            after_by = False
            continue
        elif kind in ("conn", "unit") and tok.lower() in _INNER_CONNECTIVES and cur and i + 1 < len(tokens) \
                and _kind(tokens[i + 1]) == "word":
            cur.append(tok)
        else:
            if cur and not (maker and _maker_like(cur, brand)):
                runs.append(cur)
            cur, maker = [], False
            after_by = tok.lower() == "by"
    if cur and not (maker and _maker_like(cur, brand)):
        runs.append(cur)
    return [_trim(r) for r in runs if _trim(r)]


def _maker_like(run: Sequence[str], brand: str) -> bool:
    """A run after "by" that is the brand, or ends in no noun the lexicon knows ("by JYE Tech", "by
    First Aid Only"): a maker's name. "Protected by Video Surveillance Label" is a product."""
    head = _to_head(run, "") or list(run)
    return is_brand(" ".join(head), brand) or not known_noun(head[-1])


# Units that, after a word, name the product ("Foot Switch", "Rectangular Bar", "Pressure Gauge", "Value Pack"),
# except after a measure word ("1.6 Cubic Foot")
_UNIT_NOUNS = frozenset("bar gauge foot pack meter meters metre metres".split())
_MEASURE_WORDS = frozenset("cubic square sq cu linear board per".split())
# Modifiers that take the word before them ("Vinyl Coated", "Powder Free", "Heavy Duty", "Food Grade"):
# cut from a name's end, the pair goes, unless that word is the product's category noun.
_PAIRED_MODIFIERS = frozenset("free proof resistant duty grade quality purpose strength form coated plated powered based"
                              " safe friendly approved compliant rated lined filled finished treated".split())


def _acronyms(run: Sequence[str]) -> bool:
    """A run of acronyms only ("JST SM", "HFS"): a model or a maker, not a product's words ("COOL MINT GEL")."""
    return all(ACRONYM.match(w) and not known_noun(w) for w in run)


def _to_head(words: Sequence[str], category: str) -> list[str]:
    """The run cut back to its head noun (explainer/head_nouns.py): "Over-The-Door Single Hook Vinyl
    Coated" -> "Over-The-Door Single Hook", "No Clean" -> [] (no noun: not a name)."""
    out = list(words)
    while out and not is_head_noun(out[-1], category):
        dropped = out.pop().lower()
        if dropped in _PAIRED_MODIFIERS and len(out) >= 2 and not (singular_forms(out[-1]) & category_words(category)):
            out.pop()
    return _trim(out)


def _trim(words: list[str]) -> list[str]:
    """No fragment at either end: connectives, units, after-number words, a lone letter."""
    def bad_start(w: str) -> bool:
        lw = w.lower()
        return lw in CONNECTIVES or lw in _DETERMINERS or lw in _PAIRED_MODIFIERS or lw in _MAKER_TAIL or lw in UNITS or lw in _AFTER_NUMBER or (len(w) == 1 and not w.isdigit()) \
            or bool(_ROMAN.match(w))
    def bad_end(w: str) -> bool:
        return w.lower() in CONNECTIVES or w.lower() in _BEFORE_NUMBER or len(w) == 1
    while words and bad_start(words[0]):
        words = words[1:]
    while words and bad_end(words[-1]):
        words = words[:-1]
    return words


@functools.lru_cache(maxsize=65_536)   # pure, and every reply names its items and their anchors again
def short_name(title: str, brand: str = "", category: str = "", max_words: int = MAX_NAME_WORDS) -> str:
    """A few words that name the product, taken from the title.

    "Senco 08F200Y Duraspin Number 8 by 2-Inch Subfloor Collated Screw (1,000 per Box)" -> "Subfloor Collated Screw"
    "Gorilla Tape, Black Duct Tape, 1.88 x 35 yd" -> "Black Duct Tape"
    `category` (the leaf words) helps pick the run that holds the product noun.
    """
    safe = _safe_part(title)
    brand_words = [w.lower().strip(",.") for w in clean_text(brand).split()]
    plain = _plain_title(safe, brand_words)
    if plain and is_head_noun(plain.split()[-1], category):
        return plain
    body = _COUNT_PHRASE.sub(" ", safe)
    segments = _segments(_BRACKETS.sub(" ", body))
    raw_runs, seg_runs = _head_runs([seg for seg, _, _ in segments], brand_words, brand, category)
    if not any(seg_runs):   # nothing outside brackets names it ("Set of 10, LM555 LM555CN (IC TIMER)"): inside them
        inner = _segments(" , ".join(m.group(0)[1:-1] for m in _BRACKETS.finditer(body)))
        inner_raw, inner_runs = _head_runs([seg for seg, _, _ in inner], brand_words, brand, category)
        inner_runs = [[r for r in rs if r[-1].lower() not in _PACKAGING] for rs in inner_runs]   # "(3000 per Box)"
        if any(inner_runs):
            segments, raw_runs, seg_runs = inner, inner_raw, inner_runs
    if not any(seg_runs):
        if plain:   # a plain title with no noun to cut back to ("The Departed"): the title is its name
            return plain
        seg_runs = raw_runs
    cat_stems = {s for w in re.findall(r"[A-Za-z]+", category or "") if len(w) > 2 for s in singular_forms(w)}
    cat_stems -= _GENERIC_CATEGORY_WORDS
    cat_heads = _category_heads(category)
    cat_nouns = _category_heads(category, generic=True)

    def is_category_word(w: str) -> bool:   # "Boards" holds "BreadBoard" too
        return bool(singular_forms(w) & cat_stems) or any(len(c) >= 4 and w.lower().endswith(c) for c in cat_stems)

    def holds_category(run: list[str]) -> bool:
        return any(is_category_word(w) for w in run)

    def holds_head(run: list[str]) -> bool:   # the category's own noun ("Extruders" of "3D Printer Extruders")
        return any(singular_forms(w) & cat_heads for w in run)

    def is_category_noun(w: str) -> bool:   # "Extruders" of "3D Printer Extruders"; "BreadBoard" of "Boards"
        return bool(singular_forms(w) & cat_nouns) or any(len(c) >= 4 and w.lower().endswith(c) for c in cat_nouns)

    def end_of(run: list[str]) -> list[str]:
        """The run as a name ends it: at its last category noun when three or more words follow it ("Metal
        Film Resistors Assortment Kit Assorted Set Low noise": a long tail describes); at a word that only
        modifies the category's noun only when the run is too long for a name ("3D Printer Heating Controller
        MKS MOSFET" stays whole)."""
        last = max((i for i, w in enumerate(run) if is_category_noun(w)), default=-1)
        if last < 1 and len(run) > max_words:   # too long for a name: at any category word ("knife grade epoxy …")
            last = max((i for i, w in enumerate(run) if is_category_word(w)), default=-1)
        if last < 1 or len(run) - last - 1 < 3 \
                or (len(run) <= max_words and run[last + 1].lower() in _INNER_CONNECTIVES):
            return run   # "Small Wire Nail and Brad Assortment": a short tail that goes on with the product
        return run[: last + 1]

    def names_the_product(run: list[str]) -> bool:
        """A category word, and the run does not end in one that only modifies the category's noun: "M6 3D
        Printer" names a printer, not the nozzle in "3D Printer Extruders" or "3D Printer Accessories"."""
        end = end_of(run)[-1]
        return holds_category(run) and not (is_category_word(end) and not is_category_noun(end))

    # "X for Y", "X with Y": the product is X. What follows "for" names what it fits (a printer, a safety can),
    # often in the category's words ("3D Printer Accessories"), and so may the parts after it ("Kapton Tape for
    # 3D Printers, RepRap"): it names the product only when X holds no run ("Diymall for Arduino Starter Kit"),
    # and a later part only by the category's head noun ("… with Dispenser, 12 Pack Stretch Packing Wrap")
    x_end = next((n for n, (_, dep, _) in enumerate(segments) if dep), len(segments))
    x_runs = [r for rs in seg_runs[:x_end] for r in rs]
    # X names something if it has a run of two words, a category word, a noun the lexicon knows, or any word
    # once the brand is left out; without a brand one unknown word is more likely the maker ("Vacmaster 4
    # Gallon, 5 Peak HP with …"), with it a coined noun ("Barbariol 3 PCS NTC3950 Thermistors for …")
    def x_word(r: list[str]) -> bool:
        return bool(brand_words) or known_noun(r[-1])
    x_names = x_end < len(segments) and any(len(r) >= 2 or holds_category(r) or x_word(r) for r in x_runs)
    if x_names:
        seg_runs = seg_runs[:x_end] + [[] if dep else [r for r in rs if holds_head(r)]
                                       for (_, dep, _), rs in zip(segments[x_end:], seg_runs[x_end:])]
    runs = [r for rs in seg_runs for r in rs]
    # the first segment that holds a run of two or more words names the product; within it, the run that
    # holds a category word and names the product wins ("M6 3D Printer 0.4mm Extruder Brass Nozzle Print Head"
    # in "3D Printer Extruders": "M6 3D Printer" names what it is for), then any with a category word, else the
    # last one (the noun ends a title's head)
    first_at = next((n for n, rs in enumerate(seg_runs) if any(len(r) >= 2 for r in rs)), len(seg_runs))
    first = seg_runs[first_at] if first_at < len(seg_runs) else []
    early = [r for rs in seg_runs[:3] for r in rs]   # "OIML Class M1: … Calibration Weight"
    pick = next((r for r in first if names_the_product(r) and len(r) >= 2), None) \
        or next((r for r in first if holds_category(r) and len(r) >= 2), None) \
        or next((r for r in early if names_the_product(r) and len(r) >= 2), None) \
        or next((r for r in early if holds_category(r) and len(r) >= 2), None) \
        or next((r for rs in seg_runs[:first_at] for r in rs if holds_category(r)), None) \
        or next((r for r in reversed(first) if len(r) >= 2), None) \
        or next((r for r in runs if holds_category(r)), None) \
        or (next((r for r in reversed(x_runs) if x_word(r)), None) if x_names else None) \
        or (runs[0] if runs else [])   # X's words are single: the noun nearest "for" ("Performacide 102000 Disinfectant for …")
    while len(pick) > 2 and pick[-1].lower() in COLOURS:   # "pH Meter Red" -> "pH Meter" (variants add it back)
        pick = pick[:-1]
    pick = end_of(pick)
    pick = [w for i, w in enumerate(pick) if i == 0 or w.lower() != pick[i - 1].lower()]   # "Carbide Carbide"
    words = _trim(pick if len(pick) <= max_words else _head_phrase(pick, max_words))   # a long run: its head noun phrase
    words = _to_head(words, category) or words
    while len(words) > 2 and _praise_start(words):
        words = words[2:] if words[1].lower() == "quality" else words[1:]   # "Best Quality Wood Screw …"
    while len(words) > 2 and (words[0].lower() in {w.lower() for w in words[1:]}
                              or (_CODE.match(words[0]) and not _KEEP_CODES.match(words[0]))):
        words = words[1:]   # "3D ABS 3D Printer Filament" (the rest of a code), "Bag Straining Bag"
    if len(words) == 1 and brand_words:   # "Hose" alone is ambiguous: "Shop-Vac Hose"
        b = clean_text(brand)
        bw = [w.strip(",;") for w in b.split()]
        while len(bw) > 1 and bw[-1].lower().strip(".,") in _COMPANY_SUFFIX:   # "Schaeffer Penetro", not "… Co Penetro"
            bw = bw[:-1]
        if bw and len(bw) <= 3 and not instruction_like(b) and not any(re.search(r"[\d%]", w) for w in bw) \
                and bw[0].lower() not in UNITS:   # a maker's name, not a description in the brand field
            words = bw if bw[-1].lower() == words[0].lower() else bw + words
    if not words:   # nothing nameable in the title (e.g. only an instruction): say what kind of product it is
        leaf = " ".join(_trim(re.findall(r"[A-Za-z][A-Za-z&\-]*", category or ""))[-3:])
        bw = clean_text(brand).split() if brand and not instruction_like(brand) else []
        if bw and (_NUMBERISH.match(bw[0]) or _CODE.match(bw[0]) or bw[0].lower() in UNITS):
            bw = []   # "3M", "80/20 Inc" would start the name with a number
        words = bw + (leaf.split() or ["product"])
    return " ".join(words).strip(" .-&,")


_GENERIC_CATEGORY_WORDS = frozenset("industrial scientific product products supply supplies accessory accessories part parts"
                                     " tool tools other".split())


def _category_heads(category: str, generic: bool = False) -> frozenset[str]:
    """The head noun of each part of a category's name and its singular guesses: "3D Printer Extruders" ->
    extruder(s), "Dispensing Needles & Accessories" -> needle(s); a generic word ("Accessories") heads
    nothing unless `generic`."""
    heads = set()
    parts = re.split(r"\s*(?:&|,|/|\band\b)\s*", category or "")
    for n, part in enumerate(parts):
        words = re.findall(r"[A-Za-z]+", part)
        # a one-word part before the last modifies what follows ("Hook & Loop Strips": strips)
        if words and len(words[-1]) > 2 and (len(words) > 1 or n == len(parts) - 1) \
                and (generic or words[-1].lower() not in _GENERIC_CATEGORY_WORDS):
            heads |= singular_forms(words[-1])
    return frozenset(heads)


def _segments(body: str) -> list[tuple[str, bool, bool]]:
    """The title's parts between cuts (`_SEGMENT_CUT`), each with whether a "for"/"with"/"fits"/"includes"
    opens it (it says what the product goes with) and whether one follows it (it ends in the product's head)."""
    parts: list[tuple[str, str]] = []   # (text, the cuts before it)
    pos, cut = 0, ""
    for m in _SEGMENT_CUT.finditer(body):
        if body[pos:m.start()].strip():
            parts.append((body[pos:m.start()], cut))
            cut = ""
        cut += " " + m.group(0)
        pos = m.end()
    if body[pos:].strip():
        parts.append((body[pos:], cut))
        cut = ""
    after = [c for _, c in parts[1:]] + [cut]
    return [(text, bool(_DEPENDENT_CUT.search(before)), bool(_DEPENDENT_CUT.search(nxt)))
            for (text, before), nxt in zip(parts, after)]


def _head_runs(segments: Sequence[str], brand_words: Sequence[str], brand: str, category: str
               ) -> tuple[list[list[list[str]]], list[list[list[str]]]]:
    """Each segment's runs as read, and cut back to their head nouns. A run that is only the brand, or
    holds no noun, names nothing ("Silica Gel" by the brand Silica Gel still says what it is); runs of
    acronyms only ("JST SM") are model names, used when nothing else is there."""
    raw_runs = [[r for r in _runs(seg, brand_words, brand) if not (is_brand(" ".join(r), brand) and not known_noun(r[-1]))]
                for seg in segments]
    seg_runs = [[h for r in rs if (h := _to_head(r, category))] for rs in raw_runs]
    if any(not _acronyms(r) for rs in seg_runs for r in rs):
        seg_runs = [[r for r in rs if not _acronyms(r)] for rs in seg_runs]
    return raw_runs, seg_runs


def _head_phrase(run: Sequence[str], max_words: int) -> list[str]:
    """The end of a run too long for a name: its last max_words - 1 words, without a first word that leans on
    the word cut before it ("Sheet Metal Tek Screws", not "Drilling Sheet Metal Tek Screws" of "Self Drilling …";
    "Deep Groove Ball Bearing", not "Shielded Deep …" of "Single Row Shielded …")."""
    words = list(run[len(run) - (max_words - 1):])
    while len(words) > 2 and participle(words[0]):
        words = words[1:]
    return words


# what follows a maker's own name in a company's name
_COMPANY_SUFFIX = frozenset("inc co corp corporation company llc ltd limited gmbh manufacturing mfg group industries"
                            " international intl".split())
_PRAISE = frozenset("best top-rated finest quality".split())
_PRAISE_BEFORE_QUALITY = frozenset("best premium professional high top superior excellent great".split())


def _praise_start(words: Sequence[str]) -> bool:
    """A name that opens with the seller's praise ("Best Quality …", "Premium Quality …"): no fact
    states how good a product is, so a name must not either."""
    first = words[0].lower().lstrip("#")
    return first in _PRAISE or (len(words) > 1 and first in _PRAISE_BEFORE_QUALITY and words[1].lower() == "quality")


def _plain_title(safe: str, brand_words: Sequence[str]) -> str:
    """A short title with no sizes, counts or codes is its own name ("Sleepless in Seattle",
    "Moving and Lifting Straps", "Terminator 2"): the brand and a leading article dropped."""
    tokens = safe.split()
    n = 0
    while n < min(len(tokens), len(brand_words)) and tokens[n].lower().strip(",.") == brand_words[n]:
        n += 1
    tokens = tokens[n:] or tokens
    if not tokens or len(tokens) > MAX_NAME_WORDS or _BRACKETS.search(safe) or re.search(r"[,;:|]|\s[-–—]\s", safe):
        return ""
    kinds = [_kind(t.strip(",!?")) for t in tokens]
    numbers = [i for i, k in enumerate(kinds) if k in ("number", "code", "unit")]
    # a sequel's number ends a title; anything else numeric is a size, a count or a code
    if numbers and (numbers != [len(tokens) - 1] or not re.fullmatch(r"\d{1,2}", tokens[-1])):
        if not all(re.fullmatch(r"[A-Za-z]+\d[A-Za-z]+", tokens[i]) for i in numbers):   # "Se7en"
            return ""
    tokens = [t for i, t in enumerate(tokens) if i == 0 or t.lower() != tokens[i - 1].lower()]   # "Tape Tape"
    if tokens[0].lower() in ("the", "a", "an") and len(tokens) > 1:
        tokens = tokens[1:]   # the frame says "the <name>"
    if tokens[0].lower() in CONNECTIVES or tokens[0].lower() in UNITS or tokens[-1].lower() in CONNECTIVES:
        return ""
    return " ".join(tokens).strip(" ,")


def name_problem(name: str) -> str:
    """Why a name is not a clean noun phrase ("" when it is): empty, fragment start, instruction or markup."""
    words = name.split()
    if not words:
        return "empty"
    if instruction_like(name):
        return "instruction"
    first = words[0].lower().strip(".,")
    if _KEEP_CODES.match(words[0]):
        first = "ok"
    elif first in CONNECTIVES or first in UNITS or (first in _COUNT_WORDS and len(words) > 1):
        return "fragment_start"
    if first != "ok" and _NUMBERISH.match(words[0]) or (_CODE.match(words[0]) and not _KEEP_CODES.match(words[0])
                                                         and len(re.findall(r"\d", words[0])) >= 2):
        return "fragment_start"
    if (len(words[0]) == 1 and words[0].lower() not in ("a",)) or _ROMAN.match(words[0]):
        return "fragment_start"
    if words[-1].lower() in CONNECTIVES:
        return "fragment_end"
    if _praise_start(words):
        return "praise"
    if any(a.lower() == b.lower() for a, b in zip(words, words[1:])) or \
            len([w for w in words if w.lower() == words[0].lower()]) > 1 and len(words[0]) <= 3:
        return "repeated_word"   # "Solid Carbide Carbide Burrs", "3D ABS 3D Printer Filament"
    if len(words) > 12:
        return "too_long"
    return ""


def _variant_parts(title: str, brand: str) -> dict[str, list[str]]:
    """Phrases of a title that can tell variants apart, by kind: colour, size, segment, brand."""
    safe = _safe_part(title)
    colours: list[str] = []
    toks = re.findall(r"[A-Za-z][A-Za-z\-]*", safe)
    for i, t in enumerate(toks):
        if t.lower() in COLOURS:
            phrase = t
            if i > 0 and toks[i - 1].lower() in _COLOUR_MODIFIERS and toks[i - 1].lower() not in COLOURS:
                phrase = f"{toks[i - 1]} {t}"
            colours.append(phrase.title() if phrase.isupper() or phrase.islower() else phrase)
    sizes = re.findall(r"\d[\d.,/]*\s?-?(?:mm|cm|in(?:ch(?:es)?)?|ft|feet|foot|yd|oz|ounces?|lbs?|kg|g|ml|l|gal(?:lons?)?|mil|awg|v|w)\b",
                       safe, re.I)
    sizes += re.findall(r"\d[\d.,/\-]*\s?(?:ID|OD)\b", safe)   # tubing: "1/4 ID x 3/8 OD" (no unit)
    segs = [" ".join(s.split()) for s in _SEGMENT_CUT.split(_BRACKETS.sub(" ", safe)) if s.strip()]
    return {"colour": colours, "size": [" ".join(s.split()) for s in sizes],
            "segment": [s for s in segs[1:] if 1 <= len(s.split()) <= 4],
            "brand": [b for b in [clean_text(brand)] if b and not instruction_like(b)],
            # last resort: the model code ("Humidity Monitor (00613)")
            "code": [t.strip(",") for t in safe.split()[:8] if _CODE.match(t.strip(",")) or re.fullmatch(r"\d{3,}", t.strip(","))]}


def _with_tag(name: str, tag: str, kind: str) -> str:
    if kind == "colour":
        return f"{name} in {tag}"
    if kind == "brand":
        return f"{tag} {name}"
    return f"{name} ({tag})"


def distinct_names(titles: Mapping[str, tuple[str, str]], names: Mapping[str, str]) -> dict[str, str]:
    """Names made distinct: `titles` id -> (title, brand), `names` id -> base name. Items that share a
    name get, step by step until they differ, the colour that tells them apart ("… in Blue"), a size
    ("… (1.75 mm)"), a short title segment, their brand, or their model code; the same title listed
    twice is told apart by the listing ("… (listing 2)")."""
    out = dict(names)
    parts = {i: _variant_parts(*titles[i]) for i in names}
    for kind in ("colour", "size", "segment", "brand", "code"):
        clusters: dict[frozenset, list[str]] = {}
        for iid, name in out.items():   # "PLA 3D Printer Filament" and "3D Printer PLA Filament" read the same
            clusters.setdefault(_word_set(name), []).append(iid)
        for ids in clusters.values():
            if len(ids) < 2:
                continue
            for i in ids:
                others = [{p.lower() for p in parts[j][kind]} for j in ids if j != i]
                # a part none of the others has tells it from all of them; else one that some lack
                tag = next((p for p in parts[i][kind] if all(p.lower() not in o for o in others)), None) \
                    or next((p for p in parts[i][kind] if any(p.lower() not in o for o in others)), None)
                if tag:
                    out[i] = _with_tag(out[i], tag, kind)
    # the same title listed under several ids: nothing in the title tells them apart
    clusters = {}
    for iid, name in out.items():
        clusters.setdefault(_word_set(name), []).append(iid)
    for ids in clusters.values():
        for n, i in enumerate(ids[1:], 2):
            out[i] = f"{out[i]} (listing {n})"
    return out


def _word_set(name: str) -> frozenset:
    return frozenset(w.lower() for w in re.findall(r"[A-Za-z0-9]+", name))


def duplicate_names(names: Iterable[tuple[str, str]]) -> int:
    """How many (id, name) pairs share their name (the same words in any order) with a different id."""
    seen: dict[frozenset, set[str]] = {}
    for iid, name in names:
        seen.setdefault(_word_set(name), set()).add(iid)
    return sum(len(ids) for ids in seen.values() if len(ids) > 1)
