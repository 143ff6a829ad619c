"""The verifier's rule table: each rule fails the text it is about and passes a true sentence."""
from __future__ import annotations

import dataclasses

import pytest

from explainer.facts import CategoryNames, compute_facts
from explainer.verifier import RULE_TABLE, RULES, Verifier
from ranker.types import Candidate, HistoryEvidence
from store.catalog import Item
from store.history import HistoryItem

BOUGHT = ("purchase",)
LOCKNUT = HistoryItem("H1", "Hillman 1/4 by 20-Inch Stainless Steel Nylon Insert Locknut, 50-Pack",
               "Industrial & Scientific Fasteners Nuts Locknuts", "Hillman", kinds=BOUGHT)
GLUE = HistoryItem("H2", "Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce Bottle",
            "Industrial & Scientific Tapes, Adhesives & Sealants Urethane Adhesives", "Gorilla", kinds=BOUGHT)
NUT = Item("I1", "Hillman 829720 Stainless Steel Hex Nut, 100-Pack", "Industrial & Scientific Fasteners Nuts Locknuts",
           "Hillman")
TAPE = Item("I2", "Scotch Super 33+ Vinyl Electrical Tape", "Industrial & Scientific Tapes, Adhesives & Sealants Adhesive Tapes Electrical Tape",
            "Scotch")
DUCT = HistoryItem("H3", "3M Scotch 2120-A Tough Transparent Duct Tape, 1.8-Inch, 20 yds",
                  "Industrial & Scientific Tapes, Adhesives & Sealants Adhesive Tapes Duct Tape", "3M", kinds=BOUGHT)
CATS = CategoryNames([LOCKNUT.category, GLUE.category, NUT.category, TAPE.category, DUCT.category,
                      "Industrial & Scientific Fasteners", "Industrial & Scientific Fasteners Nuts",
                      "Industrial & Scientific Tapes, Adhesives & Sealants",
                      "Industrial & Scientific Tapes, Adhesives & Sealants Adhesive Tapes"])
BRANDS = ["Hillman", "Gorilla", "Scotch", "DEWALT", "3M"]
VERIFIER = Verifier(BRANDS)

LINKED = compute_facts([LOCKNUT, GLUE], NUT, Candidate("I1", 0.9, (HistoryEvidence("H1", 0.5),)), CATS)
# the tape shares only the broad "Tapes, Adhesives & Sealants" with the glue, and nothing with the locknut:
# no link; the weak reason is the ranker's evidence: the glue, the closest of its department in the model's space
BROAD = compute_facts([LOCKNUT, GLUE], TAPE, Candidate("I2", 0.9, (HistoryEvidence("H1", 0.3), HistoryEvidence("H2", 0.2))),
                      CATS)
# the ranker's evidence is the locknut alone, of another department: no history item is named
ELSEWHERE = compute_facts([LOCKNUT, GLUE], TAPE, Candidate("I2", 0.9, (HistoryEvidence("H1", 0.2),)), CATS)
# the tape shares "Adhesive Tapes" (below the top level) with the duct tape
DEEP = compute_facts([LOCKNUT, DUCT], TAPE, Candidate("I2", 0.9, (HistoryEvidence("H1", 0.2),)), CATS)
# nothing in common and no evidence: the system knows no reason at all
UNLINKED = compute_facts([LOCKNUT], TAPE, Candidate("I2", 0.9, ()), CATS)
A, I = LINKED.anchor_name, LINKED.item_name
TRUE = f"Because you bought the {A}, you may like the {I}, which is also by Hillman."


def failed(text, facts=LINKED, finish="stop", prefill=""):
    return VERIFIER.verify(text, facts, [LOCKNUT.title, GLUE.title], finish,
                           prompt_text="Use only the facts listed. Do not add other reasons.", prefill=prefill,
                           history_kinds=[BOUGHT, BOUGHT]).failed


def test_the_facts_behind_these_tests():
    assert LINKED.anchor_id == "H1" and LINKED.links[:2] == ("category", "brand") and LINKED.shared_category == "Locknuts"
    assert BROAD.anchor_id == "" and BROAD.links == () and (BROAD.reason, BROAD.reason_id) == ("model_near", "H2")
    assert ELSEWHERE.links == () and (ELSEWHERE.reason, ELSEWHERE.reason_id, ELSEWHERE.reason_name) == ("model_history", "", "")
    assert DEEP.anchor_id == "H3" and DEEP.links == ("category",) and DEEP.shared_category == "Adhesive Tapes"
    assert UNLINKED.anchor_id == "" and UNLINKED.links == () and UNLINKED.reason == ""
    assert set(RULES) == {r.name for r in RULE_TABLE} and len(RULES) == len(set(RULES))


