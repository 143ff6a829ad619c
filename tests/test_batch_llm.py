"""explain-batch end to end: the real vLLM server (session fixture), the zero-shot ranker,
the real small catalog. A small batch in-process, a SIGKILL-and-rerun through the CLI in a
subprocess, and the Ray engine on a small local Ray cluster."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from server.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

USERS, ITEMS_PER_USER = 6, 3


@pytest.fixture(scope="module")
def batch_workdir(tmp_path_factory, small_db) -> Path:
    """A workdir holding a copy of the small catalog (no trained ranker: zero-shot)."""
    wd = tmp_path_factory.mktemp("batch-wd")
    shutil.copy(small_db, wd / "catalog.sqlite")
    return wd


@pytest.fixture(scope="module")
def pairs(batch_workdir) -> tuple[Path, list[str], list[dict]]:
    """USERS x ITEMS_PER_USER good rows (the user's last item + 2 catalog items) and 3 bad rows."""
    from store.catalog import Catalog

    cat = Catalog(batch_workdir / "catalog.sqlite")
    try:
        users = cat.user_ids()[:USERS]
        catalog_items = [i.id for i in cat.all_items()[:50]]
        rows = []
        for n, u in enumerate(users):
            hist = cat.history(u)
            picks = [hist[-1]] + [i for i in catalog_items[n * 2:] if i not in hist][:ITEMS_PER_USER - 1]
            rows += [{"user_id": u, "item_id": i} for i in picks]
    finally:
        cat.close()
    keys = [f"{r['user_id']}:{r['item_id']}" for r in rows]
    bad = [{"user_id": users[0]}, {"user_id": "ghost", "item_id": catalog_items[0]}, rows[0]]
    path = batch_workdir / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + bad))
    return path, keys, rows


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _cli(workdir: Path, inp: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["explain-batch", "--workdir", str(workdir), "--input", str(inp), "--output", str(out),
            "--vllm-url", url, "--no-progress", "--n-samples", "2", *extra]


def test_small_batch_real_llm_with_rejects(batch_workdir, pairs, vllm_server, capsys):
    from store.catalog import Catalog

    inp, keys, rows = pairs
    out = batch_workdir / "small.parquet"
    assert main(_cli(batch_workdir, inp, out, vllm_server.url, "--concurrency", "8")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["missing"] == 0 and summary["keys"] == len(keys) and summary["rejected_rows"] == 3

    recs = _records(batch_workdir / "small.jsonl")
    assert sorted(r["key"] for r in recs) == sorted(keys)          # every key exactly once
    cat = Catalog(batch_workdir / "catalog.sqlite")
    try:
        for r in recs:
            assert r["text"].strip()
            assert r["source"] in ("llm", "template") and r["template"]
            assert (r["model"] != "") == (r["source"] == "llm")
            assert set(r["evidence_ids"]) <= set(cat.history(r["user_id"]))
    finally:
        cat.close()
    assert any(r["source"] == "llm" for r in recs), "no explanation came from the LLM"

    import pyarrow.parquet as pq
    table = pq.read_table(out)
    assert table.column("key").to_pylist() == keys                    # Parquet in input order

    rejects = _records(batch_workdir / "small.rejects.jsonl")
    n = len(rows)
    assert [(r["line"], r["file"]) for r in rejects] == [(n + 1, str(inp)), (n + 2, str(inp)), (n + 3, str(inp))]
    assert "item_id" in rejects[0]["reason"] and "ghost" in rejects[1]["reason"]
    assert "duplicate" in rejects[2]["reason"]

    # a rerun finds nothing to do and changes nothing
    before = (batch_workdir / "small.jsonl").read_bytes()
    assert main(_cli(batch_workdir, inp, out, vllm_server.url)) == 0
    assert (batch_workdir / "small.jsonl").read_bytes() == before


def test_sigkill_and_rerun_gives_every_key_once(batch_workdir, pairs, vllm_server):
    inp, keys, _ = pairs
    out = batch_workdir / "killed.jsonl"
    cmd = [sys.executable, "-m", "server.cli",
           *_cli(batch_workdir, inp, out, vllm_server.url, "--concurrency", "4", "--chunk-size", "1",
                 "--max-group", "1")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 240:
            if out.exists() and out.read_bytes().count(b"\n") >= 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("the job wrote nothing in 240 s")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    done_before = out.read_bytes().count(b"\n")
    assert done_before < len(keys), "the job finished before it was killed: nothing to resume"
    with open(out, "ab") as f:                 # make the torn tail certain, whatever the timing
        f.write(b'{"key": "half a line')

    rerun = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    recs = _records(out)
    counts = Counter(r["key"] for r in recs)
    assert set(counts) == set(keys) and max(counts.values()) == 1
    summary = json.loads(rerun.stdout.decode().strip().splitlines()[-1])
    assert summary["done"] == len(keys)


def test_ray_engine_on_local_ray_resumes_the_same_output(batch_workdir, pairs, vllm_server):
    """Ray Data actors do the work, the driver writes; keys already in the output are skipped."""
    inp, keys, _ = pairs
    out = batch_workdir / "ray.jsonl"
    seeded = _records(batch_workdir / "small.jsonl")[:5] if (batch_workdir / "small.jsonl").exists() else []
    out.write_text("".join(json.dumps(r) + "\n" for r in seeded))
    assert main(_cli(batch_workdir, inp, out, vllm_server.url, "--engine", "ray", "--ray-workers", "1",
                     "--concurrency", "8")) == 0
    recs = _records(out)
    counts = Counter(r["key"] for r in recs)
    assert set(counts) == set(keys) and max(counts.values()) == 1
    assert recs[:len(seeded)] == seeded                               # untouched, not redone
    fresh = recs[len(seeded):]
    assert any(r["source"] == "llm" for r in fresh), \
        f"no LLM text from the Ray actors; fallback reasons: {Counter(r.get('fallback_reason') for r in fresh)}"


def test_users_topk_mode_without_llm(batch_workdir, pairs, capsys):
    """Top-k mode: the ranker picks K items per user; keys user#rank; no LLM (templates)."""
    from store.catalog import Catalog

    _, _, rows = pairs
    users = list(dict.fromkeys(r["user_id"] for r in rows))[:3]
    inp = batch_workdir / "users.txt"
    inp.write_text("\n".join(users + ["ghost"]) + "\n")
    out = batch_workdir / "topk.jsonl"
    assert main(["explain-batch", "--workdir", str(batch_workdir), "--input", str(inp), "--output", str(out),
                 "--users-topk", "4", "--no-llm", "--no-progress"]) == 0
    recs = _records(out)
    assert sorted(r["key"] for r in recs) == sorted(f"{u}#{k}" for u in users for k in range(1, 5))
    cat = Catalog(batch_workdir / "catalog.sqlite")
    try:
        for r in recs:
            assert r["source"] == "template" and r["fallback_reason"] == "disabled"
            assert r["item_id"] not in cat.history(r["user_id"])        # recommendations, not history
            assert r["rank"] == int(r["key"].rsplit("#", 1)[1])
    finally:
        cat.close()
    assert [x["line"] for x in _records(batch_workdir / "topk.rejects.jsonl")] == [4]
