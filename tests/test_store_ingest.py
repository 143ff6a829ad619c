"""Ingestion into the real store, on both backends (a SQLite file and a throwaway PostgreSQL
cluster): the Scientific files and a user's own JSONL/CSV."""
from __future__ import annotations

import json

import pytest

from store.catalog import Catalog, Event, Feedback
from store.errors import IngestError, UnknownItem, UnknownUser
from store.ingest import clean_text, ingest_files, ingest_unisrec, parse_unisrec_text


@pytest.mark.parametrize("text, expected", [
    ("Gorilla Glue, 8 ounce. Industrial & Scientific Tapes, Adhesives. Gorilla. ",
     ("Gorilla Glue, 8 ounce", "Industrial & Scientific Tapes, Adhesives", "Gorilla")),
    ("Schwinn Roadster Kid's Tricycle, 12-Inch Wheel. . Schwinn. ",
     ("Schwinn Roadster Kid's Tricycle, 12-Inch Wheel", "", "Schwinn")),
    ("Dr. Meter No. 5 Scale. Industrial & Scientific Scales. Dr.meter. ",
     ("Dr. Meter No. 5 Scale", "Industrial & Scientific Scales", "Dr.meter")),
])
def test_parse_unisrec_text_splits_title_category_brand(text, expected):
    assert parse_unisrec_text(text) == expected


def test_clean_text_normalises_whitespace_entities_and_controls():
    assert clean_text("  a&amp;b\t\x00c\n\n d ") == "a&b c d"


def test_scientific_ingest_keeps_split_and_is_idempotent(any_catalog, scientific_dir):
    catalog = any_catalog
    seqs = catalog.sequences()
    assert len(seqs) == 400
    for seq in seqs.values():  # leave-one-out: ... train, valid, test
        splits = [s for _, s in seq]
        assert splits[-1] == "test" and splits[-2] == "valid" and set(splits[:-2]) <= {"train"}
    # first user of the files: history 0..12, target 13 in the test file
    user0 = catalog.user_ids()[0]
    assert len(catalog.history(user0)) == 14
    assert len(catalog.history(user0, splits=("train",))) == 12
    n_events = catalog.event_count()
    report = ingest_unisrec(catalog, scientific_dir, max_users=400)
    assert report.skipped
    report = ingest_unisrec(catalog, scientific_dir, max_users=400, force=True)
    assert report.events_added == 0 and catalog.event_count() == n_events


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_own_catalog_jsonl_and_events_csv(tmp_path, empty_store):
    cat = Catalog(empty_store)
    items = _write(tmp_path / "items.jsonl", "\n".join(json.dumps(r) for r in [
        {"id": "A", "title": "  Blue   mug ", "category": [["Kitchen", "Mugs"]], "brand": "Acme", "price": 9.5,
         "attributes": {"color": "blue"}},
        {"id": "B", "title": "Tea pot", "description": "Holds 1 litre"},
        {"id": "C", "title": "Kettle"},
    ]) + "\n")
    events = _write(tmp_path / "events.csv", "user_id,item_id,kind,timestamp\n"
                    "u1,A,purchase,2024-01-01T00:00:00Z\nu1,B,view,1704153600\nu1,C,click,1704240000\n"
                    "u1,C,click,1704240000\n")  # the last row is an exact duplicate
    report = ingest_files(cat, items, events)
    assert report.items == 3 and report.events_added == 3
    a = cat.get_item("A")
    assert a.title == "Blue mug" and a.category == "Kitchen > Mugs" and a.price == 9.5
    assert a.attributes == {"color": "blue"}
    assert cat.history("u1") == ["A", "B", "C"]
    assert cat.history("u1", splits=("train",)) == ["A"]
    again = ingest_files(cat, items, events)
    assert again.events_added == 0 and cat.event_count() == 3


def test_reingesting_a_grown_events_file_keeps_one_valid_and_one_test_per_user(tmp_path, empty_store):
    cat = Catalog(empty_store)
    items = _write(tmp_path / "items.jsonl", "\n".join(json.dumps({"id": i, "title": f"item {i}"}) for i in "ABCDEF"))
    rows = ["u1,A,purchase,100", "u1,B,purchase,200", "u1,C,purchase,300", "u1,D,purchase,400", "u2,A,view,100"]
    ingest_files(cat, items, _write(tmp_path / "events.csv", "user_id,item_id,kind,timestamp\n" + "\n".join(rows)))
    assert cat.history("u1", splits=("test",)) == ["D"] and cat.history("u1", splits=("valid",)) == ["C"]
    cat.add_events([Event("u1", "F", "click", 450)])                      # a live event from the service
    grown = rows + ["u1,E,purchase,500", "u1,F,purchase,600", "u2,B,view,200", "u2,C,view,300"]
    report = ingest_files(cat, None, _write(tmp_path / "events2.csv",
                                            "user_id,item_id,kind,timestamp\n" + "\n".join(grown)))
    assert report.events_added == 4 and report.events_duplicate == 5 and report.splits_moved == 2
    for user, test, valid in (("u1", ["F"], ["E"]), ("u2", ["C"], ["B"])):
        assert cat.history(user, splits=("test",)) == test          # exactly one test event per user
        assert cat.history(user, splits=("valid",)) == valid
    assert cat.history("u1", splits=("train",)) == ["A", "B", "C", "D"]
    assert cat.history("u1", splits=("live",)) == ["F"]                  # live events keep their split
    again = ingest_files(cat, None, tmp_path / "events2.csv")            # idempotent
    assert again.events_added == 0 and again.splits_moved == 0


