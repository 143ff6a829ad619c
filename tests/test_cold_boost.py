"""The blend's cold boost (ranker.scorers.ColdBoostedZeroShot) lifts only the model's own cold items:
not items upserted after training, not a retrain's new items (they get the evidence bias)."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.mark.slow      # importing torch alone takes seconds here; the fast tier never loads it
def test_cold_boost_lifts_only_the_models_own_cold_items(tmp_path):
    import torch

    from ranker.model import ModelConfig, TwoTower
    from ranker.scorers import ColdBoostedZeroShot, TrainedScorer, load_scorer

    cfg = ModelConfig(n_items=3, dim=16, heads=2)
    model = TwoTower(cfg)
    with torch.no_grad():
        model.item.residual.weight[0] = 1.0                 # "warm" has a residual; "cold", "new_in_retrain" none
    ids = ["warm", "cold", "new_in_retrain"]
    scorer = TrainedScorer(model, {i: r for r, i in enumerate(ids)})
    boost = ColdBoostedZeroShot(scorer, 3.0, skip=["new_in_retrain"])
    asked = ["warm", "cold", "new_in_retrain", "upserted_later"]
    assert scorer.cold(asked).tolist() == [False, True, True, True]      # all of these rank from their text
    assert boost.boosted(asked).tolist() == [False, True, False, False]  # but only "cold" is boosted
    emb = np.random.default_rng(0).normal(size=(4, 384)).astype(np.float32)
    norms = np.linalg.norm(boost.item_vectors(asked, emb), axis=1)
    assert norms == pytest.approx([1.0, 3.0, 1.0, 1.0], abs=1e-5)
    assert np.linalg.norm(boost.history_vectors(asked, emb), axis=1) == pytest.approx([1.0] * 4, abs=1e-5)

    # a model directory's skip list (written by a retrain) reaches the served scorer
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "item_ids.json").write_text(json.dumps(ids))
    (tmp_path / "config.json").write_text(json.dumps({"model": cfg.to_dict(), "ensemble": 1, "blend_weight": 0.25,
                                                      "cold_boost": 3.0, "cold_boost_skip": ["new_in_retrain"]}))
    served = load_scorer(tmp_path, "cpu").members[-1]
    assert isinstance(served, ColdBoostedZeroShot) and served.boosted(asked).tolist() == [False, True, False, False]
