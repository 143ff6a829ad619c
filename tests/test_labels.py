"""The verifier against hand labels: real Scientific justifications read as a shopper would."""
from __future__ import annotations

from collections import Counter

from explainer.config import ExplainerConfig
from explainer.labels import DEFAULT_LABELS, FAILURE_KINDS, agreement, load_labels
from explainer.service import Explainer

MIN_AGREEMENT = 0.9


def test_labels_are_many_real_and_well_formed():
    cases = load_labels(DEFAULT_LABELS)
    assert len(cases) >= 60
    assert len({c.id for c in cases}) == len(cases)
    kinds = Counter(c.failure for c in cases if not c.acceptable)
    assert sum(c.acceptable for c in cases) >= 20 and sum(kinds.values()) >= 10   # both sides are represented
    assert all(c.failure == "" for c in cases if c.acceptable)
    assert set(kinds) <= set(FAILURE_KINDS)
    assert all(c.facts.item_name and c.text for c in cases)


def test_verifier_agrees_with_the_hand_labels(catalog):
    verifier = Explainer.from_catalog(ExplainerConfig(enabled=False), catalog).verifier   # every catalog brand
    result = agreement(verifier, load_labels(DEFAULT_LABELS))
    assert result["rate"] >= MIN_AGREEMENT, result