@pytest.mark.parametrize("line, field", [
    ('{"id": "X"}', "title"),
    ('{"title": "no id"}', "id"),
    ('{"id": "X", "title": "t", "price": -3}', "price"),
    ('{"id": "X", "title": "t", "attributes": [1]}', "attributes"),
    ('not json', "line"),
])
def test_bad_item_row_names_file_line_field_and_writes_nothing(tmp_path, line, field):
    cat = Catalog(tmp_path / "c.sqlite")   # validation happens before any write: one backend is enough
    path = _write(tmp_path / "items.jsonl", '{"id": "ok", "title": "fine"}\n' + line + "\n")
    with pytest.raises(IngestError) as err:
        ingest_files(cat, path)
    assert err.value.line == 2 and err.value.field == field and "items.jsonl:2" in str(err.value)
    assert cat.item_count() == 0  # all or nothing


def test_event_for_unknown_item_rolls_back_the_whole_ingest(tmp_path, empty_store):
    cat = Catalog(empty_store)
    items = _write(tmp_path / "items.jsonl", '{"id": "A", "title": "a"}\n')
    events = _write(tmp_path / "events.csv", "user_id,item_id,kind,timestamp\nu,A,view,1\nu,Z,view,2\n")
    with pytest.raises(IngestError) as err:
        ingest_files(cat, items, events)
    assert err.value.line == 3 and err.value.field == "item_id"
    assert cat.item_count() == 0 and cat.event_count() == 0


def test_cli_ingest_reports_bad_rows(tmp_path, capsys):
    from server.cli import main
    path = _write(tmp_path / "items.jsonl", '{"id": "A", "title": "a", "price": "cheap"}\n')
    assert main(["ingest", "--workdir", str(tmp_path), "--items", str(path)]) == 1
    assert "field 'price'" in capsys.readouterr().err


def test_feedback_is_durable_across_connections(empty_store):
    cat = Catalog(empty_store)
    fid = cat.add_feedback(Feedback(user_id="u", item_id="i", kind="rating", helpful=False, reason="vague"))
    second = cat.add_feedback(Feedback(user_id="u", item_id="j", kind="click"))
    cat.close()
    reopened = Catalog(empty_store)
    rows = [(r["id"], r["item_id"], r["helpful"], r["reason"]) for r in reopened.feedback("u")]
    reopened.close()
    assert rows == [(fid, "i", 0, "vague"), (second, "j", None, "")] and second > fid


def test_unknown_ids_raise_named_errors(any_catalog):
    catalog = any_catalog
    with pytest.raises(UnknownItem, match="item_ids"):
        catalog.get_items(["nope"])
    with pytest.raises(UnknownUser, match="user_id"):
        catalog.history("nobody")
    with pytest.raises(UnknownItem):
        catalog.delete_items(["nope"])


def test_histories_of_a_batch_equal_each_users_history(any_catalog):
    """The batcher's one read of a batch's histories returns what one read per user would."""
    catalog = any_catalog
    users = catalog.user_ids()[:30]
    got = catalog.histories([*users, "nobody", users[0]])
    assert "nobody" not in got and set(got) == set(users)
    assert all(got[u] == catalog.history(u) for u in users)


def test_live_events_and_soft_delete(any_catalog):
    catalog = any_catalog
    item = catalog.all_items()[0]
    catalog.add_events([Event(user_id="new-user", item_id=item.id, kind="click", ts=1.0)])
    assert catalog.history("new-user") == [item.id]
    catalog.delete_items([item.id])
    assert not catalog.has_item(item.id) and item.id in catalog.deleted_item_ids()


def test_cli_ingest_into_a_store_url_is_idempotent(tmp_path, empty_store, capsys):
    from server.cli import main
    items = _write(tmp_path / "items.jsonl", '{"id": "A", "title": "a"}\n{"id": "B", "title": "b"}\n')
    events = _write(tmp_path / "events.csv", "user_id,item_id,kind,timestamp\nu,A,view,1\nu,B,view,2\n")
    args = ["ingest", "--workdir", str(tmp_path), "--store", empty_store, "--items", str(items),
            "--events", str(events)]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["items"], first["events_added"]) == (2, 2) and second["events_added"] == 0
    cat = Catalog(empty_store)
    assert cat.history("u") == ["A", "B"] and cat.item_count() == 2
    cat.close()
