"""Sampled softmax with logQ correction against the full softmax, and the switch between them (fast: tiny tensors)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ranker.loss import NegativeSampler, full_softmax_loss, sampled_softmax_loss
from ranker.synthetic import synthetic_split
from ranker.train import TrainConfig, _FullSoftmaxStep, _SampledSoftmaxStep, fit

pytestmark = pytest.mark.slow      # torch (its import alone takes seconds here; the fast tier never loads it)


def _towers(n=200, p=64, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    users = F.normalize(torch.randn(p, d, generator=g), dim=-1)
    items = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    targets = torch.randint(0, n, (p,), generator=g)
    return users, items, targets


def test_all_items_as_negatives_is_exactly_the_full_softmax():
    users, items, targets = _towers()
    rows = torch.arange(len(items))              # every item once; uniform q = 1/N, so log(K q) = 0
    sampled = sampled_softmax_loss(users, items[targets], items, torch.zeros(len(items)), targets, rows, 20.0)
    torch.testing.assert_close(sampled, full_softmax_loss(users, items, targets, 20.0))


def test_repeat_bias_reaches_every_draw_of_a_history_item():
    """Each catalog row drawn twice (log(K q) = log 2): still exactly the full softmax, with the sparse
    (position, row, value) bias applied to the positive and to both draws of a row."""
    users, items, targets = _towers(n=50, p=6)
    bias = (torch.tensor([0, 0, 3, 5]), torch.tensor([targets[0], 7, 7, 11]), torch.tensor([1.5, -2.0, 0.7, -4.0]))
    rows = torch.cat([torch.arange(50), torch.arange(50)])
    sampled = sampled_softmax_loss(users, items[targets], items[rows], torch.full((100,), float(np.log(2))),
                                   targets, rows, 5.0, bias)
    full = full_softmax_loss(users, items, targets, 5.0, bias)
    torch.testing.assert_close(sampled, full)
    assert not torch.isclose(full, full_softmax_loss(users, items, targets, 5.0))


def test_logq_corrected_sample_estimates_the_full_partition_sum_without_bias():
    """E[sum over draws of exp(s_j - log(K q_j))] = sum over items of exp(s_j): the sampled loss's partition
    sum is unbiased under a skewed proposal; without the correction it is far off."""
    users, items, targets = _towers(n=300, p=3)
    popularity = 1e4 / np.arange(1, len(items) + 1) ** 1.2              # counts, skewed: most draws are the top items
    common = F.normalize(torch.randn(users.shape[1], generator=torch.Generator().manual_seed(3)), dim=0)
    users = F.normalize(users + common, dim=-1)                         # popular items score high for everyone:
    items = F.normalize(items + 3 * (torch.arange(len(items)) < 15).float()[:, None] * common, dim=-1)   # the top 15
    scale = 5.0                                                          # as in a trained model: the biased case
    sampler = NegativeSampler(popularity, k=256, uniform=0.1, generator=torch.Generator().manual_seed(1))
    for u, t in zip(users, targets):
        s = scale * (items @ u)
        exact = float(s.exp().sum() - s[t].exp())                        # the negatives' part of the full sum
        est, flat_est = [], []
        for _ in range(400):
            rows, log_count = sampler.draw()
            flat = torch.full_like(log_count, float(np.log(256 / len(items))))   # no logQ: as if uniform
            for lc, out in ((log_count, est), (flat, flat_est)):
                loss = sampled_softmax_loss(u[None], items[t][None], items[rows], lc, t[None], rows, scale)
                out.append(float((loss + s[t]).exp() - s[t].exp()))     # loss = -s_t + log(e^s_t + Z_hat)
        assert abs(np.mean(est) / exact - 1) < 0.03
        assert abs(np.mean(flat_est) / exact - 1) > 0.2


def test_sampler_draws_follow_q():
    popularity = np.array([100.0, 10.0, 1.0, 0.0])
    sampler = NegativeSampler(popularity, k=200_000, uniform=0.5, generator=torch.Generator().manual_seed(0))
    rows, log_count = sampler.draw()
    freq = torch.bincount(rows, minlength=4).double() / len(rows)
    torch.testing.assert_close(freq, sampler.q.double(), atol=0.005, rtol=0)
    torch.testing.assert_close(log_count, torch.log(200_000 * sampler.q[rows]))
    with pytest.raises(ValueError, match="negatives"):
        NegativeSampler(popularity, k=0)


def test_sampled_step_with_every_item_drawn_equals_the_full_step():
    """The sampled step's plumbing (only the touched rows through the towers, index remapping, the repeat
    bias on history items, dismissals) gives the full step's loss when the draw is the whole catalog."""
    data = synthetic_split(60, 50, seed=2)
    cfg = TrainConfig(dim=16, residual_dropout=0.0, device="cpu")
    from ranker.model import TwoTower

    torch.manual_seed(0)
    model = TwoTower(cfg.model_config(data.n_items, 384)).eval()      # eval: no dropout, deterministic
    with torch.no_grad():
        model.item.residual.weight[:-1].normal_(0, 0.1)
        model.item_in.residual.weight[:-1].normal_(0, 0.1)
        model.repeat.normal_(0, 1.0)                                    # the repeat bias on history items
    text = torch.as_tensor(data.text_emb)
    evidence = torch.as_tensor(data.popularity() >= 1)
    seqs = data.train_seqs[:8]
    L = max(len(s) for s in seqs)
    rows = torch.zeros(len(seqs), L, dtype=torch.long)
    valid = torch.zeros(len(seqs), L, dtype=torch.bool)
    for b, s in enumerate(seqs):
        rows[b, :len(s)], valid[b, :len(s)] = torch.as_tensor(s), True
    assert any(len(set(s.tolist())) < len(s) for s in seqs)             # some history repeats: the bias acts
    dismissed = [(1, np.array([3, 7]))]
    sampled = _SampledSoftmaxStep(model, text, evidence, cfg, data.popularity())
    sampled.sampler.draw = lambda: (torch.arange(data.n_items), torch.zeros(data.n_items))
    full = _FullSoftmaxStep(model, text, evidence, cfg)
    torch.testing.assert_close(sampled(rows, valid, dismissed), full(rows, valid, dismissed))


def test_the_switch_happens_above_the_threshold():
    data = synthetic_split(40, 60, seed=1)
    cfg = TrainConfig(epochs=1, dim=16, ensemble=1, device="cpu", threads=1, negatives=16)
    modes = {}
    for limit in (39, 40):
        _, history, _ = fit(data, dataclasses.replace(cfg, full_softmax_max_items=limit), progress=False)
        modes[limit] = history[0]["softmax"]
    assert modes == {39: "sampled", 40: "full"}
    assert not cfg.sampled_softmax(10_000) and cfg.sampled_softmax(10_001)
    assert not cfg.bucketed(10_000) and cfg.bucketed(10_001)             # length_buckets "auto" follows it
    assert dataclasses.replace(cfg, length_buckets="on").bucketed(10)
    with pytest.raises(ValueError, match="full_softmax_max_items"):
        TrainConfig(full_softmax_max_items=-1)