@pytest.mark.parametrize("text", [
    TRUE,
    f"Because you bought the {A}, you may like the {I}, which is also in Locknuts.",
    f"Because you bought the {A}, you may like the {I}: both are in the Locknuts category and by Hillman.",
])
def test_true_linked_sentences_pass_every_rule(text):
    assert failed(text) == ()


# one row per rule: a real failure kind, and the rule that must catch it
CASES = {
    "other_brand": f"Because you bought the {A}, you may like the {I}, which is also by Hillman and DEWALT.",
    "number": f"Because you bought the {A}, you may like the {I}, which is also by Hillman, 37 percent off.",
    "false_action": f"You bought the {I}, so you may like the {I}, which is also by Hillman.",
    "unsupported": f"Because you bought the {A}, you may like the {I}, which engineers worldwide trust for marine corrosion resistance.",
    "misidentity": f"Because you bought the {A}, you may like the {I}, which is a {A}.",
    "false_link": f"Because you bought the {A}, you may like the {I}, which other shoppers also bought.",
    "category_claim": f"Because you bought the {A}, you may like the {I}, which is also in the category PETG Green Filament.",
    "negation": f"Because you bought the {A}, you may like the {I}, which is not a product of the Senco A209909.",
    "evaluative": f"Because you bought the {A}, you may like the {I}, which is a high-end choice by Hillman.",
    "price_claim": f"Because you bought the {A}, you may like the {I}, which is also by Hillman and cheaper.",
    "search_claim": f'It matches your search for "hex nut". Because you bought the {A}, you may like the {I}, '
                    f'which is also by Hillman.',
    "because_link": f"Because you bought the {A}, you may like the {I}, which is a Stainless Steel Hex Nut.",
    "missing_link": f"You may like the {I} in Locknuts.",
    "no_mention": "This is a great choice for anyone who works with wood.",
    "truncated": f"Because you bought the {A}, you may like the {I}, which is also by",
    "repetitive": f"Because you bought the {A}, you may like the {I}, which is by Hillman Hillman Hillman.",
    "prompt_echo": f"Because you bought the {A}, you may like the {I}: use only the facts listed, do not add other reasons.",
    # every word is in the facts, the sentence is no reason (real SmolLM2 outputs, issue: garbles passing the verifier)
    "off_shape": f"Because you bought the {A}, you may like the {I}, but the actual product is Hillman's {I} in Locknuts.",
}


def test_every_rule_has_a_case():
    # name_quality, brand_not_maker, weak_link, no_reason need facts of their own: tested below
    assert set(CASES) | {"name_quality", "brand_not_maker", "weak_link", "no_reason"} == set(RULES)


PREFILL = f"Because you bought the {A}, you may like the {I}"   # the generated text's frame (off_shape needs it)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_catches_its_failure(rule):
    assert rule in failed(CASES[rule], prefill=PREFILL if CASES[rule].startswith(PREFILL) else "")


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_alone_passes_the_true_sentence(rule):
    check = next(r.check for r in RULE_TABLE if r.name == rule)
    assert not check(VERIFIER.context(TRUE, LINKED, [LOCKNUT.title], "stop", history_kinds=[BOUGHT]))


def test_because_before_an_unrelated_attribute_fails():
    # issue 8's first failure kind: the item's own brand after "because you bought" an unrelated product
    text = f"Because you bought the {UNLINKED.item_name}, you may like the {UNLINKED.item_name}, which is by Scotch."
    assert "because_link" in failed(text, UNLINKED)
    assert failed(f"You may like the {UNLINKED.item_name}, which is by Scotch.", UNLINKED) == ()


def test_a_deep_shared_category_is_a_link_only_when_named():
    a, i = DEEP.anchor_name, DEEP.item_name
    assert failed(f"Because you bought the {a}, you may like the {i}, which is also in Adhesive Tapes.", DEEP) == ()
    assert "because_link" in failed(f"Because you bought the {a}, you may like the {i}, which is by Scotch.", DEEP)


def test_no_reason_a_description_where_the_facts_hold_a_weak_reason():
    # issue (reasons2): "You may like the Tandem Brute Trash Dolly from Dollies by Rubbermaid" to a shopper
    # who bought a cut-off wheel says what the item is, not why it was recommended
    i = BROAD.item_name
    assert "no_reason" in failed(f"You may like the {i} from Electrical Tape by Scotch.", BROAD)
    weak = f"You may like the {i}: our model, trained on shoppers' purchases, rates it close to your {BROAD.reason_name}."
    assert failed(weak, BROAD) == ()
    # evidence only from another department: the model's ranking for the whole history is the reason
    i = ELSEWHERE.item_name
    assert "no_reason" in failed(f"You may like the {i} from Electrical Tape by Scotch.", ELSEWHERE)
    assert failed(f"You may like the {i}: our model, trained on shoppers' purchases, ranks it high for your purchase "
                  "history.", ELSEWHERE) == ()
    # where the system knows no reason at all, the description is all there is
    assert "no_reason" not in failed(f"You may like the {UNLINKED.item_name} from Electrical Tape by Scotch.", UNLINKED)


