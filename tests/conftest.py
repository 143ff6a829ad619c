"""Session-wide fixtures. Each area keeps its own fixtures in tests/fixtures_<area>.py."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Any Ray started by the tests stays on loopback (see explainer/batch/ray_engine.py).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

pytest_plugins = [p for p in ("tests.fixtures_ranker", "tests.fixtures_llm", "tests.fixtures_server",
                              "tests.fixtures_desk", "tests.fixtures_store")
                  if (Path(__file__).parent / f"{p.split('.')[-1]}.py").exists()]

from server.setup import set_search_threads  # noqa: E402
from store.catalog import Catalog  # noqa: E402
from store.ingest import ingest_unisrec  # noqa: E402
from store.paths import default_data_dir  # noqa: E402

SMALL_USERS = 400

# FAISS searches with one OpenMP thread in each thread that ranks, as `serve` does
# (server.setup.set_search_threads; the setting is per thread, so test thread pools call it too):
# on 2 shared cores OpenMP's fan-out made the tests' searches several times slower.
set_search_threads(1)


@pytest.fixture(scope="session")
def scientific_dir() -> Path:
    """The real Amazon Scientific data beside the project (../shared/data/amazon-scientific)."""
    path = default_data_dir()
    assert (path / "Scientific.text").exists(), f"the Scientific data is missing at {path}"
    return path


@pytest.fixture(scope="session")
def small_db(tmp_path_factory, scientific_dir) -> Path:
    """A real SQLite catalog: all 4,385 Scientific items, the first 400 users' events."""
    path = tmp_path_factory.mktemp("db") / "catalog.sqlite"
    cat = Catalog(path)
    ingest_unisrec(cat, scientific_dir, max_users=SMALL_USERS)
    cat.close()
    return path


@pytest.fixture()
def catalog(tmp_path, small_db) -> Catalog:
    """A private, writable copy of the small catalog for one test."""
    import shutil
    path = tmp_path / "catalog.sqlite"
    shutil.copy(small_db, path)
    cat = Catalog(path)
    yield cat
    cat.close()


# -- the fast tier stays fast --------------------------------------------------------------------
# `-m "not slow"` runs on the fake encoder in seconds; importing torch, sentence-transformers or vLLM
# alone costs seconds here. A test that loads one is slow: the summary names any that is not marked.
_HEAVY_MODULES = ("torch", "sentence_transformers", "vllm")
_heavy_in_fast: list[str] = []


def _heavy_loaded() -> set[str]:
    return {m for m in _HEAVY_MODULES if m in sys.modules}


_WHOLE_MODULE_SLOW = re.compile(r"^pytestmark = pytest\.mark\.slow\b", re.M)


def _fast_tier(config) -> bool:
    return " ".join(str(config.option.markexpr or "").split()) == "not slow"


def pytest_ignore_collect(collection_path, config):
    """`-m "not slow"` does not import a test module marked slow as a whole (`pytestmark =
    pytest.mark.slow` at its top): importing one that needs torch costs seconds before any test runs."""
    if not _fast_tier(config):
        return None
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") \
            and _WHOLE_MODULE_SLOW.search(collection_path.read_text()):
        return True
    return None


def pytest_collection_finish(session):
    if _fast_tier(session.config) and _heavy_loaded():
        _heavy_in_fast.append(f"collecting the tests ({', '.join(sorted(_heavy_loaded()))}): "
                              "import it inside the slow tests")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _heavy_loaded()
    yield
    new = _heavy_loaded() - before
    if new and item.get_closest_marker("slow") is None:
        _heavy_in_fast.append(f"{item.nodeid} ({', '.join(sorted(new))}): mark it slow or use fake_encoder")


def pytest_terminal_summary(terminalreporter):
    for line in _heavy_in_fast:
        terminalreporter.write_line(f"fast tier imported a heavy module: {line}", yellow=True)
