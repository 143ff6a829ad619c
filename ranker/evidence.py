"""Why a candidate scored high: the history items closest to it and the attributes they share.

Categories in the Scientific data are one string of words with no separators
("Industrial & Scientific Lab & Scientific Products Lab Supplies ..."), so sharing is judged on
the leading words the two paths have in common: the whole string equal -> "category"; only the
tail differs but they agree beyond the catalog-wide root ("Industrial & Scientific") ->
"category_parent", and the shared words are returned so the explainer can name them.
Catalogs with explicit separators (" > ", "/", "|") are compared level by level instead.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Sequence

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


class _Path(NamedTuple):
    """One category path, parsed once: its text, its levels and their lower-case forms."""
    text: str
    low: str
    levels: list[str]
    low_levels: list[str]
    joiner: str


_PATHS: dict[str, tuple[_Path, ...]] = {}
_CONNECTORS = frozenset({"&", "and", ","})


def _path(category: str) -> _Path:
    levels = category_levels(category)
    return _Path(category.strip(), category.strip().lower(), levels, [w.lower() for w in levels],
                 " > " if _SEPARATORS.search(category) else " ")


def _paths(category: str) -> tuple[_Path, ...]:
    """The item's category paths, parsed: a catalog has few distinct category strings (777 here)."""
    hit = _PATHS.get(category)
    if hit is None:
        if len(_PATHS) >= 200_000:
            _PATHS.clear()
        hit = _PATHS[category] = tuple(_path(c) for c in split_categories(category))
    return hit


def _compare(a: _Path, b: _Path, root_levels: int) -> tuple[str, str]:
    if not a.text or not b.text:
        return "", ""
    if a.low == b.low:
        return "category", a.text
    la, lb = a.low_levels, b.low_levels
    n, most = 0, min(len(la), len(lb))
    while n < most and la[n] == lb[n]:
        n += 1
    # Strip a dangling connector ("Lab &") so the shared words read as a name.
    while n > 0 and a.levels[n - 1] in _CONNECTORS:
        n -= 1
    if n > root_levels:
        return "category_parent", a.joiner.join(a.levels[:n])
    return "", ""


def shared_category(a: str, b: str, root_levels: int) -> tuple[str, str]:
    """("category", whole) if equal; ("category_parent", shared prefix) if they agree beyond the root; else ("", "")."""
    if not a.strip() or not b.strip():
        return "", ""
    return _compare(_path(a), _path(b), root_levels)


def shared_attributes(candidate: Item, other: Item, root_levels: int) -> tuple[tuple[str, ...], str]:
    """(names of shared attributes, shared category text)."""
    brand = candidate.brand.strip().lower()
    kind, text = _category_match(candidate.category, other.category, root_levels)
    return _shared_names(bool(brand) and brand == other.brand.strip().lower(), kind), text


def _shared_names(same_brand: bool, kind: str) -> tuple[str, ...]:
    if same_brand:
        return ("brand", kind) if kind else ("brand",)
    return (kind,) if kind else ()


_RANK = {"category": 0, "category_parent": 1}


def _category_match(category_a: str, category_b: str, root_levels: int) -> tuple[str, str]:
    """The best-matching pair of the two items' category paths (an item may have several: "Drama;
    Romance"): ("category" | "category_parent" | "", shared text)."""
    pa, pb = _paths(category_a), _paths(category_b)
    if len(pa) == 1 and len(pb) == 1:
        return _compare(pa[0], pb[0], root_levels)
    pairs = [_compare(a, b, root_levels) for a in pa for b in pb]
    return min(pairs, key=lambda kt: (_RANK.get(kt[0], 2), -len(kt[1])), default=("", ""))


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
_SHARED: dict[tuple[bool, str, str, int], tuple[tuple[str, ...], str]] = {}
_SHARED_MAX = 200_000
_NO_EVIDENCE = float("-inf")


def _shared(candidate: Item, item: Item, root_levels: int) -> tuple[tuple[str, ...], str]:
    """`shared_attributes`, memoised on what it reads (same brand or not, the two category paths):
    a catalog has far fewer of those than item pairs (777 categories here), so a new shopper's
    pairs mostly hit."""
    brand = candidate.brand.strip().lower()
    key = (bool(brand) and brand == item.brand.strip().lower(), candidate.category, item.category, root_levels)
    hit = _SHARED.get(key)
    if hit is None:
        kind, text = _category_match(candidate.category, item.category, root_levels)
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        hit = _SHARED[key] = (_shared_names(key[0], kind), text)
    return hit


def _evidence(candidate: Item, item: Item, raw: float, root_levels: int) -> HistoryEvidence:
    """The HistoryEvidence of a (candidate, history item) pair, made once: serving cites the same
    pairs call after call. Kept only while both Item objects are the ones asked about (an upsert
    makes new ones) and the raw similarity is the same (the memo compares the unrounded value, so a
    hit needs no rounding: `round(s, 6)` cost ~0.4 us a pair; `evidence_for_candidates` checks the
    memo inline, this makes a missing entry)."""
    key = (candidate.id, item.id)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is candidate and hit[1] is item and hit[2] == raw:
        return hit[3]
    shared, cat = _shared(candidate, item, root_levels)
    ev = HistoryEvidence(item_id=item.id, similarity=round(raw, 6), shared=shared, shared_category=cat)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = (candidate, item, raw, ev)
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
    rows = list(first.values())
    distinct = [history[r] for r in rows]
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
    memo = _MEMO
    for cand, js, ss in zip(candidates, order, chosen):
        cid, evs = cand.id, []
        for j, s in zip(js, ss):
            if s == _NO_EVIDENCE:
                continue
            item = distinct[j]
            hit = memo.get((cid, item.id))
            evs.append(hit[3] if hit is not None and hit[0] is cand and hit[1] is item and hit[2] == s
                       else _evidence(cand, item, s, root_levels))
        out.append(tuple(evs))
    return out
