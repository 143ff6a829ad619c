"""The loop on the ranker side: live events + feedback in the data, the evidence gate, retrain into
immutable versions, the atomic `current` pointer and `explainrec models`."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from server.cli import main
from store.catalog import Catalog, Event, Feedback, Item
from store.paths import db_path, model_dir


def _live_catalog(catalog: Catalog) -> dict:
    """Adds a new item, live events (one user buys it), a click and a dismissal."""
    user, other = catalog.user_ids()[:2]
    items = [i.id for i in catalog.all_items()[:50]]
    catalog.upsert_items([Item(id="LIVE-NEW", title="Handheld digital refractometer for brix", brand="Optix")])
    catalog.add_events([Event(user, items[3], "purchase", 3e9), Event(user, "LIVE-NEW", "purchase", 3e9 + 1),
                        Event(other, items[4], "view", 3e9)])
    catalog.add_feedback(Feedback(user, items[7], "click"))
    catalog.add_feedback(Feedback(user, items[8], "dismiss"))
    return {"user": user, "other": other, "items": items}


def test_live_data_feeds_training_and_holds_out_the_latest_live_event(catalog, fake_encoder):
    from ranker.data import load_split_data

    seen = _live_catalog(catalog)
    base = load_split_data(catalog, fake_encoder)
    data = load_split_data(catalog, fake_encoder, live=True)
    row = {i: r for r, i in enumerate(data.item_ids)}
    assert data.counts == {"live_events": 4, "positive_feedback": 1, "dismissals": 1, "live_held_out": 2}
    # the newest live event of each user is the live target, not a training step
    # (the click is appended after the user's live events, so it is that user's newest)
    assert sorted(data.live_target.tolist()) == sorted([row[seen["items"][7]], row[seen["items"][4]]])
    trained = set(np.concatenate(data.train_seqs_all).tolist())
    assert {row[seen["items"][3]], row["LIVE-NEW"]} <= trained          # older live events train
    assert row["LIVE-NEW"] not in base.train_items
    assert len(data.dismissed) == 1 and row[seen["items"][8]] in next(iter(data.dismissed.values())).tolist()
    assert data.new_seqs and set(data.dismissed) <= data.new_seqs
    # valid / test targets stay what the ingest split says, and never train
    assert len(data.valid_target) == len(base.valid_target) and len(data.test_target) == len(base.test_target)
    assert np.array_equal(np.sort(data.test_target), np.sort(base.test_target))
    for hist, target in zip(data.test_hist, data.test_target):
        assert len(hist) >= 1


@pytest.mark.slow      # importing torch alone takes seconds here; the fast tier never loads it
def test_residual_rows_gate_and_drop():
    import torch

    from ranker.train import residual_rows

    rows = torch.arange(1000)
    evidence = rows % 2 == 0
    out = residual_rows(rows, evidence, 0.0)
    assert (out[~evidence] == -1).all() and (out[evidence] == rows[evidence]).all()
    dropped = residual_rows(rows, evidence, 0.5, torch.Generator().manual_seed(0))
    assert (dropped[~evidence] == -1).all()
    kept = float((dropped[evidence] >= 0).float().mean())
    assert 0.35 < kept < 0.65                                    # about half of the warm rows dropped


@pytest.mark.slow
def test_retrain_writes_immutable_versions_and_promotes_atomically(small_db, tmp_path, fake_encoder):
    from ranker.versions import current_version_dir, list_versions, pointer_path

    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(small_db, db_path(workdir))
    # a base model without the repeat bias, like those written before it existed: retrain keeps its shape
    assert main(["train", "--workdir", str(workdir), "--quiet", "--epochs", "1", "--dim", "32", "--max-users", "200",
                 "--ensemble", "1", "--blend-weights", "0", "--device", "cpu", "--no-repeat-bias"]) == 0
    base = model_dir(workdir)
    # the evidence gate: an item with no train event keeps a zero residual
    import torch
    state = torch.load(base / "model.pt", weights_only=True)
    catalog = Catalog(db_path(workdir))
    try:
        from ranker.data import load_split_data
        data = load_split_data(catalog, fake_encoder)     # which items are cold needs no real vectors
        cold = [r for r in range(data.n_items) if r not in data.train_items]
        assert cold and float(state["item.residual.weight"][cold].abs().max()) == 0.0
        seen = _live_catalog(catalog)
        first_events = data.item_ids[cold[0]]         # a catalog item whose first event arrives live
        catalog.add_events([Event(seen["other"], first_events, "purchase", 3e9 - 1)])
    finally:
        catalog.close()
    assert current_version_dir(workdir) == base

    assert main(["retrain", "--workdir", str(workdir), "--quiet", "--time-budget-s", "20", "--device", "cpu",
                 "--force"]) == 0
    v1 = current_version_dir(workdir)
    assert v1.parent.name == "models" and v1.name.startswith("v001-") and os.readlink(pointer_path(workdir)) == v1.name
    metrics = json.loads((v1 / "metrics.json").read_text())
    assert metrics["promoted"] and metrics["parent"] == "ranker"
    assert metrics["data"]["live_events"] == 5 and metrics["data"]["dismissals"] == 1
    # it stays on its text path until the next full training (no residual learned from one event)
    v1_ids = json.loads((v1 / "item_ids.json").read_text())
    v1_state = torch.load(v1 / "model.pt", weights_only=True)
    assert float(v1_state["item.residual.weight"][v1_ids.index(first_events)].abs().max()) == 0.0
    assert float(v1_state["item.residual.weight"][:-1].abs().sum(dim=1).gt(0).sum()) > 0   # warm rows kept theirs
    assert {"valid", "live", "score"} <= set(metrics["new"]) and {"valid", "live", "score"} <= set(metrics["current"])
    assert all(not os.access(p, os.W_OK) or os.geteuid() == 0 for p in v1.iterdir())
    assert all(p.stat().st_mode & 0o222 == 0 for p in v1.iterdir())          # sealed: read-only files
    config = json.loads((v1 / "config.json").read_text())
    assert "LIVE-NEW" in json.loads((v1 / "item_ids.json").read_text()) and config["parent"] == "ranker"
    assert config["model"]["repeat_bias"] is False
    # the evidence bias was tried on valid; whatever it picked went only to items without a residual
    from ranker.item_bias import load_bias
    from ranker.scorers import load_scorer

    assert {"alpha", "offset", "items"} <= set(config["evidence_bias"])
    bias = load_bias(v1)
    assert len(bias) == config["evidence_bias"]["items"]
    assert all(float(v1_state["item.residual.weight"][v1_ids.index(i)].abs().max()) == 0.0 for i in bias)
    assert load_scorer(v1, "cpu").dim == 32 + (1 if bias else 0)

    # a second round starts from v1; without --force it is promoted only if not worse
    assert main(["retrain", "--workdir", str(workdir), "--quiet", "--time-budget-s", "20", "--device", "cpu"]) == 0
    rows = list_versions(workdir)
    assert [r["version"][:4] for r in rows] == ["rank", "v001", "v002"]
    v2 = rows[2]
    assert v2["parent"] == v1.name
    serving = [r["version"] for r in rows if r["serving"]]
    assert serving == ([v2["version"]] if v2["promoted"] else [v1.name])
    assert (v2["metrics"]["score"] >= v2["parent_metrics"]["score"]) == v2["promoted"]
    assert main(["models", "--workdir", str(workdir)]) == 0