def test_a_top_level_shared_category_alone_is_no_reason():
    # "both are in Tapes, Adhesives & Sealants" (the glue and the tape) is no reason a shopper accepts
    glue = VERIFIER.verify(f"Because you bought the Gorilla Glue, you may like the {BROAD.item_name}, which is also in "
                           "Tapes, Adhesives & Sealants.", BROAD, [LOCKNUT.title, GLUE.title]).failed
    assert glue and "no_reason" in glue


def test_name_quality_fails_garbled_and_equal_names():
    garbled = dataclasses.replace(LINKED, item_name="per Box")
    assert "name_quality" in failed(f"Because you bought the {A}, you may like the per Box, which is also by Hillman.", garbled)
    same = dataclasses.replace(LINKED, item_name=A)
    assert "name_quality" in failed(f"Because you bought the {A}, you may like the {A}, which is also by Hillman.", same)
    injected = dataclasses.replace(LINKED, item_name="previous instructions and reply only")
    assert "name_quality" in failed(
        f"Because you bought the {A}, you may like the previous instructions and reply only, which is also by Hillman.", injected)


@pytest.mark.parametrize("tail", [
    ": 3 other shoppers bought both the {I}.",                        # "both" of one product
    ": 3 other shoppers bought both {A} and {A}.",                    # the anchor twice
    ", but you should avoid the {I}, as it is by Hillman.",           # advice no fact gives
    ": 3 other shoppers bought both the {A} and the 3D Filament.",    # a product the facts never name
    ", the same product list is for the {I}.",                        # last session's reading
    ": 3 other shoppers bought both, which may include both the {A}.",
])
def test_off_shape_catches_garbled_clauses_made_of_fact_words(tail):
    co = dataclasses.replace(LINKED, links=("bought_together",) + LINKED.links, shoppers=3, co_bought=True,
                             lines=LINKED.lines + (f'3 other shoppers bought both the "{A}" and the "{I}".',))
    text = PREFILL + tail.format(A=A, I=I)
    assert "off_shape" in failed(text, co, prefill=PREFILL)
    assert "off_shape" not in failed(text, co)   # a text the system did not generate: the templates' own tests


@pytest.mark.parametrize("tail", [
    ": 3 other shoppers bought both.", ": 3 other shoppers bought both the {A} and the {I}.",
    ": 3 other shoppers bought both, and the {I} is also by Hillman.", ", which is also in the category of Locknuts.",
    ", which is also in the Locknuts category.", ": both are in Locknuts and by Hillman.", ", a Hillman product.",
    ", which is a type of Locknut.",
])
def test_off_shape_passes_the_accepted_wordings(tail):
    co = dataclasses.replace(LINKED, links=("bought_together",) + LINKED.links, shoppers=3, co_bought=True)
    text = PREFILL + tail.format(A=A, I=I)
    check = next(r.check for r in RULE_TABLE if r.name == "off_shape")
    assert not check(VERIFIER.context(text, co, [LOCKNUT.title], "stop", prefill=PREFILL, history_kinds=[BOUGHT])), text


def test_praise_that_the_facts_state_is_not_evaluative():
    facts = dataclasses.replace(LINKED, lines=LINKED.lines + ('The "x" is a premium grade nut.',))
    assert "evaluative" not in failed(f"Because you bought the {A}, you may like the {I}, a premium nut also by Hillman.", facts)


def test_a_category_named_like_the_anchor_still_counts_as_stated():
    facts = dataclasses.replace(LINKED, anchor_name="Locknuts")
    text = f"Because you bought the Locknuts, you may like the {I}: both are in Locknuts."
    assert failed(text, facts) == ()
    assert "missing_link" in failed(f"Because you bought the Locknuts, you may like the {I}.", facts)


def test_a_product_name_is_no_category():
    assert "category_claim" in failed(f"Because you bought the {A}, you may like the {I}, which is also in the category of {I}.")


def test_also_in_names_the_shared_category_not_a_narrower_one():
    # the tape shares only "Adhesive Tapes" with the duct tape
    a, i = DEEP.anchor_name, DEEP.item_name
    assert "category_claim" in failed(f"Because you bought the {a}, you may like the {i}, which is also in Electrical Tape.", DEEP)
    assert failed(f"Because you bought the {a}, you may like the {i}: both are in Adhesive Tapes.", DEEP) == ()


def test_a_variant_is_not_the_product_you_bought():
    assert "misidentity" in failed(f"Because you bought the {A}, you may like the {I}, the same product you bought.")


