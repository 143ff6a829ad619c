"""evidence_for_candidates (one product and one sort for a query's candidates, memoised pairs)
picks what history_evidence picks for each candidate alone."""
from __future__ import annotations

import dataclasses

import numpy as np

from ranker.evidence import evidence_for_candidates, history_evidence
from store.catalog import Item


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_batched_evidence_equals_one_candidate_at_a_time():
    rng = np.random.default_rng(0)
    brands, cats = ["Acme", "Bolt", ""], ["Lab Supplies Tubes", "Lab Supplies Racks", "Tools Hand"]
    items = [Item(id=f"i{n}", title=f"item {n}", brand=brands[n % 3], category=cats[n % 3]) for n in range(12)]
    vecs = _unit(rng.standard_normal((12, 16)))
    vecs[7] = vecs[3]                                    # a tie: history order decides
    hist_rows = [3, 5, 3, 7, 1, 9, 2]                    # item 3 twice; candidates 1 and 2 are in it
    history = [items[r] for r in hist_rows]
    cand_rows = [0, 1, 2, 4, 6, 8, 10, 11]
    for top in (1, 3, 10):
        got = evidence_for_candidates([items[r] for r in cand_rows], vecs[cand_rows], history,
                                      vecs[hist_rows], root_levels=0, top=top)
        want = [history_evidence(items[r], vecs[r], history, vecs[hist_rows], 0, top) for r in cand_rows]
        assert got == want
        assert all(e.item_id != items[r].id for r, evs in zip(cand_rows, got) for e in evs)


def test_an_upserted_item_is_not_served_from_the_memo():
    a, b = Item(id="a", title="a", brand="Acme"), Item(id="b", title="b", brand="Acme")
    vecs = _unit(np.array([[1.0, 0.2], [0.9, 0.3]]))
    first = evidence_for_candidates([a], vecs[:1], [b], vecs[1:], 0)[0][0]
    assert first.shared == ("brand",)
    b2 = dataclasses.replace(b, brand="Other")           # the same id, a new brand
    again = evidence_for_candidates([a], vecs[:1], [b2], vecs[1:], 0)[0][0]
    assert again.shared == () and again.similarity == first.similarity


def test_memoised_sharing_matches_shared_attributes():
    """`_shared` (memoised on same-brand and the two category strings) says what shared_attributes
    says, for brands differing in case and spaces, several paths per item, separators and a
    dangling connector; asked twice, the memo answers the same."""
    from ranker.evidence import _shared, shared_attributes
    items = [Item("a", "t", "Drama; Romance", " ACME "), Item("b", "t", "Romance; Comedy", "acme"),
             Item("c", "t", "Home > Kitchen > Pans", ""), Item("d", "t", "Home > Kitchen > Pots", "Bolt"),
             Item("e", "t", "Home > Garden", "bolt "), Item("f", "t", "", "Acme"),
             Item("g", "t", "Lab & Scientific Products Lab & Tools", ""),
             Item("h", "t", "Lab & Scientific Products Lab & Supplies", "")]
    seen = set()
    for a in items:
        for b in items:
            for root in (0, 1, 2):
                want = shared_attributes(a, b, root)
                assert _shared(a, b, root) == want == _shared(a, b, root)
                seen.update(want[0])
    assert seen == {"brand", "category", "category_parent"}
    assert shared_attributes(items[6], items[7], 1) == (("category_parent",), "Lab & Scientific Products Lab")
    assert shared_attributes(items[2], items[3], 1) == (("category_parent",), "Home > Kitchen")
