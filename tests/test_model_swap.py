"""The loop on the serving side, on a real server (port 0) with a real trained ranker: an upserted
item is recommended at once, a promoted version swaps in under concurrent calls with none failing,
and a corrupt version is refused while the old one keeps serving."""
from __future__ import annotations

import logging
import shutil
import threading
import time

import pytest

from protos.explainrec.v1 import explainrec_pb2 as pb
from ranker.versions import promote, versions_root
from store.paths import db_path, model_dir
from tests.fixtures_server import ServerHarness, server_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def swap_workdir(tiny_ranker_workdir, tmp_path_factory):
    """A tiny trained ranker ("ranker"), a copy of it as version v001-copy, and a corrupt v002."""
    workdir = tmp_path_factory.mktemp("swap") / "w"
    shutil.copytree(tiny_ranker_workdir, workdir)
    root = versions_root(workdir)
    root.mkdir()
    shutil.copytree(model_dir(workdir), root / "v001-copy")
    shutil.copytree(model_dir(workdir), root / "v002-corrupt")
    (root / "v002-corrupt" / "model.pt").write_bytes(b"not a torch file")
    return workdir


@pytest.fixture(scope="module")
def swap_server(swap_workdir):
    from server.setup import build_service

    cfg = server_config(workdir=str(swap_workdir), model_watch_s=0.2, train_if_missing=False)
    harness = ServerHarness(cfg, lambda lifecycle: build_service(cfg, lifecycle))
    yield harness
    harness.close()


def _fitting_user(catalog_path) -> tuple[str, object]:
    from store.catalog import Catalog
    cat = Catalog(catalog_path)
    try:
        for uid in cat.user_ids():
            hist = cat.history(uid)
            if len(hist) >= 4:
                return uid, cat.get_item(hist[-1])
    finally:
        cat.close()
    raise AssertionError("no user with 4 events")


def test_upserted_item_is_recommended_at_once_to_a_shopper_it_fits(swap_server, swap_workdir):
    user, last = _fitting_user(db_path(swap_workdir))
    with swap_server.client() as client:
        before = client.recommend(user_id=user, k=10)
        assert before.model_version == "ranker" and len(before.items) == 10
        new = pb.Item(id="COLD-NEW-1", title=f"{last.title} (2026 edition)", category=last.category, brand=last.brand)
        assert client.upsert_items([new]) == 1
        after = client.recommend(user_id=user, k=10)
        assert "COLD-NEW-1" in [it.item.id for it in after.items], "a new item that fits ranks in the top 10 at once"
        assert client.explain(user_id=user, item_ids=["COLD-NEW-1"]).model_version == "ranker"
        # a cold user: one event, or only a text query
        client.record_events([("cold-user-1", last.id)])
        one = client.recommend(user_id="cold-user-1", k=5)
        assert len(one.items) == 5 and last.id not in [it.item.id for it in one.items]
        assert len(client.recommend(query=last.title, k=5).items) == 5


def test_promoted_version_swaps_in_under_concurrent_calls_with_none_failing(swap_server, swap_workdir):
    from store.catalog import Catalog
    cat = Catalog(db_path(swap_workdir))
    users = [u for u in cat.user_ids() if len(cat.history(u)) >= 2][:40]
    cat.close()
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(16)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        with swap_server.client() as client:
            k = 0
            while not stop.is_set():
                try:
                    seen[n].append(client.recommend(user_id=users[(n + k) % len(users)], k=10).model_version)
                except BaseException as exc:  # noqa: BLE001 - every failure is a test failure
                    errors.append(exc)
                k += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    promote(swap_workdir, versions_root(swap_workdir) / "v001-copy")
    deadline = time.time() + 120
    while time.time() < deadline and not any("v001-copy" in s for s in seen):
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    versions = [v for s in seen for v in s]
    assert set(versions) == {"ranker", "v001-copy"} and versions.count("v001-copy") > 16
    for s in seen:   # per client, once the new version answered, the old one never does again
        if "v001-copy" in s:
            assert "ranker" not in s[s.index("v001-copy"):]
    with swap_server.client() as client:       # the item upserted before the swap is still there
        assert client.get_items(["COLD-NEW-1"])
        user, _ = _fitting_user(db_path(swap_workdir))
        assert "COLD-NEW-1" in [it.item.id for it in client.recommend(user_id=user, k=10).items]


def test_corrupt_version_is_refused_and_the_old_one_keeps_serving(swap_server, swap_workdir, caplog):
    from server import metrics

    service = swap_server.lifecycle.service
    watcher = service.model_watcher
    serving = service.ranker.version
    refused_before = metrics.MODEL_SWAPS.labels("refused")._value.get()
    with caplog.at_level(logging.ERROR, logger="explainrec.model_swap"):
        promote(swap_workdir, versions_root(swap_workdir) / "v002-corrupt")
        deadline = time.time() + 60
        while time.time() < deadline and watcher.refused != "v002-corrupt":
            time.sleep(0.2)
    assert watcher.refused == "v002-corrupt"
    assert service.ranker.version == serving
    assert metrics.MODEL_SWAPS.labels("refused")._value.get() == refused_before + 1
    assert any("v002-corrupt refused" in r.getMessage() for r in caplog.records)
    with swap_server.client() as client:
        reply = client.recommend(query="digital thermometer", k=3)
        assert len(reply.items) == 3 and reply.model_version == serving
    assert watcher.check() is False          # not retried until the pointer moves


def test_helpful_ratings_reach_the_explainers_link_preferences(swap_server, swap_workdir):
    prefs = swap_server.lifecycle.service.explainer.link_preferences
    user, _ = _fitting_user(db_path(swap_workdir))
    with swap_server.client() as client:
        reply = client.explain(user_id=user, item_ids=[it.item.id for it in client.recommend(user_id=user, k=5).items])
        linked = [e for e in reply.explanations if len(e.justification.facts) > 1]
        assert linked, "some top-5 justification states a link"
        before = {k: v["helpful"] + v["not_helpful"] for k, v in prefs.summary().items()}
        client.submit_feedback(user, linked[0].item.id, kind="rating", helpful=False)
        client.submit_feedback(user, linked[0].item.id, kind="click")          # no rating: no change
    after = {k: v["helpful"] + v["not_helpful"] for k, v in prefs.summary().items()}
    changed = {k for k in after if after[k] != before.get(k, 0)}
    assert changed and all(after[k] == before.get(k, 0) + 1 for k in changed)
    assert all(prefs.mean(k) < 0.5 for k in changed)