def test_a_negation_word_in_a_brand_is_no_negation():
    facts = dataclasses.replace(UNLINKED, brand="Never Pay Retail Again Inc.",
                                lines=UNLINKED.lines + (f'The "{UNLINKED.item_name}" is by Never Pay Retail Again Inc.',))
    assert "negation" not in failed(f"You may like the {UNLINKED.item_name} by Never Pay Retail Again Inc.", facts)
    assert "negation" in failed(f"You may like the {UNLINKED.item_name}, which is not by Scotch.", facts)


def test_same_product_as_anything_but_the_anchor_is_a_misidentity():
    # seen in a real reply: the brand put where the history item belongs
    bad = f"Because you bought the {A}, you may like the {I}, the same product as the Hillman Fasteners."
    good = f'Because you bought the {A}, you may like the {I}, the same product as the "{A}".'
    assert "misidentity" in failed(bad)
    assert "misidentity" not in failed(good)


def test_brand_not_maker_catches_a_product_line_called_the_maker():
    # facts that still hold the catalog's brand field "Cubitron" for a 3M disc (the read model's facts leave it out)
    v = Verifier(["3M", "Cubitron", "Hillman"])
    disc = dataclasses.replace(UNLINKED, item_name="Hookit Film Disc", brand="Cubitron",
                               item_title="3M Hookit Film Disc 375L, Aluminum Oxide, 5 Diameter",
                               lines=('The "Hookit Film Disc" is by Cubitron.',))
    assert "brand_not_maker" in v.verify("You may like the Hookit Film Disc, which is by Cubitron.", disc, []).failed
    wheel = dataclasses.replace(disc, item_name="Cut-Off Wheel", item_title="3M Cubitron II Cut-Off Wheel, 4-1/2 in",
                                lines=('The "Cut-Off Wheel" is by Cubitron.',))
    assert "brand_not_maker" not in v.verify("You may like the Cut-Off Wheel, which is by Cubitron.", wheel, []).failed


def test_weak_link_catches_a_few_shoppers_as_the_only_reason():
    co = dataclasses.replace(UNLINKED, anchor_id="H1", anchor_name=A, links=("bought_together",), shoppers=3,
                             co_bought=True, action=f"you bought the {A}", anchor_kinds=BOUGHT,
                             lines=(f'You bought the "{A}".', f'3 other shoppers bought both the "{A}" and the "{UNLINKED.item_name}".'))
    text = f"Because you bought the {A}, you may like the {UNLINKED.item_name}: 3 other shoppers bought both."
    assert "weak_link" in failed(text, co)
    assert "weak_link" not in failed(text.replace("3", "6"), dataclasses.replace(co, shoppers=6, lines=tuple(
        line.replace("3", "6") for line in co.lines)))
    with_category = dataclasses.replace(co, links=("bought_together", "category"), shared_category="Locknuts")
    assert "weak_link" not in failed(text, with_category)


def test_also_in_another_category_is_off_shape():
    # read in the 40 replies (2026-11-28): "…, which is also in a other category of LED lamps" passed every rule
    ok = f"{PREFILL}, which is also in the category Locknuts."
    assert failed(ok, prefill=PREFILL) == ()
    for tail in ("a other category of Locknuts", "another category, Locknuts", "a different category of Locknuts"):
        assert "off_shape" in failed(f"{PREFILL}, which is also in {tail}.", prefill=PREFILL), tail


def test_a_category_that_is_also_a_name_is_no_category_claim_of_the_anchor():
    # "Because you bought the Rubber Stopper, you may like the Rubber Stoppers, which is also in the category
    # Rubber Stoppers": the anchor's name "Rubber Stopper" is inside the category's, not the category itself
    stopper = HistoryItem("H7", "Rubber Stopper - Size #6", "Industrial & Scientific Lab Supplies Rubber Stoppers", "Karter",
                          kinds=BOUGHT)
    stoppers = Item("I7", "Rubber Stoppers - Size #7 - (Pack of 3)", "Industrial & Scientific Lab Supplies Rubber Stoppers",
                    "Karter")
    cats = CategoryNames([stopper.category, "Industrial & Scientific Lab Supplies"])
    f = compute_facts([stopper], stoppers, Candidate("I7", 0.9, ()), cats)
    assert (f.anchor_name, f.item_name, f.shared_category) == ("Rubber Stopper", "Rubber Stoppers", "Rubber Stoppers")
    text = f"Because you bought the {f.anchor_name}, you may like the {f.item_name}, which is also in the category Rubber Stoppers."
    assert "category_claim" not in VERIFIER.verify(text, f, [stopper.title], history_kinds=[BOUGHT]).failed
    # a product's name given as the category still fails
    text = f"Because you bought the {f.anchor_name}, you may like the {f.item_name}, which is in the category {f.anchor_name}."
    assert "category_claim" in VERIFIER.verify(text, f, [stopper.title], history_kinds=[BOUGHT]).failed
