"""The sequential peer (ranker.peers, SASRec) that eval-ranker trains beside the model: it learns
order, it reports in the model's shape, and a bad --peers value is refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from ranker.data import SplitData
from ranker.evaluate import evaluate_ranks, popularity_ranks
from ranker.peers import parse_peers
from ranker.report import evaluate_all
from ranker.scorers import ZeroShotScorer
from server.cli import main

N_ITEMS = 30
# Small and quick for a test; the rest of SASRec is RecBole's defaults.
TINY = dict(hidden_size=32, n_heads=2, inner_size=64, hidden_dropout=0.1, attn_dropout=0.1, train_batch_size=128,
            lr=5e-3, epochs=6, stopping_step=2, device="cpu", threads=1)


def cycle_catalog(users: int = 160, seed: int = 0) -> SplitData:
    """Everyone walks the item cycle 0 -> 1 -> ... -> N-1 -> 0 from a random start. Every item is
    equally popular and co-occurs with both neighbours: only the order says which comes next."""
    rng = np.random.default_rng(seed)
    data = SplitData(item_ids=[f"i{r}" for r in range(N_ITEMS)],
                     text_emb=rng.normal(size=(N_ITEMS, 384)).astype(np.float32))
    valid_t, test_t = [], []
    for _ in range(users):
        walk = (rng.integers(N_ITEMS) + np.arange(rng.integers(5, 9))) % N_ITEMS
        train = walk[:-2].astype(np.int64)
        data.train_seqs.append(train)
        data.train_seqs_all.append(train)
        data.train_items.update(train.tolist())
        data.valid_hist.append(train)
        valid_t.append(walk[-2])
        data.test_hist.append(walk[:-1].astype(np.int64))
        test_t.append(walk[-1])
    data.valid_target = np.array(valid_t, dtype=np.int64)
    data.test_target = np.array(test_t, dtype=np.int64)
    return data


@pytest.fixture(scope="module")
def cycle_run():
    from ranker.peers.run import run_peer   # torch: imported by the slow tests only, not at collection

    data = cycle_catalog()
    return data, run_peer("sasrec", data, time_budget_s=60, **TINY)


@pytest.mark.slow      # trains SASRec with torch (the fast tier never imports torch)
@pytest.mark.slow      # a few seconds of training (2-5 s on the shared 2-core box)
def test_sasrec_learns_what_only_order_reveals(cycle_run):
    data, run = cycle_run
    sasrec = evaluate_ranks(run.ranks[False]).score
    popularity = evaluate_ranks(popularity_ranks(data, "test")).score
    assert popularity < 0.3                     # uniform popularity: about chance (1/30 at rank 0)
    assert sasrec > 0.8 and sasrec > popularity + 0.5
    s = run.summary
    assert 1 <= s.best_epoch <= s.epochs and s.stop_reason in ("early_stopping", "max_epochs")
    assert s.valid_ndcg10 == max(h["valid_ndcg@10"] for h in s.history)


@pytest.mark.slow
@pytest.mark.slow
def test_report_json_has_the_peer_beside_the_model_in_every_view(cycle_run):
    data, run = cycle_run
    report = evaluate_all(data, ZeroShotScorer(), peers=[run]).protocol_json()
    assert list(report) == ["model", "popularity", "zero_shot", "sasrec", "cold_target", "no_history", "peers"]
    for view in (report, report["cold_target"], report["no_history"]):
        assert set(view["sasrec"]) == set(view["model"]) == {"recall@10", "ndcg@10", "recall@50", "ndcg@50"}
    # history removed: the cycle's next item is never in the history, so the peer cannot lose by it
    assert report["no_history"]["sasrec"]["ndcg@10"] >= report["sasrec"]["ndcg@10"]
    training = report["peers"]["sasrec"]
    assert training["train_s"] > 0 and training["epochs"] == len(training["history"])
    assert training["stop_reason"] == run.summary.stop_reason and training["config"]["max_seq_length"] == 50


def test_unknown_peer_is_refused_naming_the_flag(tmp_path, capsys):
    assert main(["eval-ranker", "--workdir", str(tmp_path), "--peers", "sasrec,bert4rec"]) == 2
    err = capsys.readouterr().err
    assert "--peers" in err and "'bert4rec'" in err and "sasrec" in err
    assert main(["eval-ranker", "--workdir", str(tmp_path), "--peers", "sasrec", "--peer-time-budget-s", "0"]) == 2
    assert "--peer-time-budget-s" in capsys.readouterr().err
    assert parse_peers(" SASRec, sasrec ") == ("sasrec",)
    with pytest.raises(ValueError, match="--peers needs at least one"):
        parse_peers(" , ")


@pytest.mark.slow      # torch (its import alone takes seconds here; the fast tier never loads it)
def test_grouping_by_length_gives_the_outputs_of_full_padding():
    import torch

    from ranker.peers.config import SASRecConfig
    from ranker.peers.examples import pad_histories
    from ranker.peers.sasrec import SASRec

    torch.manual_seed(0)
    model = SASRec(N_ITEMS, SASRecConfig(hidden_size=16, inner_size=32, max_seq_length=16)).eval()
    rng = np.random.default_rng(1)
    histories = [rng.integers(N_ITEMS, size=n) for n in (1, 2, 3, 5, 8, 12, 12, 4)]
    seqs, lengths = pad_histories(histories, 16)
    seqs_t, lengths_t = torch.as_tensor(seqs), torch.as_tensor(lengths)
    padded = torch.cat([seqs_t, torch.zeros(len(seqs), 4, dtype=torch.long)], dim=1)   # every row padded to 16
    with torch.no_grad():
        assert torch.allclose(model.users(seqs_t, lengths_t), model(padded, lengths_t), atol=1e-5)
        one = model(torch.as_tensor(histories[4] + 1)[None], torch.tensor([8]))        # a row alone, unpadded
        assert torch.allclose(model.users(seqs_t, lengths_t)[4], one[0], atol=1e-5)
