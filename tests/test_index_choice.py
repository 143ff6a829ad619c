"""The index the catalog's size gets, and that the large-catalog kind (IVF-PQ with an exact re-rank)
answers like exact search, removes, adds and survives a save and load."""
from __future__ import annotations

import numpy as np
import pytest

from ranker.index import IndexConfig, VectorIndex


def test_auto_choice_by_catalog_size():
    cfg = IndexConfig()
    assert cfg.kind_for(4_385) == "flat"
    assert cfg.kind_for(cfg.exact_max_items + 1) == "ivf"
    assert cfg.kind_for(cfg.ivf_flat_max_items) == "ivf"
    assert cfg.kind_for(1_000_000) == "ivfpq"
    with pytest.raises(ValueError, match="rerank_factor"):
        IndexConfig(rerank_factor=0)
    with pytest.raises(ValueError, match="pq_bits"):
        IndexConfig(pq_bits=6)


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize("bits, dims_per_code", [(4, 2), (8, 8)])     # SIMD fast scan, classic IVF-PQ
def test_ivfpq_with_rerank_matches_exact_removes_adds_and_reloads(tmp_path, bits, dims_per_code):
    n, dim, k = 12_000, 64, 20
    vecs = _clustered(n, dim)
    ids = np.arange(n, dtype=np.int64)
    cfg = IndexConfig(exact_max_items=1000, ivf_flat_max_items=5000, pq_bits=bits, pq_dims_per_code=dims_per_code)
    index = VectorIndex.build(vecs, ids, cfg)
    assert index.kind == "ivfpq"
    index.attach_vectors(lambda rows: vecs[rows])
    queries = _clustered(50, dim, seed=1)
    truth = np.argsort(-(queries @ vecs.T), axis=1)[:, :k]
    _, got = index.search(queries, k)
    recall = np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth)])
    assert recall >= 0.95, recall
    # the scores are exact (re-ranked against the full vectors), not PQ approximations
    s, r = index.search(queries[:1], k)
    assert np.allclose(s[0], vecs[r[0]] @ queries[0], atol=1e-5)

    gone = got[0][:5]
    index.remove(gone)
    _, after = index.search(queries[:1], k)
    assert not set(gone) & set(after[0])
    extra = np.vstack([vecs, queries[:1]])          # a new item equal to the query ranks first
    index.attach_vectors(lambda rows: extra[rows])
    index.add(queries[:1], np.array([n], dtype=np.int64))
    assert index.search(queries[:1], 1)[1][0, 0] == n

    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss")
    loaded.attach_vectors(lambda rows: extra[rows])
    assert loaded.kind == "ivfpq" and loaded.rerank_factor == cfg.rerank_factor
    assert np.array_equal(loaded.search(queries, k)[1], index.search(queries, k)[1])


@pytest.mark.slow
def test_ranker_serves_from_ivfpq_with_exact_scores(catalog, fake_encoder):
    """The whole path on the real catalog with the large-catalog index forced (384-d MiniLM vectors)."""
    from ranker.service import Ranker, RankerConfig
    from ranker.types import RankQuery

    cfg = RankerConfig(index=IndexConfig(exact_max_items=0, ivf_flat_max_items=0, nprobe=16,
                                         pq_dims_per_code=32))   # 12 codes: quick to train
    ranker = Ranker.zero_shot(catalog, device="cpu", encoder=fake_encoder, config=cfg)
    assert ranker.index.kind == "ivfpq"
    user = next(u for u in catalog.user_ids() if len(catalog.history(u)) >= 3)
    cands = ranker.recommend(RankQuery(user_id=user, k=10))
    assert len(cands) == 10
    vec, *_ = ranker._user(RankQuery(user_id=user, k=10))
    for c in cands:       # exact inner products, best first
        assert abs(c.score - float(ranker._vecs[ranker._row[c.item_id]] @ vec)) < 1e-4
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    ranker.remove_items([cands[0].item_id])
    assert cands[0].item_id not in [c.item_id for c in ranker.recommend(RankQuery(user_id=user, k=10))]
