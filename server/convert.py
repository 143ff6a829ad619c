"""proto <-> domain conversion and request validation. Pure functions, no I/O.

Validation errors are `core.errors.InvalidInput(field, message)` naming the request field
(`k`, `history[3]`, `items[0].title`, ...); the error table turns them into INVALID_ARGUMENT.
A ranking or Explain request is only converted here: the ranker validates it, once, with the
same `core.validation` rules and the limits of `ServerConfig.limits` (`server/setup.py` hands them
to it), and its InvalidInput names the proto field.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from typing import TYPE_CHECKING, Sequence

from protos.explainrec.v1 import explainrec_pb2 as pb
from ranker.types import Candidate, RankQuery
from store.catalog import Event, Feedback, Item
from store.errors import IngestError
from store.ingest import parse_attributes
from core.errors import InvalidInput
from core.validation import DEFAULT_LIMITS, check_id, check_ids, check_text

if TYPE_CHECKING:
    from explainer.types import Justification
    from server.config import ServerConfig

FEEDBACK_KINDS = {
    pb.FEEDBACK_KIND_CLICK: "click",
    pb.FEEDBACK_KIND_PURCHASE: "purchase",
    pb.FEEDBACK_KIND_DISMISS: "dismiss",
    pb.FEEDBACK_KIND_RATING: "rating",
}
HELPFUL = {pb.HELPFULNESS_UNSPECIFIED: None, pb.HELPFULNESS_HELPFUL: True, pb.HELPFULNESS_NOT_HELPFUL: False}


# -- requests -> domain ------------------------------------------------------------
def to_rank_query(req: pb.RecommendRequest, cfg: "ServerConfig") -> RankQuery:
    """The request as a RankQuery (the ranker validates it: core.validation.validate_query)."""
    return RankQuery(
        user_id=req.user_id or None, history=tuple(req.history), text=req.query, k=req.k or cfg.default_k,
        category=req.category, exclude=tuple(req.exclude_item_ids), exclude_history=not req.include_history,
        similar_to=req.similar_to_item_id,
        min_price=req.min_price if req.HasField("min_price") else None,
        max_price=req.max_price if req.HasField("max_price") else None,
        brands=tuple(req.brands), exclude_brands=tuple(req.exclude_brands),
    )


def to_explain_query(req: pb.ExplainRequest, cfg: "ServerConfig") -> tuple[RankQuery, tuple[str, ...]]:
    """The query that says whose history to use, and the item ids to justify (the ranker validates
    both: core.validation.validate_explain; k is the number of items, so it is checked with them).
    The RPC's own rule is checked here: a justification needs a history to point at."""
    if not (req.user_id or req.history):
        raise InvalidInput("user_id", "give a user_id or a history to explain against (both were empty)")
    item_ids = tuple(req.item_ids)
    query = RankQuery(user_id=req.user_id or None, history=tuple(req.history), text=req.query,
                      k=max(len(item_ids), 1), exclude_history=False)
    return query, item_ids


def item_from_proto(p: pb.Item, field: str) -> Item:
    check_id(p.id, f"{field}.id")
    if not p.title.strip():
        raise InvalidInput(f"{field}.title", "must not be empty")
    if p.HasField("price") and (math.isnan(p.price) or p.price < 0):
        raise InvalidInput(f"{field}.price", f"must be a non-negative number (got {p.price})")
    return Item(id=p.id, title=check_text(p.title, f"{field}.title", 1000), category=p.category, brand=p.brand,
                price=p.price if p.HasField("price") else None,
                description=check_text(p.description, f"{field}.description", 20000),
                attributes=attributes_from_proto(p.attributes, f"{field}.attributes"))


