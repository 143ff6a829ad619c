"""The desk's search box: "like P0002 under $20", "like B00PU0W35K but cheaper", "tents by Acme
not Contoso between $50 and $120" -> structured filters.

Pure parsing, no I/O. Words that are not a filter stay as the free-text query. "cheaper" /
"pricier" / "other brand" are relative to the item after "like": they are resolved later, once
that item's price and brand are known (`Parsed.resolve`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from server.desk.gateway import Filters, strictly_above, strictly_below

_MONEY = r"\$?\s*(\d+(?:[.,]\d{1,2})?)"
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("between", re.compile(rf"\bbetween\s+{_MONEY}\s+(?:and|-|to)\s+{_MONEY}", re.I)),
    ("range", re.compile(rf"(?<![\w$]){_MONEY}\s*(?:-|to)\s*{_MONEY}(?!\w)", re.I)),
    ("max", re.compile(rf"\b(?:under|below|less\s+than|cheaper\s+than|at\s+most|max(?:imum)?|up\s+to)\s+{_MONEY}|<=?\s*{_MONEY}", re.I)),
    ("min", re.compile(rf"\b(?:over|above|more\s+than|at\s+least|min(?:imum)?|from)\s+{_MONEY}|>=?\s*{_MONEY}", re.I)),
    ("cheaper", re.compile(r"\b(?:but\s+|and\s+)?(?:cheaper|less\s+expensive|lower\s+price[d]?)\b", re.I)),
    ("pricier", re.compile(r"\b(?:but\s+|and\s+)?(?:pricier|more\s+expensive|higher\s+price[d]?)\b", re.I)),
    ("other_brand", re.compile(r"\b(?:but\s+|and\s+|from\s+)?(?:an?\s+)?(?:other|another|different)\s+brands?\b", re.I)),
    # a brand is capitalised or quoted: "by Acme", "not \"de Walt\""; "not too big" is no brand
    ("not_brand", re.compile(r"\b(?i:not|except|excluding|but\s+not)\s+(?i:by\s+|from\s+)?(\"[^\"]+\"|[A-Z][\w&'.-]*)")),
    ("brand", re.compile(r"\b(?i:by|from|brand)\s+(\"[^\"]+\"|[A-Z][\w&'.-]*)")),
    ("like", re.compile(r"\b(?:like|similar\s+to|same\s+as)\s+(\"[^\"]+\"|\S+)", re.I)),
]


def _money(s: str) -> float:
    return float(s.replace(",", "."))


@dataclass
class Parsed:
    filters: Filters
    cheaper: bool = False          # than the "like" item
    pricier: bool = False
    other_brand: bool = False      # than the "like" item's
    like_text: str = ""            # what followed "like" (an item id, if the catalog knows it)
    notes: list[str] = field(default_factory=list)

    def resolve(self, reference: dict | None) -> Filters:
        """Applies the relative words once the "like" item is known (a dict with price, brand), or
        turns the "like" words into free text when it is not an item."""
        f = self.filters
        if reference is None:
            if self.like_text:
                f.similar_to = ""
                f.query = f"{self.like_text} {f.query}".strip()
            if self.cheaper or self.pricier or self.other_brand:
                self.notes.append("'cheaper' / 'pricier' / 'other brand' need 'like <item id>'")
            return f
        price = reference.get("price")
        if self.cheaper or self.pricier:
            if price is None:
                self.notes.append(f"{reference['id']} has no price: 'cheaper' / 'pricier' ignored")
            elif self.cheaper:
                bound = strictly_below(price)
                f.max_price = bound if f.max_price is None else min(f.max_price, bound)
            else:
                bound = strictly_above(price)
                f.min_price = bound if f.min_price is None else max(f.min_price, bound)
        if self.other_brand and reference.get("brand"):
            f.exclude_brands.append(reference["brand"])
        return f


def parse_search(text: str, k: int = 10) -> Parsed:
    """Free text -> filters; unknown words become the text query."""
    rest = " " + (text or "").strip() + " "
    f = Filters(k=k)
    p = Parsed(f)
    for name, pat in _PATTERNS:
        while (m := pat.search(rest)) is not None:
            groups = [g for g in m.groups() if g is not None]
            if name in ("between", "range"):
                lo, hi = sorted(_money(g) for g in groups)
                f.min_price, f.max_price = lo, hi
            elif name == "max":
                f.max_price = _money(groups[0])
            elif name == "min":
                f.min_price = _money(groups[0])
            elif name == "cheaper":
                p.cheaper = True
            elif name == "pricier":
                p.pricier = True
            elif name == "other_brand":
                p.other_brand = True
            elif name == "not_brand":
                f.exclude_brands.append(groups[0].strip('"'))
            elif name == "brand":
                f.brands.append(groups[0].strip('"'))
            elif name == "like":
                p.like_text = groups[0].strip('"')
                f.similar_to = p.like_text
            rest = rest[:m.start()] + " " + rest[m.end():]
    f.query = re.sub(r"\s+", " ", re.sub(r"\b(?:but|and|with|something|anything|items?|products?)\b", " ", rest,
                                         flags=re.I)).strip(" ,.")
    return p
