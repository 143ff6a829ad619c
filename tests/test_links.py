"""Anchor choice (the strongest, most specific link) and a catalog of titles only."""
from __future__ import annotations

from pathlib import Path

from explainer.config import ExplainerConfig
from explainer.facts import CategoryNames, CoPurchases, compute_facts, compute_reply_facts
from explainer.links import choose_anchor
from explainer.names import duplicate_names, name_problem
from explainer.service import Explainer
from ranker.types import Candidate, HistoryEvidence
from store.catalog import Catalog, Item

ROOT = "Industrial & Scientific"
PH_METER = Item("m", "Apera Instruments AI209 Value Waterproof pH Pocket Tester", f"{ROOT} Test, Measure & Inspect pH Testing pH Meters", "Apera Instruments")
WEIGHT = Item("w", "Smart Weigh Carbon Steel 500g OIML Class M1: Calibration Weight", f"{ROOT} Test, Measure & Inspect Scales Calibration Weights", "Smart Weigh")
SOLUTION = Item("s", "Apera Instruments pH 7.00 Buffer Calibration Solution, 500 ml", f"{ROOT} Test, Measure & Inspect pH Testing pH Buffers", "Apera Instruments")
FILAMENT_W = Item("fw", "HATCHBOX PLA 3D Printer Filament, 1 kg Spool, 1.75 mm, White", f"{ROOT} Additive Manufacturing Products 3D Printing Filament", "HATCHBOX")
FILAMENT_B = Item("fb", "HATCHBOX PLA 3D Printer Filament, 1 kg Spool, 1.75 mm, Blue", f"{ROOT} Additive Manufacturing Products 3D Printing Filament", "HATCHBOX")
ESUN = Item("e", "eSUN 1.75mm Pink PLA 3D Printer filament 1kg Spool", f"{ROOT} Additive Manufacturing Products 3D Printing Filament", "eSUN")
CATS = CategoryNames([i.category for i in (PH_METER, WEIGHT, SOLUTION, FILAMENT_W, ESUN)]
                     + [f"{ROOT} Test, Measure & Inspect", f"{ROOT} Test, Measure & Inspect pH Testing",
                        f"{ROOT} Additive Manufacturing Products"])


def test_anchor_is_the_most_specific_link_not_the_nearest_vector():
    # the ranker's evidence points at the weight (closest vector); the pH meter shares brand and "pH Testing"
    cand = Candidate("s", 0.9, (HistoryEvidence("w", 0.9), HistoryEvidence("m", 0.4)))
    anchor, links = choose_anchor([PH_METER, WEIGHT], SOLUTION, cand, CATS, None)
    assert anchor is PH_METER and set(links.kinds) >= {"brand", "category"}
    assert links.category == "pH Testing"
    f = compute_facts([PH_METER, WEIGHT], SOLUTION, cand, CATS)
    assert f.anchor_id == "m" and f.link == "category" and f.same_brand


def test_variant_of_the_same_product_is_the_strongest_link():
    f = compute_facts([ESUN, FILAMENT_W], FILAMENT_B, Candidate("fb", 0.9, (HistoryEvidence("e", 0.95),)), CATS)
    assert f.anchor_id == "fw" and f.link == "variant"
    assert f.item_name != f.anchor_name and f.item_name.endswith("Blue") and f.anchor_name.endswith("White")
    assert f.variant == "in Blue"


def _bought(pairs: dict[tuple[str, str], int], extra: dict[str, int] | None = None) -> CoPurchases:
    """A co-purchase table: n shoppers bought each pair; extra[i] more shoppers bought i alone."""
    seqs, n = {}, 0
    for (a, b), k in pairs.items():
        for _ in range(k):
            seqs[f"u{n}"] = [(a, "train"), (b, "train")]
            n += 1
    for i, k in (extra or {}).items():
        for _ in range(k):
            seqs[f"u{n}"] = [(i, "train")]
            n += 1
    return CoPurchases(seqs)


def test_co_purchase_beats_a_shared_category():
    co = CoPurchases({**{f"u{n}": [("e", "train"), ("s", "train")] for n in range(5)},
                      "u9": [("e", "train"), ("s", "test")]})   # the test split is held out: 5 shoppers, not 6
    f = compute_facts([PH_METER, ESUN], SOLUTION, Candidate("s", 0.5), CATS, co)
    assert f.anchor_id == "e" and f.link == "bought_together" and f.shoppers == 5


