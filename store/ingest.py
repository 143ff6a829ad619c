"""Loading catalogs and events into the store, all-or-nothing.

Two sources go through the same path (clean → validate → one transaction):
  * the UniSRec files of the embedded Scientific data set (fixed leave-one-out split);
  * a user's own `items.jsonl` + `events.csv` (split computed leave-one-out by time).
"""
from __future__ import annotations

import csv
import hashlib
import html
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

from store.catalog import CATEGORY_SEPARATOR, Catalog, Event, Item
from store.errors import IngestError

MAX_TEXT = 4000  # characters kept of any one text field: long enough for any real title/description
EVENT_KINDS = {"view", "click", "cart", "purchase", "rating", "review"}
_SPACE = re.compile(r"\s+")


@dataclass
class IngestReport:
    items: int = 0
    events_added: int = 0
    events_duplicate: int = 0
    splits_moved: int = 0
    """ingest events whose split changed because the user's file grew (leave-one-out recomputed)"""
    users: int = 0
    skipped: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def clean_text(value: object) -> str:
    """Unicode-normalise, unescape HTML entities, drop control characters, collapse whitespace."""
    text = unicodedata.normalize("NFKC", html.unescape(str(value)))
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _SPACE.sub(" ", text).strip()[:MAX_TEXT]


# -- UniSRec ----------------------------------------------------------------------
def parse_unisrec_text(text: str) -> tuple[str, str, str]:
    """Split "title. category path. brand." into its three parts.

    The brand is the last sentence; the category path is the sentence before it and may
    be empty (". . Brand."); titles themselves may contain ". ".
    """
    body = clean_text(text).rstrip()
    if body.endswith("."):
        body = body[:-1]
    head, _, brand = body.rpartition(". ")
    if not head:  # no separator at all: everything is title
        return body, "", ""
    head = head.rstrip()
    if head.endswith("."):  # empty category: "title. . brand"
        return head[:-1].strip(), "", brand.strip()
    title, sep, category = head.rpartition(". ")
    if not sep:
        return head.strip(), "", brand.strip()
    return title.strip(), category.strip(), brand.strip()


