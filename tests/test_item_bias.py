"""The evidence bias a retrain gives items without a residual (ranker.item_bias): who gets one, that it
is served as one inner product, and that valid picks it only when it helps without warm loss."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ranker.data import SplitData
from ranker.item_bias import (ItemBiasScorer, choose_evidence_bias, evidence_bias, load_bias, with_bias,
                              write_bias)
from ranker.scorers import ZeroShotScorer


def test_only_cold_items_with_events_get_a_bias_growing_with_their_count():
    ids = ["warm", "cold0", "cold1", "cold9"]
    bias = evidence_bias(ids, np.array([50, 0, 1, 9]), np.array([False, True, True, True]), 0.03, -0.06)
    assert set(bias) == {"cold1", "cold9"}                      # warm: has a residual; cold0: no events
    assert bias["cold9"] > bias["cold1"]
    assert bias["cold1"] == pytest.approx(0.03 * np.log(2) - 0.06, abs=1e-6)


def test_bias_is_one_more_inner_product_dimension(tmp_path):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(3, 384)).astype(np.float32)
    base = ZeroShotScorer()
    scorer = with_bias(base, {"b": 0.5})
    assert with_bias(base, {}) is base
    items = scorer.item_vectors(["a", "b", "new"], emb)
    user = scorer.user_vectors([base.item_vectors(["a"], emb[:1])])
    plain = base.user_vectors([base.item_vectors(["a"], emb[:1])]) @ base.item_vectors(["a", "b", "new"], emb).T
    assert np.allclose(user @ items.T, plain + np.array([0.0, 0.5, 0.0]), atol=1e-6)   # an unknown id: 0
    assert scorer.query_vector(emb[0])[-1] == 1.0 and scorer.dim == 385
    write_bias(tmp_path, {"b": 0.5})
    assert load_bias(tmp_path) == {"b": 0.5} and load_bias(tmp_path / "none") == {}
    (tmp_path / "item_bias.json").write_text(json.dumps(["not", "a", "dict"]))
    with pytest.raises(ValueError, match="item_bias.json"):
        load_bias(tmp_path)
    assert ItemBiasScorer({"x": 1}).history_vectors(["x"], emb[:1]) is None


def _data(targets_are_popular_cold: bool) -> tuple[SplitData, np.ndarray, np.ndarray]:
    """40 items on a circle of text vectors; users' histories sit near their target, so zero-shot
    ranks warm targets well. Items 30-39 are cold; their counts say which one users take."""
    rng = np.random.default_rng(1)
    n = 40
    emb = rng.normal(size=(n, 384)).astype(np.float32)
    counts = np.r_[np.full(30, 20.0), [1, 1, 1, 1, 1, 40, 40, 40, 40, 40]]
    cold = np.arange(n) >= 30
    hist, target = [], []
    for u in range(400):
        if targets_are_popular_cold and u % 4 == 0:
            t = int(rng.choice([35, 36, 37, 38, 39]))        # taken often and, yes, the users' next item
            h = [int(rng.integers(0, 30))]                   # histories that say nothing about it
        else:
            t = int(rng.integers(0, 30))
            h = [t]                                          # the text match finds warm targets
        hist.append(np.array(h, dtype=np.int64))
        target.append(t)
    data = SplitData(item_ids=[f"i{k}" for k in range(n)], text_emb=emb, valid_hist=hist,
                     valid_target=np.array(target, dtype=np.int64))
    return data, counts, cold


def test_valid_picks_a_bias_when_counts_predict_new_targets_and_none_otherwise():
    data, counts, cold = _data(targets_are_popular_cold=True)
    scorer, bias, summary = choose_evidence_bias(ZeroShotScorer(), data, counts, cold)
    assert summary["alpha"] > 0 and set(bias) == {f"i{k}" for k in range(30, 40)}
    assert bias["i39"] > bias["i30"]
    assert summary["valid"][f"{summary['alpha']},{summary['offset']}"]["ndcg@10"] > summary["valid"]["0.0,0.0"]["ndcg@10"]
    # the warm users stay within one standard error of no bias
    assert summary["valid"][f"{summary['alpha']},{summary['offset']}"]["warm_ndcg@10"] >= summary["warm_floor"]
    assert isinstance(scorer.members[-1], ItemBiasScorer)
    # the grid's quick re-ranking agrees with ranking the biased scorer from scratch
    from ranker.evaluate import scorer_ranks

    gain = np.where((r := scorer_ranks(scorer, data, "valid")) < 10, 1.0 / np.log2(r + 2.0), 0.0)
    biased = np.isin(data.valid_target, np.arange(30, 40))
    chosen = summary["valid"][f"{summary['alpha']},{summary['offset']}"]
    assert chosen["biased_ndcg@10"] == pytest.approx(gain[biased].mean(), abs=1e-5)
    assert chosen["warm_ndcg@10"] == pytest.approx(gain[~biased].mean(), abs=1e-5)

    data, counts, cold = _data(targets_are_popular_cold=False)    # cold items are never anyone's next item
    scorer, bias, summary = choose_evidence_bias(ZeroShotScorer(), data, counts, cold)
    assert bias == {} and (summary["alpha"], summary["offset"]) == (0.0, 0.0)
    assert isinstance(scorer, ZeroShotScorer)


def test_leave_one_out_ranks_recount_each_target_without_its_own_event():
    from ranker.item_bias import leave_one_out_ranks
    from ranker.metrics import target_ranks

    data, counts, cold = _data(targets_are_popular_cold=True)
    counts = counts.copy()
    counts[35] = 1                                             # its one event is the held-out one
    bias = evidence_bias(data.item_ids, counts, cold, 0.05, 0.0)
    scorer = with_bias(ZeroShotScorer(), bias)
    hist, targets = data.valid_hist[:40], data.valid_target[:40]
    loo = leave_one_out_ranks(scorer, data, hist, targets, counts, bias, 0.05, 0.0)
    plain = ZeroShotScorer()
    z = plain.item_vectors(data.item_ids, data.text_emb)
    unbiased = target_ranks(plain.user_vectors([z[h] for h in hist]) @ z.T
                            + scorer.item_vectors(data.item_ids, data.text_emb)[:, -1][None], targets)
    full = target_ranks(scorer.user_vectors([z[h] for h in hist]) @ scorer.item_vectors(data.item_ids, data.text_emb).T,
                        targets)
    assert np.array_equal(full, unbiased)                      # the served scores: every item keeps its bias
    for u, t in enumerate(targets):
        if t == 35:                                            # without its own event it has none: ranks lower
            assert loo[u] >= full[u]
        elif t in (36, 37, 38, 39):                            # 40 events: recounted as 39, about the same
            assert abs(int(loo[u]) - int(full[u])) <= 1
        else:
            assert loo[u] == full[u]
    assert (loo[targets == 35] > full[targets == 35]).any()


def _data_tradeoff() -> tuple[SplitData, np.ndarray, np.ndarray]:
    """Warm users' targets rank second (their history item leans toward them), so a bias strong enough
    to lift the popular cold targets passes warm targets too: more bias trades warm users for new ones."""
    rng = np.random.default_rng(1)
    n = 40
    emb = rng.normal(size=(n, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    for k in range(0, 30, 2):                                   # item k+1 leans toward item k
        lean = 0.1 + 0.025 * (k // 2)
        emb[k + 1] = (1 - lean) * emb[k + 1] + lean * emb[k]
    counts = np.r_[np.full(30, 20.0), [1, 1, 1, 1, 1, 40, 40, 40, 40, 40]]
    hist, target = [], []
    for u in range(400):
        if u % 4 == 0:
            t, h = int(rng.choice([35, 36, 37, 38, 39])), int(rng.integers(0, 30))
        else:
            t = int(rng.integers(0, 30))
            h = t ^ 1
        hist.append(np.array([h], dtype=np.int64))
        target.append(t)
    data = SplitData(item_ids=[f"i{k}" for k in range(n)], text_emb=emb, valid_hist=hist,
                     valid_target=np.array(target, dtype=np.int64))
    return data, counts, np.arange(n) >= 30


def test_a_serving_model_weaker_on_warm_users_lets_valid_pick_a_stronger_bias():
    from ranker.evaluate import scorer_ranks

    data, counts, cold = _data_tradeoff()
    _, _, alone = choose_evidence_bias(ZeroShotScorer(), data, counts, cold)
    ranks = scorer_ranks(ZeroShotScorer(), data, "valid")
    same = choose_evidence_bias(ZeroShotScorer(), data, counts, cold, reference_ranks=ranks)[2]
    assert (same["alpha"], same["offset"]) == (alone["alpha"], alone["offset"])    # the lower floor is no bias's
    # the serving model ranked the warm users' targets 2 places lower: the fine-tune's warm gain may be spent
    weaker = np.where(np.isin(data.valid_target, np.arange(30, 40)), ranks, ranks + 2)
    _, bias, spent = choose_evidence_bias(ZeroShotScorer(), data, counts, cold, reference_ranks=weaker)
    before, after = (s["valid"][f"{s['alpha']},{s['offset']}"] for s in (alone, spent))
    assert spent["serving_warm_floor"] < alone["warm_floor"] and spent["warm_floor"] == spent["serving_warm_floor"]
    assert after["biased_ndcg@10"] > before["biased_ndcg@10"]              # new targets rank higher
    assert spent["serving_warm_floor"] <= after["warm_ndcg@10"] < before["warm_ndcg@10"]
    assert after["ndcg@10"] >= spent["valid"]["0.0,0.0"]["ndcg@10"]         # pooled: never below no bias
    assert bias["i39"] > bias["i30"]
    with pytest.raises(ValueError, match="reference_ranks"):
        choose_evidence_bias(ZeroShotScorer(), data, counts, cold, reference_ranks=ranks[:-1])
