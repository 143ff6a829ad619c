"""The price-comparison fact (both prices known) and the verifier rule that only it licenses."""
from __future__ import annotations

from explainer.price_compare import claims_price, price_claim_unsupported, price_comparison, stated_direction
from store.catalog import Item

TENT = Item(id="T1", title="Acme Dome Tent", brand="Acme", price=120.0)
CHEAP = Item(id="T2", title="Northwind Dome Tent", brand="Northwind", price=79.5)
UNPRICED = Item(id="T3", title="Contoso Dome Tent", brand="Contoso")


def test_fact_only_with_both_prices():
    line = price_comparison(CHEAP, TENT, "Northwind tent", "Acme tent")
    assert line == 'The "Northwind tent" costs $79.50, $40.50 less than the "Acme tent" ($120.00).'
    assert stated_direction([line]) == "less"
    assert stated_direction([price_comparison(TENT, CHEAP, "a", "b")]) == "more"
    assert price_comparison(UNPRICED, TENT, "a", "b") is None and price_comparison(TENT, UNPRICED, "a", "b") is None
    assert price_comparison(TENT, TENT, "a", "b") is None


def test_rule_allows_only_what_the_fact_says():
    line = price_comparison(CHEAP, TENT, "Northwind tent", "Acme tent")
    ok = "The Northwind tent is like the Acme tent but costs $40.50 less."
    assert claims_price(ok) == "less" and not price_claim_unsupported(ok, [line])
    assert not price_claim_unsupported("It is cheaper than the Acme tent.", [line])
    assert price_claim_unsupported("It is cheaper than the Acme tent.", [])            # no fact
    assert price_claim_unsupported("It is more expensive than the Acme tent.", [line])  # wrong direction
    assert not price_claim_unsupported("You bought the Acme tent; this is by Northwind.", [])   # no claim


def test_the_verifier_passes_a_stated_comparison_only_with_the_fact():
    import dataclasses

    from tests.test_verifier_rules import LINKED, failed
    ref = Item(id="R1", title="Hillman Locknut Kit", brand="Hillman", price=12.0)
    item = Item(id=LINKED.item_id, title="Hex Nut", brand="Hillman", price=8.5)
    line = price_comparison(item, ref, LINKED.item_name, "Hillman Locknut Kit")
    with_price = dataclasses.replace(LINKED, lines=LINKED.lines + (line,))
    text = (f"Because you bought the {LINKED.anchor_name}, you may like the {LINKED.item_name}, which is also by "
            f"Hillman and costs $3.50 less than the Hillman Locknut Kit.")
    assert failed(text, with_price) == ()
    assert "price_claim" in failed(text, LINKED)                                  # no fact, no comparison
    assert "price_claim" in failed(text.replace("less", "more"), with_price)       # the wrong way round
