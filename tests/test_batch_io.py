"""Batch job plumbing on real files and the real small catalog: input formats, rejects, the
journal's recovery after a torn write, the single-writer lock, the in-flight bound."""
from __future__ import annotations

import asyncio
import csv
import json

import pytest

from explainer.batch.inputs import Row, plan, write_rejects
from explainer.batch.journal import Journal, OutputLocked, read_records, write_parquet
from explainer.batch.runner import run_groups


@pytest.fixture()
def ids(catalog):
    users = catalog.user_ids()[:3]
    items = [i.id for i in catalog.all_items()[:4]]
    return users, items


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_plan_rejects_bad_rows_and_groups_by_user(tmp_path, catalog, ids):
    (u1, u2, _), (i1, i2, i3, _) = ids
    src = _jsonl(tmp_path / "pairs.jsonl", [
        {"user_id": u1, "item_id": i1},
        {"user_id": u2, "item_id": i1, "key": "k-7"},
        "{not json",
        {"user_id": u1},                                   # no item_id
        {"user_id": "nobody", "item_id": i1},
        {"user_id": u1, "item_id": "no-such-item"},
        {"user_id": u1, "item_id": i1},                    # same default key as line 1
        {"user_id": u1, "item_id": i2},
        {"user_id": u1, "item_id": i3},
    ])
    p = plan(src, catalog, done_keys={f"{u1}:{i3}"}, max_group=1)
    reasons = {r.line: r.reason for r in p.rejects}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert reasons[3].startswith("invalid JSON")
    assert reasons[4] == "missing field item_id"
    assert "unknown user 'nobody'" in reasons[5]
    assert "unknown item 'no-such-item'" in reasons[6]
    assert "duplicate key" in reasons[7]
    assert all(r.file == str(src) for r in p.rejects)
    assert p.total == 4 and p.done == 1 and p.pending == 3
    # max_group=1 splits u1's two pending rows; users keep their first-appearance order
    assert [(g.user_id, [r.key for r in g.rows]) for g in p.groups] == [
        (u1, [f"{u1}:{i1}"]), (u1, [f"{u1}:{i2}"]), (u2, ["k-7"])]

    out = tmp_path / "rejects.jsonl"
    write_rejects(out, p.rejects)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in lines] == [3, 4, 5, 6, 7] and set(lines[0]) == {"file", "line", "key", "reason"}


def test_csv_parquet_and_topk_inputs(tmp_path, catalog, ids):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (u1, u2, u3), (i1, i2, _, _) = ids
    c = tmp_path / "pairs.csv"
    with open(c, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id"])
        w.writerows([[u1, i1], [u2, ""], [u2, i2]])
    p = plan(c, catalog, set())
    assert [r.line for r in p.rejects] == [3] and p.pending == 2   # header is line 1

    pqf = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"user_id": [u1, None, u3], "item_id": [i1, i1, i2]}), pqf)
    p = plan(pqf, catalog, set())
    assert [(r.line, r.reason) for r in p.rejects] == [(2, "missing field user_id")]

    txt = tmp_path / "users.txt"
    txt.write_text(f"{u1}\n{u2}\n{u1}\n")
    p = plan(txt, catalog, {f"{u2}#1"}, topk=3)
    assert p.total == 6 and p.done == 1 and [r.line for r in p.rejects] == [3]
    assert [(g.user_id, g.topk, [r.rank for r in g.rows]) for g in p.groups] == [(u1, 3, [1, 2, 3]), (u2, 3, [2, 3])]


def test_journal_drops_torn_tail_and_keeps_done_keys(tmp_path):
    out = tmp_path / "out.jsonl"
    with Journal(out) as j:
        assert j.append([{"key": "a", "text": "x"}, {"key": "b", "text": "y"}]) == 2
        assert j.append([{"key": "a", "text": "again"}]) == 0      # never twice
    with open(out, "ab") as f:                                       # a kill -9 mid-write
        f.write(b'{"key": "c", "te')
    with Journal(out) as j:
        assert j.truncated_bytes == len(b'{"key": "c", "te')
        assert j.done == {"a", "b"}
        j.append([{"key": "c", "text": "z"}])
    assert [r["key"] for r in read_records(out)] == ["a", "b", "c"]
    assert out.read_bytes().endswith(b"\n")


def test_journal_single_writer_and_corrupt_middle(tmp_path):
    out = tmp_path / "out.jsonl"
    with Journal(out):
        with pytest.raises(OutputLocked):
            Journal(out).open()
    out.write_text('{"key": "a"}\ngarbage\n{"key": "b"}\n')
    with pytest.raises(RuntimeError, match=r"out.jsonl:2"):
        Journal(out).open()


def test_parquet_in_input_order(tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out.jsonl"
    rec = dict(user_id="u", item_id="i", rank=None, text="t", source="template", evidence_ids=["e"],
               facts=[], template="t@1", model="", fallback_reason="disabled")
    with Journal(out) as j:
        j.append([{**rec, "key": "b"}, {**rec, "key": "a"}])
    n = write_parquet(out, tmp_path / "out.parquet", {"a": 0, "b": 1})
    table = pq.read_table(tmp_path / "out.parquet")
    assert n == 2 and table.column("key").to_pylist() == ["a", "b"]
    assert table.column("evidence_ids").to_pylist() == [["e"], ["e"]]


async def test_run_groups_bounds_items_in_flight_and_drains_on_error():
    from explainer.batch.inputs import Group

    groups = [Group(f"u{n}", [Row(f"u{n}:{i}", f"u{n}", str(i), n) for i in range(size)])
              for n, size in enumerate([3, 2, 4, 1, 3, 2, 20])]
    state = {"now": 0, "max": 0}
    done: list[str] = []

    async def run(g):
        state["now"] += len(g.rows)
        state["max"] = max(state["max"], state["now"] if len(g.rows) <= 5 else 0)
        await asyncio.sleep(0.01)
        state["now"] -= len(g.rows)
        return [{"key": r.key} for r in g.rows], []

    await run_groups(groups, run, lambda recs, rej: done.extend(r["key"] for r in recs), concurrency=5)
    assert state["max"] <= 5 and len(done) == 35          # the 20-item group still ran (alone)

    async def failing(g):
        if g.user_id == "u2":
            raise RuntimeError("boom")
        await asyncio.sleep(0.01)
        return [{"key": r.key} for r in g.rows], []

    done.clear()
    with pytest.raises(RuntimeError, match="boom"):
        await run_groups(groups, failing, lambda recs, rej: done.extend(r["key"] for r in recs), concurrency=5)
    assert "u0:0" in done and not any(k.startswith("u6") for k in done)
