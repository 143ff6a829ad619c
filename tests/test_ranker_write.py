"""The model-directory writer (ranker.train.write_model_dir), on a tiny fitted state: no MiniLM, no catalog.

Atomic: the directory appears complete or not at all; a `.tmp` left by a crashed run is never written into."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ranker.data import SplitData
from ranker.train import TrainConfig, fit_members, write_model_dir

pytestmark = pytest.mark.slow      # fits two tiny towers: torch (its import alone takes seconds here)

pytestmark = pytest.mark.slow      # fits a (tiny) torch model: importing torch alone takes seconds here


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 30
    text = rng.normal(size=(n, 384)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    seqs = [rng.integers(0, n, size=6) for _ in range(40)]
    data = SplitData(item_ids=[f"I{i}" for i in range(n)], text_emb=text, train_seqs=seqs, train_seqs_all=seqs,
                     valid_hist=seqs[:10], valid_target=rng.integers(0, n, size=10))
    cfg = TrainConfig(epochs=1, dim=16, ensemble=2, blend_weights="0", device="cpu", threads=1)
    return data, cfg, fit_members(data, cfg, progress=False)


def test_writer_writes_every_member_and_loads(fitted, tmp_path):
    from ranker.scorers import load_scorer

    data, cfg, state = fitted
    out = write_model_dir(state, data, tmp_path / "ranker", cfg)
    assert {"model.pt", "model_1.pt", "config.json", "item_vectors.npy", "index.faiss"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["ensemble"] == 2 and config["valid"] == state.valid
    assert not out.with_name("ranker.tmp").exists()
    vecs = load_scorer(out, "cpu").item_vectors(data.item_ids, data.text_emb)
    np.testing.assert_allclose(vecs, state.item_vecs, atol=1e-5)


def test_writer_never_writes_into_a_stale_tmp(fitted, tmp_path):
    data, cfg, state = fitted
    stale = tmp_path / "ranker.tmp"
    stale.mkdir()
    (stale / "model_2.pt").write_bytes(b"left by a crashed run")    # would load as a third member
    out = write_model_dir(state, data, tmp_path / "ranker", cfg)
    assert not (out / "model_2.pt").exists() and not stale.exists()


def test_a_failed_write_leaves_the_old_model_whole(fitted, tmp_path, monkeypatch):
    from ranker import index

    data, cfg, state = fitted
    out = write_model_dir(state, data, tmp_path / "ranker", cfg)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(index.VectorIndex, "build", crash)
    with pytest.raises(OSError, match="disk full"):
        write_model_dir(state, data, out, cfg)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_immutable_version_is_refused(fitted, tmp_path):
    data, cfg, state = fitted
    out = write_model_dir(state, data, tmp_path / "v1", cfg, replace=False)
    with pytest.raises(FileExistsError, match="immutable"):
        write_model_dir(state, data, out, cfg, replace=False)
