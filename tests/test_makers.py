"""The brand a justification may state as the maker: the catalog field unless the title contradicts it."""
from __future__ import annotations

import pytest

from explainer.config import ExplainerConfig
from explainer.makers import Makers
from explainer.read_model import CatalogReadModel
from explainer.service import Explainer
from explainer.links import CoPurchases
from ranker.types import Candidate
from store.catalog import Item

BRANDS = ["3M", "Cubitron", "Scotch", "Gorilla", "Merit Brass", "Spears Manufacturing", "Plumbing Parts", "Generic",
          "Rubbermaid Commercial Products"]
CAT = "Industrial & Scientific Abrasive & Finishing Products Abrasive Discs"


@pytest.mark.parametrize("title,brand,stated", [
    ("3M Hookit Film Disc 375L, Aluminum Oxide, 5 Diameter, P180 Grade (Pack of 50)", "Cubitron", ""),   # a 3M line
    ("Scotch-Brite(TM) Light Cleansing Pad 7445, Aluminum Silicate, White (Pack of 20)", "Cubitron", ""),
    ("Spears 497 Series PVC Pipe Fitting, Union with EPDM O-Ring, Schedule 40", "Plumbing Parts", ""),
    ("Cobalt Blue Glass Bottles with Glass Droppers 1 Oz - 12/bag", "Generic", ""),          # a placeholder
    ("3M Cubitron II Cut-Off Wheel, 4-1/2 in x 7/8 in", "Cubitron", "Cubitron"),             # the title names it
    ("Gorilla Tape, Black Duct Tape, 1.88 x 35 yd, Black", "Gorilla", "Gorilla"),
    ("Rubbermaid Commercial FG264600BLA Tandem Brute Trash Dolly", "Rubbermaid Commercial Products",
     "Rubbermaid Commercial Products"),
    ("Stainless Steel 316 Cast Pipe Fitting, Hex Bushing, Class 150", "Merit Brass", "Merit Brass"),   # nothing contradicts
])
def test_a_brand_is_stated_unless_the_title_says_another_maker(title, brand, stated):
    assert Makers(BRANDS).maker(title, brand) == stated


PAD = Item("P1", "Scotch-Brite(TM) Light Cleansing Pad 7445, Aluminum Silicate, White (Pack of 20)", CAT, "Cubitron")
DISC = Item("D1", "3M Hookit Film Disc 375L, Aluminum Oxide, 5 Diameter, P180 Grade (Pack of 50)", CAT, "Cubitron")
TAPE = Item("T1", "Scotch Super 33+ Vinyl Electrical Tape, 3/4 in x 66 ft", CAT, "Scotch")


def _explainer() -> Explainer:
    model = CatalogReadModel([PAD, DISC, TAPE, Item("M", "3M Flap Disc", CAT, "3M")], CoPurchases({}))
    return Explainer(ExplainerConfig(enabled=False), model)


def test_no_fact_template_or_link_says_by_a_product_line():
    ex = _explainer()
    for f in ex.facts([], [(PAD, Candidate("P1", 0.5)), (DISC, Candidate("D1", 0.5))]):
        assert f.brand == "" and not any("Cubitron" in line for line in f.lines)
        assert "Cubitron" not in ex.fallback.render(f)
    # two items of the line share no brand a shopper would call their maker: no "both are by Cubitron"
    f = ex.facts([DISC], [(PAD, Candidate("P1", 0.5))])[0]
    assert "brand" not in f.links and not any("Cubitron" in line for line in f.lines)


def test_the_verifier_refuses_by_a_product_line():
    ex = _explainer()
    f = ex.facts([], [(PAD, Candidate("P1", 0.5))])[0]
    text = f"You may like the {f.item_name}, which is by Cubitron."
    assert "other_brand" in ex.verify(text, f, []).failed
    assert ex.verify(ex.fallback.render(f), f, []).ok