def _fingerprint(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def ingest_unisrec(catalog: Catalog, data_dir: Path, name: str = "Scientific", force: bool = False,
                   max_users: int | None = None) -> IngestReport:
    """Loads `{name}.text`, `.item2index`, `.user2index` and the three `.inter` files.

    Each user's full sequence is the test line's history + target; its last item is the
    test target, the one before the validation target, the rest train (as the files say).
    Skipped when the same files were already ingested. `max_users` keeps only the first
    N users (all items are kept): small real slices for tests and quick runs.
    """
    data_dir = Path(data_dir)
    files = {k: data_dir / f"{name}.{k}" for k in ("text", "item2index", "user2index", "test.inter")}
    for path in files.values():
        if not path.exists():
            raise IngestError(str(path), 0, "file", "not found")
    fp = _fingerprint(files.values()) + (f":{max_users}" if max_users else "")
    if not force and catalog.get_meta(f"ingest:unisrec:{name}") == fp:
        return IngestReport(items=catalog.item_count(), skipped=True)

    items: list[Item] = []
    with open(files["text"], encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if lineno == 1 and line.startswith("item_id:"):
                continue
            asin, sep, text = line.rstrip("\n").partition("\t")
            if not sep or not asin.strip():
                raise IngestError(str(files["text"]), lineno, "item_id", "expected 'item_id<TAB>text'")
            title, category, brand = parse_unisrec_text(text)
            if not title:
                raise IngestError(str(files["text"]), lineno, "text", "empty title")
            items.append(Item(id=asin.strip(), title=title, category=category, brand=brand))
    item_ids = {i.id for i in items}
    index_to_item = _read_index(files["item2index"])
    index_to_user = _read_index(files["user2index"])
    for idx, asin in index_to_item.items():
        if asin not in item_ids:
            raise IngestError(str(files["item2index"]), idx + 1, "item_id", f"{asin!r} has no text")

    events: list[Event] = []
    with open(files["test.inter"], encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if lineno == 1 and line.startswith("user_id:"):
                continue
            if max_users is not None and lineno > max_users + 1:
                break
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise IngestError(str(files["test.inter"]), lineno, "line", "expected 3 tab-separated fields")
            try:
                user = index_to_user[int(parts[0])]
                seq = [index_to_item[int(x)] for x in parts[1].split()] + [index_to_item[int(parts[2])]]
            except (ValueError, KeyError) as exc:
                raise IngestError(str(files["test.inter"]), lineno, "item_id_list", f"bad index {exc}") from None
            n = len(seq)
            for pos, asin in enumerate(seq):
                split = "test" if pos == n - 1 else "valid" if pos == n - 2 else "train"
                events.append(Event(user_id=user, item_id=asin, kind="purchase", ts=float(pos), split=split))

    report = IngestReport(items=len(items), users=len({e.user_id for e in events}))
    with catalog.transaction() as conn:
        catalog.upsert_items(items, conn=conn)
        report.events_added = catalog.add_events(events, conn=conn)
        report.events_duplicate = len(events) - report.events_added
        catalog.set_meta(f"ingest:unisrec:{name}", fp, conn=conn)
    return report


def _read_index(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            key, sep, idx = line.rstrip("\n").partition("\t")
            if not sep:
                raise IngestError(str(path), lineno, "index", "expected 'id<TAB>index'")
            try:
                out[int(idx)] = key
            except ValueError:
                raise IngestError(str(path), lineno, "index", f"not an integer: {idx!r}") from None
    return out


# -- a user's own catalog ---------------------------------------------------------
def read_items_jsonl(path: Path) -> list[Item]:
    """Validates every line of an items.jsonl; raises IngestError on the first bad one."""
    items: dict[str, Item] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(str(path), lineno, "line", f"invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise IngestError(str(path), lineno, "line", "expected a JSON object")
            items[_required_id(row, "id", path, lineno)] = item_from_row(row, str(path), lineno)
    return list(items.values())


def _required_id(row: dict, key: str, path, lineno: int) -> str:
    value = row.get(key)
    if not isinstance(value, (str, int)) or not clean_text(value):
        raise IngestError(str(path), lineno, key, "required, a non-empty string")
    return clean_text(value)


def item_from_row(row: dict, path: str = "<request>", lineno: int = 0) -> Item:
    """One validated Item from a dict with the items.jsonl fields."""
    item_id = _required_id(row, "id", path, lineno)
    title = clean_text(row.get("title") or "")
    if not title:
        raise IngestError(path, lineno, "title", "required, a non-empty string")
    for key in ("brand", "description"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise IngestError(path, lineno, key, "must be a string")
    category = parse_category(row.get("category"), path, lineno)
    price = row.get("price")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0:
            raise IngestError(path, lineno, "price", f"must be a non-negative number (got {price!r})")
        price = float(price)
    attributes = parse_attributes(row.get("attributes"), path, lineno)
    return Item(id=item_id, title=title, category=category, brand=clean_text(row.get("brand") or ""),
                price=price, description=clean_text(row.get("description") or ""), attributes=attributes)


def parse_category(value: object, path: str = "<request>", lineno: int = 0) -> str:
    """One category path, or several. A string is one path ("Kitchen > Mugs"; paths separated by ";"
    are several); a list holds several paths, each a string or a list of levels:
    ["Drama", "Romance"] -> two categories; [["Kitchen", "Mugs"]] -> the path "Kitchen > Mugs".
    Stored as one string, the paths joined by CATEGORY_SEPARATOR."""
    if value is None or value == "":
        return ""
    sep = CATEGORY_SEPARATOR.strip()
    if isinstance(value, str):
        paths = [clean_text(p) for p in value.split(sep)]
    elif isinstance(value, list):
        paths = []
        for n, p in enumerate(value):
            if isinstance(p, list) and all(isinstance(level, str) for level in p):
                p = " > ".join(clean_text(level) for level in p if clean_text(level))
            elif not isinstance(p, str):
                raise IngestError(path, lineno, f"category[{n}]", "must be a string or a list of strings (got "
                                  f"{type(p).__name__})")
            paths += [clean_text(q) for q in p.split(sep)]
    else:
        raise IngestError(path, lineno, "category", "must be a string or a list of paths")
    return CATEGORY_SEPARATOR.join(dict.fromkeys(p for p in paths if p))


MAX_ATTRIBUTE_VALUES = 100   # values in one list-valued attribute


def _attribute_scalar(value: object, field: str, path: str, lineno: int) -> str | int | float | bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise IngestError(path, lineno, field, f"must be a finite number (got {value!r})")
        return value
    if isinstance(value, str):
        return clean_text(value) or None
    raise IngestError(path, lineno, field, f"must be a string, a number, a boolean or a list of them "
                      f"(got {type(value).__name__})")


def parse_attributes(value: object, path: str = "<request>", lineno: int = 0) -> dict:
    """Free-form attributes: name -> a string, a number, a boolean, or a list of strings/numbers
    (`{"genres": ["Drama", "Romance"], "year": 1997}`). Empty values are dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestError(path, lineno, "attributes", "must be a JSON object")
    out: dict = {}
    for raw_key, raw in value.items():
        key = clean_text(raw_key)
        if not key:
            continue
        field = f"attributes.{key}"
        if isinstance(raw, list):
            if len(raw) > MAX_ATTRIBUTE_VALUES:
                raise IngestError(path, lineno, field, f"at most {MAX_ATTRIBUTE_VALUES} values (got {len(raw)})")
            values = []
            for n, v in enumerate(raw):
                if isinstance(v, (list, dict)):
                    raise IngestError(path, lineno, f"{field}[{n}]", "must be a string or a number")
                v = _attribute_scalar(v, f"{field}[{n}]", path, lineno)
                if v is not None and v not in values:
                    values.append(v)
            if values:
                out[key] = values
        elif raw is not None:
            v = _attribute_scalar(raw, field, path, lineno)
            if v is not None:
                out[key] = v
    return out


def _parse_ts(value: str, path: Path, lineno: int) -> float:
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise IngestError(str(path), lineno, "timestamp", f"not a number or ISO-8601 time: {value!r}") from None


def read_events_csv(path: Path, known_items: set[str]) -> list[Event]:
    """Validates every row of an events.csv (`user_id,item_id,kind,timestamp`)."""
    events: list[Event] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        required = ["user_id", "item_id", "kind", "timestamp"]
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise IngestError(str(path), 1, missing[0], "missing column in the header")
        for row in reader:
            lineno = reader.line_num
            user = clean_text(row.get("user_id") or "")
            item = clean_text(row.get("item_id") or "")
            kind = clean_text(row.get("kind") or "").lower()
            if not user:
                raise IngestError(str(path), lineno, "user_id", "required")
            if not item:
                raise IngestError(str(path), lineno, "item_id", "required")
            if item not in known_items:
                raise IngestError(str(path), lineno, "item_id", f"unknown item {item!r}")
            if kind not in EVENT_KINDS:
                raise IngestError(str(path), lineno, "kind", f"must be one of {sorted(EVENT_KINDS)} (got {kind!r})")
            events.append(Event(user_id=user, item_id=item, kind=kind, ts=_parse_ts(row.get("timestamp") or "", path, lineno)))
    return events


def assign_leave_one_out(events: list[Event]) -> list[Event]:
    """Per user, by time: last event → test, the one before → valid, the rest → train.

    Users with fewer than 3 events keep all of them in train. Exact duplicates are dropped.
    """
    by_user: dict[str, list[Event]] = {}
    seen: set[tuple] = set()
    for e in events:
        key = (e.user_id, e.item_id, e.kind, e.ts)     # the store's identity of an event (split aside)
        if key not in seen:
            seen.add(key)
            by_user.setdefault(e.user_id, []).append(e)
    out: list[Event] = []
    for seq in by_user.values():
        seq.sort(key=lambda e: e.ts)
        n = len(seq)
        for pos, e in enumerate(seq):
            split = "train" if n < 3 or pos < n - 2 else "valid" if pos == n - 2 else "test"
            out.append(Event(e.user_id, e.item_id, e.kind, e.ts, split))
    return out


def ingest_files(catalog: Catalog, items_path: Path | None = None, events_path: Path | None = None) -> IngestReport:
    """Ingests a user's own items.jsonl and/or events.csv in one transaction.

    Events may reference items in the same items file or already in the catalog.
    """
    report = IngestReport()
    items = read_items_jsonl(Path(items_path)) if items_path else []
    events: list[Event] = []
    fresh: list[Event] = []
    if events_path:
        known = {i.id for i in catalog.all_items()} | {i.id for i in items}
        fresh = read_events_csv(Path(events_path), known)
        # Leave-one-out over what is stored AND the file, per user in the file: a grown events.csv moves
        # each user's valid/test marks to their new last two events (the old ones become train) instead
        # of leaving a user with two test events. Live events (RecordEvents) are not part of the split.
        stored = catalog.events_of({e.user_id for e in fresh})
        events = assign_leave_one_out(stored + fresh)
    with catalog.transaction() as conn:
        report.items = catalog.upsert_items(items, conn=conn) if items else 0
        if events:
            report.events_added = catalog.add_events(events, conn=conn)
            report.splits_moved = catalog.set_event_splits(events, conn=conn)
            report.events_duplicate = len({(e.user_id, e.item_id, e.kind, e.ts) for e in fresh}) - report.events_added
            report.users = len({e.user_id for e in fresh})
    return report
