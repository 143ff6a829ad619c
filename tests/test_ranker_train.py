"""A tiny real training run on the small_db slice, through the CLI: train -> model dir -> load -> serve -> eval."""
from __future__ import annotations

import json
import shutil

import pytest

from ranker.types import RankQuery
from server.cli import main
from store.catalog import Catalog, Item
from store.paths import db_path, model_dir


@pytest.mark.slow
def test_train_then_load_serve_and_eval(small_db, tmp_path, minilm_encoder):
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(small_db, db_path(workdir))
    args = ["train", "--workdir", str(workdir), "--quiet", "--epochs", "2", "--dim", "32", "--max-users", "200",
            "--blend-weights", "0,0.5", "--ensemble", "2", "--device", "cpu"]
    stale = model_dir(workdir).with_name(model_dir(workdir).name + ".tmp")
    stale.mkdir(parents=True)
    (stale / "model_2.pt").write_bytes(b"left by a crashed run")     # would read as a third member
    assert main(args) == 0
    out = model_dir(workdir)
    assert not (out / "model_2.pt").exists() and not stale.exists()
    config = json.loads((out / "config.json").read_text())
    assert {"model.pt", "model_1.pt", "item_ids.json", "item_vectors.npy", "index.faiss", "text_emb.npy"} <= {p.name for p in out.iterdir()}
    assert config["best_epoch"] in (1, 2) and len(config["history"]) == 2
    assert config["blend_weight"] in (0.0, 0.5) and config["valid"]["ndcg@10"] > 0
    assert main(args) == 0            # second run: skipped, model kept
    assert json.loads((out / "config.json").read_text())["timings_s"] == config["timings_s"]

    from ranker.service import Ranker
    catalog = Catalog(db_path(workdir))
    try:
        ranker = Ranker.load(out, catalog, device="cpu", encoder=minilm_encoder)
        user = catalog.user_ids()[0]
        recs = ranker.recommend(RankQuery(user_id=user, k=10))
        assert len(recs) == 10 and all(c.evidence for c in recs)
        # cold start on a trained model: text encoder + projection, zero residual
        ranker.add_items([Item(id="NEW-1", title="Flux capacitor calibration kit for time machines")])
        [c] = ranker.score_items(RankQuery(text="flux capacitor time machine calibration"), ["NEW-1"])
        assert c.query_match is not None and c.query_match > 0.3
    finally:
        catalog.close()

    report = tmp_path / "eval.json"
    assert main(["eval-ranker", "--workdir", str(workdir), "--json", str(report), "--device", "cpu"]) == 0
    data = json.loads(report.read_text())
    assert list(data) == ["model", "popularity", "zero_shot", "cold_target", "no_history"]
    views = [{m: data[m] for m in ("model", "popularity", "zero_shot")}, data["cold_target"], data["no_history"]]
    for view in views:
        assert list(view) == ["model", "popularity", "zero_shot"]
        for metrics in view.values():
            assert set(metrics) == {"recall@10", "ndcg@10", "recall@50", "ndcg@50"}
            assert 0 <= metrics["ndcg@10"] <= metrics["recall@10"] <= 1

    # the sequential peer, trained on the same split in the same run (one epoch: the budget is spent by then)
    assert main(["eval-ranker", "--workdir", str(workdir), "--json", str(report), "--device", "cpu", "--quiet",
                 "--peers", "sasrec", "--peer-time-budget-s", "0.01"]) == 0
    data = json.loads(report.read_text())
    assert list(data) == ["model", "popularity", "zero_shot", "sasrec", "cold_target", "no_history", "peers"]
    assert list(data["no_history"]) == ["model", "popularity", "zero_shot", "sasrec"]
    assert 0 <= data["sasrec"]["ndcg@10"] <= data["sasrec"]["recall@10"] <= 1
    assert data["peers"]["sasrec"]["epochs"] == 1 and data["peers"]["sasrec"]["stop_reason"] == "time_budget"


@pytest.mark.slow
def test_a_set_stop_ends_training_at_its_next_batch_and_writes_nothing(small_db, tmp_path, fake_encoder):
    """`explainrec serve` trains on its first start; SIGTERM sets its stop event (server.run), and the
    fit ends at the next batch instead of running to its time budget (minutes), with no model dir."""
    import threading
    import time

    from ranker.train import TrainConfig, TrainingStopped, train
    shutil.copy(small_db, db_path(tmp_path))
    catalog = Catalog(db_path(tmp_path))
    stop = threading.Event()
    cfg = TrainConfig(epochs=50, dim=32, max_users=200, ensemble=1, blend_weights="1", device="cpu", patience=50)
    threading.Timer(1.0, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(TrainingStopped):
        train(catalog, model_dir(tmp_path), cfg, encoder=fake_encoder, progress=False, stop=stop)
    assert time.monotonic() - t0 < 30
    assert not model_dir(tmp_path).exists()
    catalog.close()