def attributes_from_proto(attrs, field: str) -> dict:
    """The proto map holds strings; a list-valued attribute travels as its JSON text (as item_to_proto
    writes it), so `"genres": "[\\"Drama\\", \\"Romance\\"]"` comes back a list. Checked like the ingest."""
    raw: dict = {}
    for k, v in attrs.items():
        if v.startswith("["):
            try:
                v = json.loads(v)
            except ValueError:
                pass   # a string that merely starts with "[" stays a string
        raw[k] = v
    try:
        return parse_attributes(raw)
    except IngestError as exc:
        raise InvalidInput(f"{field}.{exc.field.removeprefix('attributes.')}", str(exc).split(": ", 2)[-1]) from None


def items_from_proto(req: pb.UpsertItemsRequest, cfg: "ServerConfig") -> list[Item]:
    if not req.items:
        raise InvalidInput("items", "give at least one item")
    if len(req.items) > cfg.limits.max_ids:
        raise InvalidInput("items", f"at most {cfg.limits.max_ids} items per call (got {len(req.items)})")
    items = [item_from_proto(p, f"items[{i}]") for i, p in enumerate(req.items)]
    seen: set[str] = set()
    for i, it in enumerate(items):
        if it.id in seen:
            raise InvalidInput(f"items[{i}].id", f"duplicate id {it.id!r} in one call")
        seen.add(it.id)
    return items


def delete_ids_from_proto(req: pb.DeleteItemsRequest, cfg: "ServerConfig") -> tuple[str, ...]:
    if not req.item_ids:
        raise InvalidInput("item_ids", "give at least one item id")
    return check_ids(req.item_ids, "item_ids", cfg.limits.max_ids)


def events_from_proto(req: pb.RecordEventsRequest, cfg: "ServerConfig", now: float | None = None) -> list[Event]:
    if not req.events:
        raise InvalidInput("events", "give at least one event")
    if len(req.events) > cfg.limits.max_ids:
        raise InvalidInput("events", f"at most {cfg.limits.max_ids} events per call (got {len(req.events)})")
    now = time.time() if now is None else now
    out = []
    for i, e in enumerate(req.events):
        if not math.isfinite(e.ts) or e.ts < 0:
            raise InvalidInput(f"events[{i}].ts", f"must be unix seconds >= 0 (got {e.ts})")
        kind = e.kind or "purchase"
        if len(kind) > 32 or not kind.isidentifier():
            raise InvalidInput(f"events[{i}].kind", f"must be a short word like 'purchase' (got {kind[:40]!r})")
        out.append(Event(user_id=check_id(e.user_id, f"events[{i}].user_id"),
                         item_id=check_id(e.item_id, f"events[{i}].item_id"),
                         kind=kind, ts=e.ts or now, split="live"))
    return out


MAX_IDEMPOTENCY_KEY_CHARS = 128