def test_a_few_shoppers_with_nothing_else_in_common_is_no_reason():
    # 3 shoppers bought the filament and the pH buffer: too few for a pair that shares nothing else
    f = compute_facts([ESUN], SOLUTION, Candidate("s", 0.5), CATS, _bought({("e", "s"): 3}))
    assert f.links == () and f.anchor_id == "" and not f.co_bought
    # 5 shoppers, but the filament is a best-seller (60 buyers): 5 of them is noise, not a reason
    f = compute_facts([ESUN], SOLUTION, Candidate("s", 0.5), CATS, _bought({("e", "s"): 5}, {"e": 55}))
    assert f.links == ()
    f = compute_facts([ESUN], SOLUTION, Candidate("s", 0.5), CATS, _bought({("e", "s"): 6}))
    assert f.link == "bought_together" and f.shoppers == 6


def test_a_weak_co_purchase_comes_after_the_shared_category():
    # 2 shoppers bought the pH meter and the buffer, which also share "pH Testing" and the brand
    f = compute_facts([PH_METER], SOLUTION, Candidate("s", 0.5), CATS, _bought({("m", "s"): 2}))
    assert f.link == "category" and "bought_together" in f.links and f.shoppers == 2
    assert f.lines[1].startswith('The "') and "pH Testing" in f.lines[1]
    # many shoppers: the co-purchase leads
    f = compute_facts([PH_METER], SOLUTION, Candidate("s", 0.5), CATS, _bought({("m", "s"): 7}))
    assert f.link == "bought_together" and "7 other shoppers" in f.lines[1]


def test_no_link_means_no_anchor():
    f = compute_facts([FILAMENT_W], WEIGHT, Candidate("w", 0.5, (HistoryEvidence("fw", 0.3),)), CATS)
    assert f.anchor_id == "" and f.links == () and not any("You bought" in line for line in f.lines)


class _MiniCatalog:
    """What Explainer.from_catalog reads: the items and no events."""

    def __init__(self, items):
        self.items = items

    def all_items(self, include_deleted=False):
        return list(self.items)

    def __getattr__(self, name):   # events, histories: none
        return lambda *a, **k: {} if "sequences" in name or "histories" in name else []


def test_no_link_states_the_few_shoppers_who_bought_a_history_item_too():
    # 3 shoppers bought the filament and the pH buffer: no link (test above), but the true weak reason,
    # stated as what it is and tied to the shopper's own purchase, not a description of the buffer
    co = _bought({("e", "s"): 3}, {"z": 20})   # 20 more shoppers, who bought neither: 3 is above chance
    f = compute_facts([PH_METER, ESUN], WEIGHT, Candidate("w", 0.5), CATS, co)
    assert f.links == () and f.reason == ""   # nobody bought the weight with either: nothing to say
    f = compute_facts([WEIGHT, ESUN], SOLUTION, Candidate("s", 0.5), CATS, co)
    assert f.links == () and (f.reason, f.reason_id, f.shoppers) == ("co_buyers", "e", 3) and f.evidence_ids == ("e",)
    assert f.lines[0] == f'3 other shoppers who bought your "{f.reason_name}" also bought the "{f.item_name}".'


def _heavy(pairs: dict[tuple[str, str], int], history: int, others: int = 20) -> CoPurchases:
    """n shoppers bought each pair, each of them `history` items in all; `others` shoppers bought one
    unrelated item each (the population the lift is judged against)."""
    seqs = {}
    for (a, b), k in pairs.items():
        for n in range(k):
            seqs[f"h{a}{b}{n}"] = [(a, "train"), (b, "train")] + [(f"x{n}_{j}", "train") for j in range(history - 2)]
    seqs.update({f"o{n}": [(f"y{n}", "train")] for n in range(others)})
    return CoPurchases(seqs)


def test_shoppers_who_bought_everything_weigh_less():
    # 2 shoppers bought the pH meter and the buffer (which share "pH Testing"): a link when they bought
    # a few things, none when each bought 60 (they pair everything with everything)
    assert _heavy({("m", "s"): 2}, history=6).bought_together("m", "s")
    co = _heavy({("m", "s"): 2}, history=60)
    assert co.shoppers("m", "s") == 2 and 1.0 < co.evidence("m", "s") < 2.0 and not co.bought_together("m", "s")
    f = compute_facts([PH_METER], SOLUTION, Candidate("s", 0.5), CATS, co)
    assert "bought_together" not in f.links and f.link == "category"
    # unweighted, the same table says they were bought together
    co.weighted = False
    assert co.bought_together("m", "s")


def test_the_weak_reason_needs_more_than_one_heavy_buyer():
    # no link between the filament and the buffer; one co-buyer who bought 60 things is no reason
    cand = Candidate("s", 0.5, (HistoryEvidence("e", 0.3),))
    f = compute_facts([ESUN], SOLUTION, cand, CATS, _heavy({("e", "s"): 1}, history=60))
    assert f.reason == "model_history"   # not the co-purchase (the filament is of another department)
    f = compute_facts([ESUN], SOLUTION, cand, CATS, _heavy({("e", "s"): 1}, history=5))
    assert (f.reason, f.reason_id, f.shoppers) == ("co_buyers", "e", 1)
    # the count stated is the true number of shoppers, whatever their weight
    f = compute_facts([ESUN], SOLUTION, cand, CATS, _heavy({("e", "s"): 3}, history=60))
    assert (f.reason, f.shoppers) == ("co_buyers", 3)


