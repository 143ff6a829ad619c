"""Whether shoppers repeat (issue 17): the learned repeat bias on history items.

On a catalog where nobody takes the same item twice (a slice of Scientific with repeats removed,
built from ../shared by tests/data/make_norepeat_catalog.py, ingested through the generic path)
the model must learn to keep the shopper's own items out of its top 10, so the protocol view
(history kept in the ranking) and the serving view (history removed) agree.
"""
from __future__ import annotations

import numpy as np
import pytest

from store.catalog import Catalog
from store.ingest import ingest_files
from tests.data.make_norepeat_catalog import build


@pytest.mark.slow      # imports torch (seconds here; the fast tier never loads it)
def test_history_logit_bias_takes_the_most_recent_occurrence():
    import torch

    from ranker.model import ModelConfig, TwoTower, history_logit_bias

    model = TwoTower(ModelConfig(n_items=10, dim=8, heads=1, repeat_bias=True))
    with torch.no_grad():
        model.repeat.copy_(torch.arange(8, dtype=torch.float32))    # bucket b -> logit b
    inp = torch.tensor([[3, 5, 3, 0], [7, 0, 0, 0]])                 # user 0 bought 3 twice; right-padded
    inp_valid = torch.tensor([[True, True, True, False], [True, False, False, False]])
    target_valid = torch.tensor([[True, True, True, False], [True, False, False, False]])
    position, item, value = history_logit_bias(model, inp, inp_valid, target_valid)
    value = value.detach()
    got = {(int(p), int(i)): float(v) for p, i, v in zip(position, item, value)}
    # positions 0..2 are user 0's prefixes, position 3 is user 1's only one
    assert got == {(0, 3): 0.0,
                   (1, 3): 1.0, (1, 5): 0.0,
                   (2, 3): 0.0, (2, 5): 1.0,          # item 3 again at t=2: steps back 0, not 2
                   (3, 7): 0.0}
    assert history_logit_bias(TwoTower(ModelConfig(n_items=10, dim=8, heads=1)), inp, inp_valid,
                              target_valid) is None


def test_history_scores_and_blend_weighting():
    from ranker.scorers import ConcatScorer, ZeroShotScorer, history_scores

    rows, bias = history_scores(np.array([-3.0, -2.0, -1.0], np.float32), np.array([4, 9, 4]))
    assert dict(zip(rows.tolist(), bias.tolist())) == {4: -1.0, 9: -2.0}      # 4's newest occurrence
    assert history_scores(None, np.array([1, 2]))[0].size == 0

    class Biased(ZeroShotScorer):
        def history_bias(self, n):
            return np.full(n, -0.5, np.float32)

    blend = ConcatScorer([Biased(), ZeroShotScorer()], [2.0, 0.25])
    assert blend.history_bias(3).tolist() == [-1.0, -1.0, -1.0]                 # weighted like the scores
    assert ConcatScorer([ZeroShotScorer()], [1.0]).history_bias(3) is None


@pytest.mark.slow
def test_no_repeat_catalog_keeps_history_out_of_the_top_10(tmp_path, scientific_dir, ranker_encoder):
    from ranker.data import load_split_data
    from ranker.evaluate import evaluate_ranks, history_share, scorer_ranks
    from ranker.scorers import TrainedScorer, ZeroShotScorer
    from ranker.train import TrainConfig, fit

    items, events = build(scientific_dir, tmp_path / "norepeat", users=800)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    ingest_files(catalog, items, events)
    sequences = catalog.sequences(("train", "valid", "test"))
    for seq in sequences.values():
        ids = [i for i, _ in seq]
        assert len(ids) == len(set(ids))                                   # nobody repeats
    data = load_split_data(catalog, ranker_encoder)
    cfg = TrainConfig(epochs=12, dim=32, ensemble=1, device="cpu", patience=12, blend_weights="0")
    rows = {i: r for r, i in enumerate(data.item_ids)}
    model, _, _ = fit(data, cfg, progress=False)
    scorer = TrainedScorer(model, rows, "cpu")
    # the data says nobody repeats: every steps-back bucket learned a strongly negative logit
    assert (model.repeat.detach() < -2).all(), model.repeat
    share = history_share(scorer, data, "test")
    assert share < 0.01, share
    assert share < history_share(ZeroShotScorer(), data, "test") / 5   # the untrained user fills ~1/5
    protocol = evaluate_ranks(scorer_ranks(scorer, data, "test")).score
    served = evaluate_ranks(scorer_ranks(scorer, data, "test", remove_history=True)).score
    assert protocol > 0 and served / protocol < 1.02, (protocol, served)

    # serving with include_history applies the same bias: exact scan and index search agree, and the
    # shopper's own items stay out of the top 10
    from ranker.service import Ranker, RankerConfig
    from ranker.types import RankQuery

    try:
        exact = Ranker(catalog, scorer, ranker_encoder)
        exact._build_from_catalog()
        searched = Ranker(catalog, scorer, ranker_encoder, RankerConfig(exact_filter_max=0))
        searched._build_from_catalog()
        users = list(sequences)[:30]
        in_top = 0
        for user in users:
            query = RankQuery(user_id=user, k=10, exclude_history=False)
            got = [c.item_id for c in exact.recommend(query)]
            assert got == [c.item_id for c in searched.recommend(query)]
            in_top += len(set(got) & set(catalog.history(user)))
        assert in_top <= 3, in_top
    finally:
        catalog.close()
