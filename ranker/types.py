"""What the ranker takes and returns. Shared with the explainer and the server.

Scores are inner products of L2-normalised tower outputs unless the model says otherwise;
higher is better. Similarities in evidence are cosine similarities in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RankQuery:
    """Who to rank for. At least one of user_id / history / text must be given."""

    user_id: str | None = None
    history: tuple[str, ...] = ()        # inline item ids, oldest first; appended after the stored history
    text: str = ""                       # a shopper's free-text query
    k: int = 10
    category: str = ""                   # keep only items whose category contains this (case-insensitive)
    exclude: tuple[str, ...] = ()        # item ids never to return
    exclude_history: bool = True         # serving drops what the user already has
    similar_to: str = ""                 # rank by closeness to this item (blended with the user side, if any)
    min_price: float | None = None       # inclusive bounds; with either set, items without a price are dropped
    max_price: float | None = None
    brands: tuple[str, ...] = ()         # keep only these brands (case-insensitive, whole name)
    exclude_brands: tuple[str, ...] = () # never these brands

    @property
    def has_price_filter(self) -> bool:
        return self.min_price is not None or self.max_price is not None


@dataclass(frozen=True)
class HistoryEvidence:
    """One history item that pulled a candidate up."""

    item_id: str
    similarity: float                    # cosine(history item, candidate) in the item tower's space
    shared: tuple[str, ...] = ()         # attribute names shared with the candidate: "brand", "category", ...
    # "category" = same whole category path; "category_parent" = paths differ only towards the leaf
    # but agree beyond the catalog root. shared_category holds the common words ("" when neither).
    shared_category: str = ""


@dataclass(frozen=True)
class Candidate:
    item_id: str
    score: float
    evidence: tuple[HistoryEvidence, ...] = field(default_factory=tuple)   # strongest first
    query_match: float | None = None     # cosine(query text, item) when a text query was given


@dataclass(frozen=True)
class Ranking:
    """A ranked list and what the filters left out."""

    candidates: list[Candidate]
    excluded_no_price: int = 0           # eligible items dropped only because they have no price
