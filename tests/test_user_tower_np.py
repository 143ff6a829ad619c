"""The numpy last-step user tower (ranker.user_tower_np) against torch's TwoTower.last_user, and
the scorer's user vectors the same alone and in a batch. Slow only because it imports torch (a
few seconds); the tests themselves take well under a second."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

from ranker.model import ModelConfig, TwoTower  # noqa: E402 - after torch, in the slow tier only
from ranker.scorers import TrainedScorer  # noqa: E402
from ranker.user_tower_np import NumpyUserTower  # noqa: E402


def _model(**kw) -> TwoTower:
    torch.manual_seed(0)
    model = TwoTower(ModelConfig(n_items=10, dim=32, max_len=12, **kw))
    with torch.no_grad():        # non-trivial norms and mix, not the initial ones and zeros
        for p in model.user.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _torch_last_user(model: TwoTower, histories) -> np.ndarray:
    L = max(len(h[-model.cfg.max_len:]) for h in histories)
    seq = np.zeros((len(histories), L, model.cfg.dim), np.float32)
    valid = np.zeros((len(histories), L), bool)
    for b, h in enumerate(histories):
        h = h[-model.cfg.max_len:]
        seq[b, :len(h)], valid[b, :len(h)] = h, True
    with torch.inference_mode():
        return model.last_user(torch.from_numpy(seq), torch.from_numpy(valid)).numpy()


@pytest.mark.parametrize("kw", [{}, {"layers": 2, "heads": 4}, {"recency_mix": False, "score": "dot"}])
def test_numpy_tower_matches_torch_last_user(kw):
    model = _model(**kw)
    assert NumpyUserTower.supports(model)
    rng = np.random.default_rng(0)
    histories = [rng.standard_normal((n, 32)).astype(np.float32) for n in (1, 2, 5, 12, 20, 3)]  # 20 > max_len
    want = _torch_last_user(model, histories)
    got = NumpyUserTower(model).many(histories)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)


def test_scorer_user_vectors_are_the_same_bits_alone_and_in_a_batch():
    model = _model()
    scorer = TrainedScorer(model, {}, "cpu")
    rng = np.random.default_rng(1)
    histories = [rng.standard_normal((n, 32)).astype(np.float32) for n in (1, 4, 9, 15, 2)]
    batch = scorer.user_vectors(histories)
    for h, row in zip(histories, batch):
        assert scorer.user_vectors([h])[0].tobytes() == row.tobytes()


def test_a_training_model_is_not_mirrored():
    """Dropout on: the numpy tower (eval maths) must not stand in for it."""
    model = _model().train()
    assert not NumpyUserTower.supports(model)


def test_an_ensemble_runs_as_one_stacked_tower_with_the_same_answer():
    from ranker.scorers import ConcatScorer

    members = [TrainedScorer(_model(), {}, "cpu") for _ in range(2)]
    with torch.no_grad():                      # two different members
        for p in members[1].model.user.parameters():
            p.mul_(1.3)
    members[1]._fast = None
    from ranker.scorers import ZeroShotScorer

    zero = ZeroShotScorer()
    zero.dim = 32                              # the blend's zero-shot member, on 32-d steps here
    concat = ConcatScorer([*members, zero], [1.0, 0.5, 0.25])
    rng = np.random.default_rng(2)
    histories = [rng.standard_normal((n, 96)).astype(np.float32) for n in (1, 3, 8, 14)]
    got = concat.user_vectors(histories)
    assert concat._stacked and concat._stacked[1:] == (0, 2)      # the two trained members ran stacked
    want = np.concatenate([r * m._torch_user_vectors([h[:, 32 * k:32 * (k + 1)] for h in histories])
                           for k, (m, r) in enumerate(zip(members, concat.roots))]
                          + [concat.roots[2] * zero.user_vectors([h[:, 64:] for h in histories])], axis=1)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)
    for h, row in zip(histories, got):
        assert concat.user_vectors([h])[0].tobytes() == row.tobytes()