def idempotency_from_proto(req) -> tuple[str, str]:
    """(key, fingerprint of the request) of a write; ("", "") without a key. The fingerprint is taken
    over the request as sent, so an event without a time stamp (stamped on arrival) still matches its retry."""
    key = req.idempotency_key
    if not key:
        return "", ""
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise InvalidInput("idempotency_key", f"must be printable and at most {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    return key, hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()


def feedback_from_proto(req: pb.SubmitFeedbackRequest, cfg: "ServerConfig", request_id: str) -> Feedback:
    if req.kind not in FEEDBACK_KINDS:
        raise InvalidInput("kind", "must be click, purchase, dismiss or rating")
    if req.helpful not in HELPFUL:
        raise InvalidInput("helpful", f"unknown value {req.helpful}")
    if req.kind == pb.FEEDBACK_KIND_RATING and req.helpful == pb.HELPFULNESS_UNSPECIFIED:
        raise InvalidInput("helpful", "a rating must say helpful or not helpful")
    return Feedback(user_id=check_id(req.user_id, "user_id"), item_id=check_id(req.item_id, "item_id"),
                    kind=FEEDBACK_KINDS[req.kind], helpful=HELPFUL[req.helpful],
                    reason=check_text(req.reason, "reason", cfg.max_text_chars),
                    request_id=req.request_id[:DEFAULT_LIMITS.max_id_chars] or request_id)


# -- domain -> replies --------------------------------------------------------------
def item_to_proto(item: Item) -> pb.Item:
    p = pb.Item(id=item.id, title=item.title, category=item.category, brand=item.brand,
                description=item.description,
                attributes={str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                            for k, v in (item.attributes or {}).items()})
    if item.price is not None:
        p.price = item.price
    return p


_ITEM_PROTOS: dict[str, tuple[Item, pb.Item]] = {}
_ITEM_PROTOS_MAX = 200_000


def _item_proto_cached(item: Item) -> pb.Item:
    """The item's message, built once per Item object: the ranker serves the same Item objects call
    after call (an upsert makes a new one), and building the message (attributes as JSON) was the
    largest cost of a reply. Only ever copied from, never handed out to be changed."""
    hit = _ITEM_PROTOS.get(item.id)
    if hit is not None and hit[0] is item:
        return hit[1]
    if len(_ITEM_PROTOS) >= _ITEM_PROTOS_MAX:
        _ITEM_PROTOS.clear()
    p = item_to_proto(item)
    _ITEM_PROTOS[item.id] = (item, p)
    return p


def evidence_to_proto(c: Candidate) -> list[pb.Evidence]:
    return [pb.Evidence(item_id=e.item_id, similarity=e.similarity, shared=list(e.shared)) for e in c.evidence]


def justification_to_proto(j: "Justification") -> pb.Justification:
    return pb.Justification(text=j.text, source=j.source, template=j.template, model=j.model,
                            evidence_ids=list(j.evidence_ids), facts=list(j.facts),
                            fallback_reason=j.fallback_reason, failed_rules=list(j.failed_rules),
                            cached=j.cached)


def _fill_recommended(p: pb.RecommendedItem, rank: int, item: Item, cand: Candidate,
                      just: "Justification | None") -> pb.RecommendedItem:
    p.rank, p.score = rank, cand.score
    p.item.CopyFrom(_item_proto_cached(item))
    for e in cand.evidence:
        p.evidence.add(item_id=e.item_id, similarity=e.similarity, shared=e.shared)
    if cand.query_match is not None:
        p.query_match = cand.query_match
    if just is not None:
        p.justification.CopyFrom(justification_to_proto(just))
    return p


def recommended_to_proto(rank: int, item: Item, cand: Candidate, just: "Justification | None") -> pb.RecommendedItem:
    return _fill_recommended(pb.RecommendedItem(), rank, item, cand, just)


def add_recommended(reply, recommendations) -> None:
    """Appends (item, candidate, justification) triples to `reply.items` in rank order, built in place
    (no per-item message copied into the list afterwards)."""
    for n, (item, cand, just) in enumerate(recommendations, 1):
        _fill_recommended(reply.items.add(), n, item, cand, just)


def explanation_to_proto(item: Item, cand: Candidate, just: "Justification") -> pb.ItemExplanation:
    return pb.ItemExplanation(item=item_to_proto(item), score=cand.score, evidence=evidence_to_proto(cand),
                              justification=justification_to_proto(just))


def history_query_from_proto(req: pb.GetHistoryRequest, cfg: "ServerConfig") -> tuple[str, int]:
    limit = req.limit or 50
    if not 1 <= limit <= cfg.limits.max_ids:
        raise InvalidInput("limit", f"must be in 1..{cfg.limits.max_ids} (got {req.limit})")
    return check_id(req.user_id, "user_id"), limit


def item_ids_from_proto(req: pb.GetItemsRequest, cfg: "ServerConfig") -> tuple[str, ...]:
    if not req.item_ids:
        raise InvalidInput("item_ids", "give at least one item id")
    return check_ids(req.item_ids, "item_ids", cfg.limits.max_ids)


def history_to_proto(entries: Sequence[tuple[Event, Item]], total: int, request_id: str) -> pb.GetHistoryResponse:
    return pb.GetHistoryResponse(request_id=request_id, total=total, entries=[
        pb.HistoryEntry(item=item_to_proto(item), kind=e.kind, ts=e.ts) for e, item in entries])
