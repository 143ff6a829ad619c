"""Justification feedback: ratings per link kind (Beta-Bernoulli) move the anchor choice."""
from __future__ import annotations

from explainer.facts import CategoryNames, compute_facts
from explainer.link_feedback import LinkPreferences
from explainer.links import choose_anchor
from ranker.types import Candidate
from store.catalog import Item

ROOT = "Industrial & Scientific"
ITEM = Item("s", "Apera Instruments pH 7.00 Buffer Calibration Solution, 500 ml",
            f"{ROOT} Test, Measure & Inspect pH Testing pH Buffers", "Apera Instruments")
SAME_BRAND = Item("b", "Apera Instruments Magnetic Lab Stirrer", f"{ROOT} Lab & Scientific Products Stirrers", "Apera Instruments")
SAME_CATEGORY = Item("c", "Hanna Instruments pH 4.01 Buffer Solution, 230 ml",
                     f"{ROOT} Test, Measure & Inspect pH Testing pH Buffers", "Hanna Instruments")
CATS = CategoryNames([i.category for i in (ITEM, SAME_BRAND, SAME_CATEGORY)]
                     + [f"{ROOT} Test, Measure & Inspect", f"{ROOT} Test, Measure & Inspect pH Testing",
                        f"{ROOT} Lab & Scientific Products"])


def test_beta_bernoulli_scores_start_at_the_prior_and_follow_ratings():
    prefs = LinkPreferences()
    assert prefs.mean("brand") == 0.5 and prefs.bonus(("brand",)) == 0.0 and prefs.bonus(()) == 0.0
    for helpful in (True, True, True, False):
        prefs.record(("brand", "category"), helpful)
    assert prefs.mean("brand") == (2 + 3) / (4 + 4) and prefs.summary()["category"]["helpful"] == 3
    prefs.record(("similar",), False)
    assert prefs.bonus(("similar",)) < 0 < prefs.bonus(("brand",)) == prefs.bonus(("brand", "similar"))


def test_ratings_change_which_link_kind_the_explainer_states():
    history = [SAME_BRAND, SAME_CATEGORY]
    cand = Candidate("s", 0.9)
    anchor, links = choose_anchor(history, ITEM, cand, CATS, None)
    assert anchor is not None and len(links.kinds) == 1
    unrated = links.kinds[0]
    other = SAME_BRAND if anchor is SAME_CATEGORY else SAME_CATEGORY
    other_kind = "brand" if other is SAME_BRAND else "category"
    assert {unrated, other_kind} == {"brand", "category"}
    # no ratings: the preference hook changes nothing
    assert choose_anchor(history, ITEM, cand, CATS, None, preference=LinkPreferences().bonus)[0] is anchor
    prefs = LinkPreferences()
    for _ in range(30):
        prefs.record((unrated,), False)
        prefs.record((other_kind,), True)
    chosen, chosen_links = choose_anchor(history, ITEM, cand, CATS, None, preference=prefs.bonus)
    assert chosen is other and other_kind in chosen_links.kinds
    facts = compute_facts(history, ITEM, cand, CATS)
    assert facts.anchor_id == anchor.id and facts.links[0] == unrated


def test_each_rating_counts_once_with_a_bounded_memory_of_ids():
    """A long-running process offered ever newer ratings keeps at most `max_remembered` ids; a rating
    offered again (recent, or long folded into the floor) never counts twice; a new one still counts."""
    prefs = LinkPreferences(max_remembered=10)
    counted = [prefs.count(i, True, lambda: ("brand",)) for i in range(1, 101)]
    assert all(counted) and prefs.summary()["brand"]["helpful"] == 100
    assert len(prefs._counted) <= 10
    again = [prefs.count(i, True, lambda: ("brand",)) for i in (1, 50, 95, 100)]
    assert again == [False] * 4 and prefs.summary()["brand"]["helpful"] == 100
    assert prefs.count(101, False, lambda: ("brand",)) and prefs.summary()["brand"]["not_helpful"] == 1
    assert prefs.count(250, True, lambda: ("brand",)) and prefs.count(180, True, lambda: ("brand",))   # gaps above the floor count