def test_the_weak_reason_is_never_fewer_co_buyers_than_chance():
    # the filament is a best-seller: 4 of its 100 buyers bought the buffer, which 40 of 500 shoppers
    # bought: 4 % against 8 % at large, so "4 other shoppers who bought your filament" is no reason
    seqs = {f"b{n}": [("e", "train")] + ([("s", "train")] if n < 4 else []) for n in range(100)}
    seqs.update({f"s{n}": [("s", "train")] for n in range(36)})
    seqs.update({f"o{n}": [(f"y{n}", "train")] for n in range(364)})
    co = CoPurchases(seqs)
    assert co.shoppers("e", "s") == 4 and co.lift("e", "s") < 1
    cand = Candidate("s", 0.5, (HistoryEvidence("e", 0.3),))
    assert compute_facts([ESUN], SOLUTION, cand, CATS, co).reason == "model_history"
    co.min_lift = 0.0   # without the rule it would be stated
    assert compute_facts([ESUN], SOLUTION, cand, CATS, co).reason == "co_buyers"


def test_no_link_and_no_co_purchase_states_the_rankers_evidence():
    # the pH meter and the weight are of one department (Test, Measure & Inspect): the model's closeness is named
    f = compute_facts([FILAMENT_W, PH_METER], WEIGHT, Candidate("w", 0.5, (HistoryEvidence("fw", 0.4),
                                                                            HistoryEvidence("m", 0.3))), CATS)
    assert (f.reason, f.reason_id) == ("model_near", "m") and "pH Pocket Tester" in f.reason_name
    assert f.lines[0].startswith("Our model") and f.reason_name in f.lines[0]


def test_the_model_names_no_history_item_of_another_department():
    # a calibration weight "close to your PLA filament" is no claim to make: the evidence holds only the
    # filament (Additive Manufacturing), so the reason is the model's ranking for the whole history
    f = compute_facts([FILAMENT_W], WEIGHT, Candidate("w", 0.5, (HistoryEvidence("fw", 0.3),)), CATS)
    assert (f.reason, f.reason_id, f.reason_name, f.evidence_ids) == ("model_history", "", "", ())
    assert f.lines[0] == f'Our model, trained on shoppers\' purchases, ranks the "{f.item_name}" high for your purchase history.'
    ex = Explainer.from_catalog(ExplainerConfig(enabled=False), _MiniCatalog([WEIGHT, FILAMENT_W]))
    text = ex.fallback.render(f)
    assert text.endswith("ranks it high for your purchase history.") and ex.verify(text, f, [FILAMENT_W]).ok


def test_a_top_level_shared_category_alone_is_no_link():
    # the pH meter and the calibration weight share only "Test, Measure & Inspect", the top level
    f = compute_facts([PH_METER], WEIGHT, Candidate("w", 0.5, (HistoryEvidence("m", 0.3),)), CATS)
    assert f.anchor_id == "" and f.links == () and f.reason == "model_near"
    # below another link it still comes, after it
    co = _bought({("m", "w"): 2})
    f = compute_facts([PH_METER], WEIGHT, Candidate("w", 0.5), CATS, co)
    assert f.links == ("bought_together", "category") and f.shoppers == 2


def test_the_weak_reason_template_passes_the_verifier_and_skips_the_llm():
    co = _bought({("e", "s"): 1}, {"z": 20})
    f = compute_facts([WEIGHT, ESUN], SOLUTION, Candidate("s", 0.5), CATS, co)
    ex = Explainer.from_catalog(ExplainerConfig(enabled=False), _MiniCatalog([WEIGHT, ESUN, SOLUTION]))
    text = ex.fallback.render(f)
    assert text == f"You may like the {f.item_name}: 1 other shopper who bought your {f.reason_name} also bought it."
    assert ex.verify(text, f, [WEIGHT, ESUN]).ok
    g = compute_facts([PH_METER], WEIGHT, Candidate("w", 0.5, (HistoryEvidence("m", 0.3),)), CATS)
    text = ex.fallback.render(g)
    assert text.endswith(f"our model, trained on shoppers' purchases, rates it close to your {g.reason_name}.")
    assert ex.verify(text, g, [PH_METER]).ok
    # with the LLM on, an item with only a weak reason gets the template at once (no model call)
    import asyncio
    from explainer.service import Trace
    on = Explainer.from_catalog(ExplainerConfig(enabled=True, vllm_url="http://127.0.0.1:9"), _MiniCatalog([WEIGHT]))
    j = asyncio.run(on._explain_one([PH_METER], [], g, Trace(g)))
    assert j.source == "template" and j.fallback_reason == "weak_reason" and j.evidence_ids == ("m",)


