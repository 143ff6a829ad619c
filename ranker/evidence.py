"""Why a candidate scored high: the history items closest to it and the attributes they share.

Categories in the Scientific data are one string of words with no separators
("Industrial & Scientific Lab & Scientific Products Lab Supplies ..."), so sharing is judged on
the leading words the two paths have in common: the whole string equal -> "category"; only the
tail differs but they agree beyond the catalog-wide root ("Industrial & Scientific") ->
"category_parent", and the shared words are returned so the explainer can name them.
Catalogs with explicit separators (" > ", "/", "|") are compared level by level instead.
"""
from __future__ import annotations

import functools
import re
from typing import Sequence

import numpy as np

from ranker.types import HistoryEvidence
from store.catalog import Item, split_categories

_SEPARATORS = re.compile(r"\s*(?:>|/|\|)\s*")


def category_levels(category: str) -> list[str]:
    """Levels of a category path: explicit separators when present, else words."""
    category = category.strip()
    if not category:
        return []
    if _SEPARATORS.search(category):
        return [p for p in _SEPARATORS.split(category) if p]
    return category.split()


def common_root(categories: Sequence[str]) -> int:
    """Number of leading levels that (almost) every non-empty category shares: the uninformative root."""
    paths = [category_levels(c) for c in categories if c.strip()]
    if not paths:
        return 0
    # The most common first levels among 90% of paths: a handful of oddly categorised items must
    # not shrink the root to nothing.
    from collections import Counter

    depth = 0
    while True:
        counts = Counter(tuple(p[:depth + 1]) for p in paths if len(p) > depth)
        if not counts:
            return depth
        top, n = counts.most_common(1)[0]
        if n < 0.9 * len(paths) or len(top) <= depth:
            return depth
        depth += 1


@functools.lru_cache(maxsize=65536)
def shared_category(a: str, b: str, root_levels: int) -> tuple[str, str]:
    """("category", whole) if equal; ("category_parent", shared prefix) if they agree beyond the root; else ("", "").
    Memoised: a catalog has few distinct paths, and serving compares the same pairs all day."""
    if not a.strip() or not b.strip():
        return "", ""
    if a.strip().lower() == b.strip().lower():
        return "category", a.strip()
    la, lb = category_levels(a), category_levels(b)
    n = 0
    while n < min(len(la), len(lb)) and la[n].lower() == lb[n].lower():
        n += 1
    # Strip a dangling connector ("Lab &") so the shared words read as a name.
    while n > 0 and la[n - 1] in {"&", "and", ","}:
        n -= 1
    if n > root_levels:
        joiner = " > " if _SEPARATORS.search(a) else " "
        return "category_parent", joiner.join(la[:n])
    return "", ""


def shared_attributes(candidate: Item, other: Item, root_levels: int) -> tuple[tuple[str, ...], str]:
    """(names of shared attributes, shared category text)."""
    brand = candidate.brand.strip()
    same_brand = bool(brand) and brand.lower() == other.brand.strip().lower()
    kind, text = _category_match(candidate.category, other.category, root_levels)
    if same_brand:
        return (("brand", kind) if kind else ("brand",)), text
    return ((kind,) if kind else ()), text


@functools.lru_cache(maxsize=65536)
def _category_match(category_a: str, category_b: str, root_levels: int) -> tuple[str, str]:
    """The best-matching pair of the two items' category paths (an item may have several: "Drama;
    Romance"): ("category" | "category_parent" | "", shared text). Memoised on the category pair
    alone (a catalog has far fewer categories than brand-and-category pairs: 777 against 2,737
    here, so new shoppers' pairs mostly hit)."""
    pairs = [shared_category(a, b, root_levels) for a in split_categories(category_a)
             for b in split_categories(category_b)]
    return min(pairs, key=lambda kt: ({"category": 0, "category_parent": 1}.get(kt[0], 2), -len(kt[1])),
               default=("", ""))


def history_evidence(candidate: Item, candidate_vec: np.ndarray, history: Sequence[Item], history_vecs: np.ndarray,
                     root_levels: int, top: int = 3) -> tuple[HistoryEvidence, ...]:
    """The `top` history items most similar (cosine, item space) to the candidate, strongest first.

    candidate_vec: float32[d] unit length; history_vecs: float32[h, d] unit length, same order as history.
    The candidate itself is never its own evidence.
    """
    if not len(history):
        return ()
    sims = history_vecs @ candidate_vec
    best: dict[str, tuple[float, Item]] = {}
    for i, item in enumerate(history):   # one entry per distinct history item, its best similarity
        if item.id == candidate.id:
            continue
        s = float(sims[i])
        if item.id not in best or s > best[item.id][0]:
            best[item.id] = (s, item)
    ranked = sorted(best.values(), key=lambda t: -t[0])[:top]
    out = []
    for s, item in ranked:
        shared, cat = shared_attributes(candidate, item, root_levels)
        out.append(HistoryEvidence(item_id=item.id, similarity=round(s, 6), shared=shared, shared_category=cat))
    return tuple(out)


_MEMO: dict[tuple[str, str], tuple[Item, Item, float, HistoryEvidence]] = {}
_MEMO_MAX = 500_000


def _evidence(candidate: Item, item: Item, similarity: float, root_levels: int) -> HistoryEvidence:
    """The HistoryEvidence of a (candidate, history item) pair, made once: serving cites the same
    pairs call after call. Kept only while both Item objects are the ones asked about (an upsert
    makes new ones) and the similarity is the same."""
    key = (candidate.id, item.id)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is candidate and hit[1] is item and hit[2] == similarity:
        return hit[3]
    shared, cat = shared_attributes(candidate, item, root_levels)
    ev = HistoryEvidence(item_id=item.id, similarity=similarity, shared=shared, shared_category=cat)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = (candidate, item, similarity, ev)
    return ev


def evidence_for_candidates(candidates: Sequence[Item], candidate_vecs: np.ndarray, history: Sequence[Item],
                            history_vecs: np.ndarray, root_levels: int, top: int = 3
                            ) -> list[tuple[HistoryEvidence, ...]]:
    """`history_evidence` for several candidates of one query: one matrix product for all their
    similarities and one sort of all their columns, instead of Python loops per candidate. Same
    choice and order: distinct history items (first occurrence), strongest first, ties in history
    order; a candidate is never its own evidence."""
    if not len(history) or not len(candidates) or top <= 0:
        return [() for _ in candidates]
    first: dict[str, int] = {}
    for i, item in enumerate(history):
        first.setdefault(item.id, i)
    rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    sims = np.asarray(history_vecs, dtype=np.float32)[rows] @ np.asarray(candidate_vecs, dtype=np.float32).T
    position = {iid: j for j, iid in enumerate(first)}
    for c, cand in enumerate(candidates):
        j = position.get(cand.id)
        if j is not None:
            sims[j, c] = -np.inf             # never its own evidence
    order = np.argsort(-sims, axis=0, kind="stable")[:top]        # [<= top, candidates]
    chosen = np.take_along_axis(sims, order, axis=0).T.tolist()
    order = order.T.tolist()
    out = []
    for cand, js, ss in zip(candidates, order, chosen):
        out.append(tuple(_evidence(cand, history[rows[j]], round(s, 6), root_levels)
                         for j, s in zip(js, ss) if s != -np.inf))
    return out
