"""The support-desk page's routes over a real gRPC service (priced catalog, templates): history,
the event stream, feedback that lands in the store, search parsing, and errors that name the field.
The page itself is driven in a real browser by tests/test_desk_browser.py."""
from __future__ import annotations

import json

import httpx
import pytest

from server.desk.search import parse_search


def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip().splitlines()
        ev = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), None)
        data = "\n".join(ln[5:].lstrip() for ln in lines if ln.startswith("data:"))
        if ev and data:
            out.append((ev, json.loads(data)))
    return out


def test_parse_search_phrases():
    p = parse_search("like P0002 under $20")
    assert (p.filters.similar_to, p.filters.max_price, p.filters.query) == ("P0002", 20.0, "")
    p = parse_search("tents by Acme not Contoso between $50 and $120")
    assert (p.filters.brands, p.filters.exclude_brands) == (["Acme"], ["Contoso"])
    assert (p.filters.min_price, p.filters.max_price, p.filters.query) == (50.0, 120.0, "tents")
    p = parse_search("like B00PU0W35K but cheaper from another brand")
    assert p.cheaper and p.other_brand and p.filters.similar_to == "B00PU0W35K" and not p.filters.brands
    f = p.resolve({"id": "B00PU0W35K", "price": 12.5, "brand": "Acme"})
    assert f.max_price < 12.5 and f.max_price > 12.49 and f.exclude_brands == ["Acme"]
    p = parse_search("water bottle over 10 not too heavy")
    assert p.filters.min_price == 10.0 and not p.filters.exclude_brands and "too heavy" in p.filters.query
    p = parse_search("like glass bottles")      # not an item id: the words become the text query
    assert p.resolve(None).query == "glass bottles" and p.filters.similar_to == ""


def test_history_stream_and_feedback(priced_desk, priced_catalog):
    user = priced_catalog.user_ids()[5]
    with httpx.Client(base_url=priced_desk.url, timeout=60) as http:
        page = http.get("/")
        assert page.status_code == 200 and "<script src=\"/static/desk.js\">" in page.text
        assert "http" not in page.text.split("<body>")[1].replace("http-equiv", "")   # no external assets
        hist = http.get("/api/history", params={"user_id": user}).json()
        assert hist["total"] == len(priced_catalog.history(user)) and hist["entries"][0]["item"]["title"]
        r = http.get("/api/stream", params={"user_id": user, "k": 4})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.text)
        kinds = [e for e, _ in events]
        assert kinds[0] == "filters" and kinds[1] == "ranked" and kinds[-1] == "done"
        ranked = events[1][1]
        ids = [it["item"]["id"] for it in ranked["items"]]
        finals = {d["item_id"]: d["justification"] for e, d in events if e == "final"}
        assert len(ids) == 4 and set(finals) == set(ids) and all(j["text"] for j in finals.values())
        cited = finals[ids[0]]["evidence_ids"]
        assert cited and cited[0] in {e["item"]["id"] for e in hist["entries"]}
        fb = http.post("/api/feedback", json={"user_id": user, "item_id": ids[0], "kind": "rating",
                                              "helpful": False, "request_id": ranked["request_id"]}).json()
        row = next(f for f in priced_catalog.feedback(user) if f["id"] == fb["feedback_id"])
        assert (row["item_id"], row["kind"], row["helpful"], row["request_id"]) == \
            (ids[0], "rating", 0, ranked["request_id"])


def test_like_item_but_cheaper_from_text(priced_desk, priced_catalog):
    ref = max((i for i in priced_catalog.all_items() if i.price is not None), key=lambda i: i.price)
    with httpx.Client(base_url=priced_desk.url, timeout=60) as http:
        events = _events(http.get("/api/stream", params={"text": f"like {ref.id} but cheaper", "k": 8}).text)
        head = events[0][1]
        assert head["reference"]["id"] == ref.id and head["filters"]["max_price"] < ref.price
        items = dict(events)["ranked"]["items"]
        assert items and all(it["item"]["price"] is not None and it["item"]["price"] < ref.price for it in items)
        assert dict(events)["ranked"]["excluded_no_price"] > 0


@pytest.mark.parametrize("params,status,field", [
    ({"user_id": "nobody"}, 404, "nobody"),
    ({"similar_to": "P0001", "min_price": "abc"}, 400, "min_price"),
    ({"similar_to": "P0001", "min_price": "9", "max_price": "2"}, 400, "max_price"),
    ({"text": "", "k": "5"}, 400, "user_id"),
])
def test_errors_name_the_field(priced_desk, params, status, field):
    with httpx.Client(base_url=priced_desk.url, timeout=30) as http:
        r = http.get("/api/stream", params=params)
        if r.status_code == 200:    # errors found by the service arrive as an event in the stream
            ev = dict(_events(r.text))["error"]
            assert ev["status"] == status and field in ev["message"]
        else:
            assert r.status_code == status and field in r.json()["message"]
    with httpx.Client(base_url=priced_desk.url, timeout=30) as http:
        bad = http.post("/api/feedback", json={"user_id": "U001", "item_id": "P0001", "kind": "love"})
        assert bad.status_code == 422 and "kind" in bad.text


def test_the_page_uses_the_services_token_scopes(priced_catalog, priced_ranker):
    """The desk passes the agent's token on: a read-only token may look but not record feedback."""
    from tests.fixtures_desk import start_desk
    from tests.fixtures_server import ServerHarness, server_config, template_service_factory
    cfg = server_config(auth_tokens="viewer read viewer-secret-0123456789;agent read,write agent-secret-0123456789")
    harness = ServerHarness(cfg, template_service_factory(priced_catalog, priced_ranker, cfg))
    desk = start_desk(harness)
    user = priced_catalog.user_ids()[9]
    fb = {"user_id": user, "item_id": priced_catalog.history(user)[0], "kind": "click"}
    try:
        with httpx.Client(base_url=desk.url, timeout=60) as http:
            assert http.get("/api/history", params={"user_id": user}).status_code == 401
            viewer = {"Authorization": "Bearer viewer-secret-0123456789"}
            assert http.get("/api/history", params={"user_id": user}, headers=viewer).status_code == 200
            denied = http.post("/api/feedback", json=fb, headers=viewer)
            assert denied.status_code == 403 and denied.json()["error"] == "PERMISSION_DENIED"
            ok = http.post("/api/feedback", json=fb, headers={"Authorization": "Bearer agent-secret-0123456789"})
            assert ok.status_code == 200 and ok.json()["recorded"]
    finally:
        harness.run(desk.stop())
        harness.close()