def test_names_distinct_across_a_reply_and_its_anchors():
    facts = compute_reply_facts([FILAMENT_W], [(FILAMENT_B, None), (ESUN, None)], CATS)
    pairs = {(f.item_id, f.item_name) for f in facts} | {(f.anchor_id, f.anchor_name) for f in facts if f.anchor_id}
    assert duplicate_names(pairs) == 0 and all(name_problem(n) == "" for _, n in pairs)


def test_titles_only_catalog_gets_linked_or_honest_reasons(tmp_path):
    from store.ingest import ingest_files
    data = Path(__file__).parent / "data" / "titles_only"
    cat = Catalog(tmp_path / "c.sqlite")
    try:
        ingest_files(cat, data / "items.jsonl", data / "events.csv")
        ex = Explainer.from_catalog(ExplainerConfig(enabled=False), cat)
        texts = {}
        for user in ("u1", "u2", "u4"):
            hist = cat.get_items(cat.history(user))
            items = [i for i in cat.all_items() if i.id not in {h.id for h in hist}]
            pairs = [(i, Candidate(i.id, 0.5)) for i in items]
            for j, f in zip(ex.explain_template(hist, pairs), ex.facts(hist, pairs)):
                assert ex.verify(j.text, f, hist).ok, (j.text, f.lines)
                assert name_problem(f.item_name) == "" and "ignore" not in f.item_name.lower()
                assert ("Because" in j.text) == bool(f.links)
                texts[(user, j.item_id)] = (j.text, f)
        # u4 bought the blue gloves: the black ones are the same product in another colour
        text, f = texts[("u4", "t2")]
        assert f.link == "variant" and "Black" in f.item_name and "Blue" in f.anchor_name, text
        # nothing u4 bought (gloves, beaker, spatula) shares anything with the buffer solution: no anchor, no "because"
        hist_u = cat.get_items(cat.history("u4"))
        facts = ex.facts(hist_u, [(cat.get_item("t4"), Candidate("t4", 0.5))])
        assert facts[0].links == () and facts[0].item_name and "Because" not in ex.explain_template(
            hist_u, [(cat.get_item("t4"), Candidate("t4", 0.5))])[0].text
        # the instruction in t6's title never reaches a name
        assert all("PWNED" not in f.item_name and "instructions" not in f.item_name for _, f in texts.values())
    finally:
        cat.close()


def test_one_product_bought_under_two_listings_keeps_one_name():
    twin = Item("fw2", FILAMENT_W.title, FILAMENT_W.category, FILAMENT_W.brand)
    facts = compute_reply_facts([FILAMENT_W, twin], [(FILAMENT_B, None), (ESUN, None)], CATS)
    assert {f.anchor_name for f in facts if f.anchor_id} <= {"PLA 3D Printer Filament in White"}
    assert all("listing" not in f.anchor_name for f in facts)


def test_a_variant_without_words_says_another_version_and_passes_the_verifier():
    import dataclasses

    from explainer.prompts import FallbackTemplate
    from explainer.verifier import Verifier

    f = compute_facts([ESUN, FILAMENT_W], FILAMENT_B, Candidate("fb", 0.9, (HistoryEvidence("e", 0.95),)), CATS)
    f = dataclasses.replace(f, variant="")   # two listings told apart only by "(listing N)"
    text = FallbackTemplate().render(f)
    assert text.endswith(": another version of the same product."), text
    assert Verifier(["HATCHBOX", "eSUN"]).verify(text, f, [ESUN.title, FILAMENT_W.title], "stop").failed == ()


def test_eval_counts_texts_with_no_history_link():
    from explainer.evaluate import text_metrics
    from explainer.verifier import Verifier
    v = Verifier(["Smart Weigh", "HATCHBOX", "Apera Instruments"])
    weak = compute_facts([FILAMENT_W], WEIGHT, Candidate("w", 0.5, (HistoryEvidence("fw", 0.3),)), CATS)
    linked = compute_facts([PH_METER], SOLUTION, Candidate("s", 0.5), CATS)
    texts = [(f"You may like the {weak.item_name} by Smart Weigh.", weak),   # a description: no reason
             (f"You may like the {weak.item_name}: our model, trained on shoppers' purchases, rates it close to your "
              f"{weak.reason_name}.", weak),
             (f"Because you bought the {linked.anchor_name}, you may like the {linked.item_name}, which is also in "
              f"{linked.shared_category}.", linked)]
    m = text_metrics([(t, v.verify(t, f, [FILAMENT_W.title, PH_METER.title]), f) for t, f in texts])
    assert m["no_history_link_rate"] == 1 / 3 and m["weak_reason_share"] == 2 / 3
    assert m["rule_failures"]["no_reason"] == 1
