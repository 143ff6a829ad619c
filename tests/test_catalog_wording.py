"""Justifications that fit the catalog: the shopper's recorded action chooses the wording, the
catalog's own attributes become facts, several category paths link items. No LLM here: facts,
templates and the verifier on the two small fixtures under tests/data (film: ratings; retail:
views, clicks, cart adds, purchases). tests/test_explainer_llm.py-style LLM runs of the same
fixtures are `explainrec eval-explanations` (README, "Other catalogs")."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from explainer.actions import action_for
from explainer.attributes import AttributeStats, descriptive_facts, link_facts
from explainer.config import ExplainerConfig
from explainer.facts import CategoryNames, compute_facts
from explainer.prompts import FallbackTemplate, PromptTemplate
from explainer.service import Explainer
from explainer.verifier import Verifier
from ranker.types import Candidate, HistoryEvidence
from store.catalog import Catalog, Item
from store.errors import IngestError
from store.history import HistoryItem, history_items
from store.ingest import ingest_files

DATA = Path(__file__).parent / "data"
ITEM = Item("I", "Sonora Portable Bluetooth Speaker", "Electronics > Audio > Speakers", "Sonora")
SEEN = Item("H", "Kestrel Studio Monitor Headphones", "Electronics > Audio > Headphones", "Kestrel")
WORDING = {"purchase": "you bought the", "rating": "you rated the", "review": "you reviewed the",
           "view": "you looked at the", "click": "you looked at the", "cart": "to your cart"}


def _facts(kinds, item=ITEM, anchor=SEEN, stats=None):
    h = HistoryItem(**anchor.__dict__, kinds=tuple(kinds))
    cats = CategoryNames([item.category, anchor.category])
    return h, compute_facts([h], item, Candidate(item.id, .9, (HistoryEvidence(h.id, .8),)), cats, None, stats)


def _verify(text, facts, hist):
    return Verifier(["Sonora", "Kestrel"]).verify(text, facts, [h.title for h in hist],
                                                  history_kinds=[h.kinds for h in hist])


@pytest.mark.parametrize("kind", sorted(WORDING))
def test_each_event_kind_has_its_wording_in_facts_prompt_template_and_verifier(kind):
    h, f = _facts([kind])
    said = WORDING[kind]
    assert said in f.action and said in f.lines[0].lower()
    prompt = PromptTemplate("frame_reason").render([(action_for(h.kinds).verb, f.anchor_name)], f)
    assert prompt.prefill.lower().startswith("because " + f.action.lower())
    assert f'{action_for(h.kinds).verb}: "{f.anchor_name}"' in prompt.messages[1]["content"]
    text = FallbackTemplate().render(f)
    assert said in text.lower()
    assert _verify(text, f, [h]).ok
    # every other action stated about the same item is false
    for other, wrong in WORDING.items():
        if action_for([other]).cls == action_for([kind]).cls:
            continue
        lie = (f"Because you added the {f.anchor_name} to your cart, you may like the {f.item_name}." if other == "cart"
               else f"Because {wrong} {f.anchor_name}, you may like the {f.item_name}.")
        assert "false_action" in _verify(lie, f, [h]).failed, lie


def test_strongest_recorded_action_is_said_and_inline_history_is_neutral():
    assert action_for(["view", "cart", "purchase"]).verb == "bought"
    assert action_for(["view", "rating"]).verb == "rated"
    _, f = _facts([])   # an inline history id: nothing recorded
    assert f.action.startswith("you showed interest in") and "bought" not in " ".join(f.lines)
    assert "false_action" in _verify(f"Because you bought the {f.anchor_name}, you may like it.", f,
                                     [HistoryItem(**SEEN.__dict__)]).failed


def test_attribute_links_multi_valued_decade_same_value_and_descriptive_numbers():
    a = Item("A", "Titanic", "Drama", attributes={"genres": ["Drama", "Romance"], "year": 1997, "size": "1.75 mm",
                                                  "director": "James Cameron"})
    b = Item("B", "Notting Hill", "Comedy", attributes={"genres": ["Comedy", "Drama", "Romance"], "year": 1999,
                                                        "size": "1.75 mm", "director": "Roger Michell",
                                                        "runtime_min": 124})
    links = {f.key: f for f in link_facts(b, a, "Notting Hill", "Titanic", None)}
    assert links["genres"].values == ("Drama", "Romance") and "Drama and Romance" in links["genres"].line
    assert "director" not in links
    stats = AttributeStats([a, b], preferred=["year", "size"])
    ranked = link_facts(b, a, "Notting Hill", "Titanic", stats)
    assert [f.key for f in ranked] == ["year", "size"]   # the configured preference, capped at two
    assert ranked[0].line.endswith("are both from the 1990s.") and "1.75 mm" in ranked[1].line
    own = descriptive_facts(b, "Notting Hill", stats, skip=["year", "size", "genres"])
    assert {f.key for f in own} == {"director", "runtime_min"}
    # numbers in the attribute facts may be stated; any other number still fails
    h, f = _facts(["rating"], item=b, anchor=a, stats=AttributeStats([a, b], ["year", "size", "runtime_min"]))
    assert any("124" in line for line in f.lines) and any("1.75 mm" in line for line in f.lines)
    base = f"Because you rated the {f.anchor_name}, you may like the {f.item_name}"
    assert _verify(base + ", which is also from the 1990s.", f, [h]).ok
    assert _verify(base + ", which has the same size, 1.75 mm, and the runtime min 124.", f, [h]).ok
    assert "number" in _verify(base + ", which has the runtime min 135.", f, [h]).failed
    assert "number" in _verify(base + ", which is from 1995.", f, [h]).failed


def test_ids_and_near_constant_attributes_lose_priority_and_preferred_come_first():
    items = [Item(f"i{n}", f"t{n}", attributes={"sku": f"S{n}", "language": "English", "color": ["Red", "Blue"][n % 2],
                                                "genre": ["x", "y", "z"][n % 3]}) for n in range(40)]
    stats = AttributeStats(items)
    assert not stats.profiles["sku"].informative and not stats.profiles["language"].informative
    assert stats.profiles["color"].informative
    order = sorted(["sku", "language", "color", "genre"], key=stats.rank)
    assert set(order[:2]) == {"color", "genre"} and set(order[2:]) == {"sku", "language"}
    assert sorted(["sku", "color", "genre"], key=AttributeStats(items, ["sku"]).rank)[0] == "sku"
    assert descriptive_facts(items[0], "t0", stats) and all(
        f.key in ("color", "genre") for f in descriptive_facts(items[0], "t0", stats))


def test_several_category_paths_link_items():
    cats = ["Home > Lighting > Bulbs", "Electronics > Smart Home", "Electronics > Audio > Speakers",
            "Home > Lighting > Lamps", "Sports > Outdoor > Camping"]
    bulb = Item("B", "Smart LED Bulb", "Home > Lighting > Bulbs; Electronics > Smart Home")
    speaker = Item("S", "Smart Speaker", "Electronics > Audio > Speakers; Electronics > Smart Home")
    lamp = Item("L", "Camping Headlamp", "Sports > Outdoor > Camping; Home > Lighting > Lamps")
    names = CategoryNames(cats)
    h = HistoryItem(**speaker.__dict__, kinds=("purchase",))
    f = compute_facts([h], bulb, Candidate("B", .5, (HistoryEvidence("S", .5),)), names)
    assert f.shared_category == "Smart Home" and "Smart Home" in FallbackTemplate().render(f)
    h = HistoryItem(**lamp.__dict__, kinds=("view",))
    f = compute_facts([h], bulb, Candidate("B", .5, (HistoryEvidence("L", .5),)), names)
    assert f.shared_category == "Lighting"   # the deepest common parent beyond the root


def test_ingest_accepts_list_and_number_attributes_and_category_paths(tmp_path):
    rows = [{"id": "F1", "title": "Titanic", "category": ["Drama", "Romance"],
             "attributes": {"genres": ["Drama", "Romance", "Drama"], "year": 1997, "rating": 7.9, "wide": True,
                            "note": None}},
            {"id": "F2", "title": "Heat", "category": [["Films", "Crime"]], "attributes": {"year": "1995"}},
            {"id": "F3", "title": "Fargo", "category": "Films > Crime; Films > Thriller"}]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cat = Catalog(tmp_path / "c.sqlite")
    ingest_files(cat, path)
    f1, f2, f3 = cat.get_items(["F1", "F2", "F3"])
    assert f1.attributes == {"genres": ["Drama", "Romance"], "year": 1997, "rating": 7.9, "wide": True}
    assert f1.categories() == ["Drama", "Romance"] and f2.categories() == ["Films > Crime"]
    assert f3.categories() == ["Films > Crime", "Films > Thriller"]


@pytest.mark.parametrize("attributes, field", [
    ({"genres": ["Drama", {"x": 1}]}, "attributes.genres[1]"),
    ({"year": {"from": 1990}}, "attributes.year"),
    ({"size": float("inf")}, "attributes.size"),
    ({"tags": [["a"]]}, "attributes.tags[0]"),
])
def test_bad_attribute_values_name_the_field(tmp_path, attributes, field):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"id": "X", "title": "t", "attributes": attributes}) + "\n")
    with pytest.raises(IngestError) as err:
        ingest_files(Catalog(tmp_path / "c.sqlite"), path)
    assert err.value.field == field and err.value.line == 1


def _fixture_templates(tmp_path, name):
    """Every shopper of a fixture: facts + template for the items of their last event, the cited item
    from their history. Returns (facts, text, verdict) triples."""
    cat = Catalog(tmp_path / f"{name}.sqlite")
    ingest_files(cat, DATA / name / "items.jsonl", DATA / name / "events.csv")
    ex = Explainer.from_catalog(ExplainerConfig(enabled=False), cat)
    out = []
    for user, seq in cat.sequences().items():
        hist = history_items(cat, [i for i, s in seq if s != "test"], user, ("train", "valid"))
        target = cat.get_item(next(i for i, s in seq if s == "test"))
        cand = Candidate(target.id, .5, tuple(HistoryEvidence(h.id, .5) for h in reversed(hist[-3:])))
        for f, j in zip(ex.facts(hist, [(target, cand)]), ex.explain_template(hist, [(target, cand)])):
            out.append((f, j.text, ex.verify(j.text, f, hist)))
    cat.close()
    return out


def test_film_fixture_ratings_never_say_bought_and_share_attributes(tmp_path):
    rows = _fixture_templates(tmp_path, "film")
    assert len(rows) >= 50
    assert all(v.ok for _, _, v in rows), [(t, v.failed) for _, t, v in rows if not v.ok][:3]
    assert not any("bought" in t.lower() or "bought" in " ".join(f.lines).lower() for f, t, _ in rows)
    # a text cites a rated film exactly when the two share something (issue 8: no link, no "because")
    assert all(("you rated the" in t) == bool(f.links) for f, t, _ in rows)
    assert sum(bool(f.links) for f, _, _ in rows) >= len(rows) // 2
    linked = [f for f, _, _ in rows if f.shared_values]
    assert len(linked) >= len(rows) // 2
    assert any(len(f.shared_values) >= 2 for f in linked)     # multi-valued: the shared genres
    assert any(v.endswith("0s") for f in linked for v in f.shared_values)   # a shared decade


def test_retail_fixture_words_each_shopper_action_and_links_attributes(tmp_path):
    rows = _fixture_templates(tmp_path, "retail")
    assert all(v.ok for _, _, v in rows), [(t, v.failed) for _, t, v in rows if not v.ok][:3]
    cited = [(f, t) for f, t, _ in rows if f.anchor_name]
    said = {next(w for k, w in WORDING.items() if w in t) for _, t in cited}
    assert {"you bought the", "you looked at the", "to your cart"} <= said
    for f, t in cited:   # the wording is the recorded kind of the cited item
        assert action_for(f.anchor_kinds).say(f.anchor_name) in t
    assert any(f.shared_values for f, _, _ in rows)
    assert any(f.shared_category for f, _, _ in rows)


def test_a_lying_llm_text_on_the_film_fixture_fails(tmp_path):
    f, _, _ = _fixture_templates(tmp_path, "film")[0]
    hist = [HistoryItem(f.anchor_id, f.anchor_name, kinds=("rating",))]
    for lie in (f"Because you bought the {f.anchor_name}, you may like the {f.item_name}.",
                f"Because you watched the {f.anchor_name}, you may like the {f.item_name}.",
                f"Because you rated the {f.anchor_name}, you may like the {f.item_name}, which other shoppers bought."):
        assert "false_action" in Verifier([]).verify(lie, f, [h.title for h in hist],
                                                     history_kinds=[h.kinds for h in hist]).failed
    assert dataclasses.replace(f, anchor_kinds=("purchase",)).anchor_kinds == ("purchase",)


def test_attribute_link_rate_counts_attribute_values_beyond_the_category():
    from explainer.attributes import states_link

    h = HistoryItem("T", "Toy Story", "Animation", attributes={"genres": ["Animation", "Family"], "year": 1995},
                    kinds=("rating",))
    item = Item("L", "The Lion King", "Animation", attributes={"genres": ["Animation", "Family"], "year": 1994})
    f = compute_facts([h], item, Candidate("L", .5, (HistoryEvidence("T", .5),)), CategoryNames(["Animation"]))
    assert f.shared_category == "Animation" and "Family" in f.shared_values
    assert not states_link("Because you rated the Toy Story, you may like the Lion King: both are Animation.", f)
    assert states_link("Because you rated the Toy Story, you may like the Lion King: both are Family films.", f)
    assert states_link("Because you rated the Toy Story, you may like the Lion King: both are from the 1990s.", f)


def test_list_attributes_survive_the_grpc_contract_and_bad_ones_name_the_field():
    from core.errors import InvalidInput
    from server.convert import attributes_from_proto, item_from_proto, item_to_proto

    item = Item("F1", "Titanic", "Drama", attributes={"genres": ["Drama", "Romance"], "note": "[draft]"})
    back = item_from_proto(item_to_proto(item), "items[0]")
    assert back.attributes == {"genres": ["Drama", "Romance"], "note": "[draft]"}
    with pytest.raises(InvalidInput) as err:
        attributes_from_proto({"genres": '["Drama", {"x": 1}]'}, "items[0].attributes")
    assert err.value.field == "items[0].attributes.genres[1]"


def test_ranker_evidence_compares_each_category_path():
    from ranker.evidence import shared_attributes

    bulb = Item("B", "Smart LED Bulb", "Home > Lighting > Bulbs; Electronics > Smart Home")
    speaker = Item("S", "Smart Speaker", "Electronics > Audio > Speakers; Electronics > Smart Home")
    assert shared_attributes(bulb, speaker, 1) == (("category",), "Electronics > Smart Home")
    assert shared_attributes(bulb, Item("Y", "Yoga Mat", "Sports > Fitness > Yoga"), 1) == ((), "")
