"""proto <-> domain conversion and request validation. Pure functions, no I/O.

Validation errors are `store.errors.InvalidInput(field, message)` naming the request field
(`k`, `history[3]`, `items[0].title`, ...); the error table turns them into INVALID_ARGUMENT.
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
from store.errors import InvalidInput

if TYPE_CHECKING:
    from explainer.types import Justification
    from server.config import ServerConfig

MAX_ID_CHARS = 128
MAX_BRANDS = 100

FEEDBACK_KINDS = {
    pb.FEEDBACK_KIND_CLICK: "click",
    pb.FEEDBACK_KIND_PURCHASE: "purchase",
    pb.FEEDBACK_KIND_DISMISS: "dismiss",
    pb.FEEDBACK_KIND_RATING: "rating",
}
HELPFUL = {pb.HELPFULNESS_UNSPECIFIED: None, pb.HELPFULNESS_HELPFUL: True, pb.HELPFULNESS_NOT_HELPFUL: False}


# -- validation helpers ----------------------------------------------------------
def _check_id(value: str, field: str) -> str:
    if not value or not value.strip():
        raise InvalidInput(field, "must be a non-empty id")
    if len(value) > MAX_ID_CHARS or any(c.isspace() for c in value) or not value.isprintable():
        raise InvalidInput(field, f"must be a printable id of at most {MAX_ID_CHARS} characters without spaces "
                                  f"(got {value[:40]!r})")
    return value


def _check_ids(values: Sequence[str], field: str, limit: int) -> tuple[str, ...]:
    if len(values) > limit:
        raise InvalidInput(field, f"at most {limit} ids (got {len(values)})")
    return tuple(_check_id(v, f"{field}[{i}]") for i, v in enumerate(values))


def _check_text(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters (got {len(value)})")
    return value


# -- requests -> domain ------------------------------------------------------------
def _check_price(req: pb.RecommendRequest, field: str) -> float | None:
    if not req.HasField(field):
        return None
    value = getattr(req, field)
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(field, f"must be a number >= 0 (got {value})")
    return value


def _check_brands(values: Sequence[str], field: str) -> tuple[str, ...]:
    if len(values) > MAX_BRANDS:
        raise InvalidInput(field, f"at most {MAX_BRANDS} brands (got {len(values)})")
    for i, v in enumerate(values):
        if not v.strip() or len(v) > 200 or not v.isprintable():
            raise InvalidInput(f"{field}[{i}]", "must be a printable brand name of 1..200 characters")
    return tuple(v.strip() for v in values)


def to_rank_query(req: pb.RecommendRequest, cfg: "ServerConfig") -> RankQuery:
    if not (req.user_id or req.history or req.query.strip() or req.similar_to_item_id):
        raise InvalidInput("user_id", "give a user_id, a history, a query or similar_to_item_id (all were empty)")
    min_price, max_price = _check_price(req, "min_price"), _check_price(req, "max_price")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidInput("max_price", f"must be >= min_price {min_price} (got {max_price})")
    k = req.k or cfg.default_k
    if not 1 <= k <= cfg.max_k:
        raise InvalidInput("k", f"must be in 1..{cfg.max_k} (got {req.k})")
    return RankQuery(
        user_id=_check_id(req.user_id, "user_id") if req.user_id else None,
        history=_check_ids(req.history, "history", cfg.max_history),
        text=_check_text(req.query, "query", cfg.max_text_chars).strip(),
        k=k,
        category=_check_text(req.category, "category", 200),
        exclude=_check_ids(req.exclude_item_ids, "exclude_item_ids", cfg.max_items_per_call),
        exclude_history=not req.include_history,
        similar_to=_check_id(req.similar_to_item_id, "similar_to_item_id") if req.similar_to_item_id else "",
        min_price=min_price, max_price=max_price,
        brands=_check_brands(req.brands, "brands"),
        exclude_brands=_check_brands(req.exclude_brands, "exclude_brands"),
    )


def to_explain_query(req: pb.ExplainRequest, cfg: "ServerConfig") -> tuple[RankQuery, tuple[str, ...]]:
    """The query that says whose history to use, and the item ids to justify."""
    if not req.item_ids:
        raise InvalidInput("item_ids", "give at least one item id to explain")
    if len(req.item_ids) > cfg.max_k:
        raise InvalidInput("item_ids", f"at most {cfg.max_k} items per call (got {len(req.item_ids)})")
    if not (req.user_id or req.history):
        raise InvalidInput("user_id", "give a user_id or a history to explain against (both were empty)")
    item_ids = _check_ids(req.item_ids, "item_ids", cfg.max_k)
    query = RankQuery(
        user_id=_check_id(req.user_id, "user_id") if req.user_id else None,
        history=_check_ids(req.history, "history", cfg.max_history),
        text=_check_text(req.query, "query", cfg.max_text_chars).strip(),
        k=len(item_ids), exclude_history=False,
    )
    return query, item_ids


def item_from_proto(p: pb.Item, field: str) -> Item:
    _check_id(p.id, f"{field}.id")
    if not p.title.strip():
        raise InvalidInput(f"{field}.title", "must not be empty")
    if p.HasField("price") and (math.isnan(p.price) or p.price < 0):
        raise InvalidInput(f"{field}.price", f"must be a non-negative number (got {p.price})")
    return Item(id=p.id, title=_check_text(p.title, f"{field}.title", 1000), category=p.category, brand=p.brand,
                price=p.price if p.HasField("price") else None,
                description=_check_text(p.description, f"{field}.description", 20000),
                attributes=dict(p.attributes))


def items_from_proto(req: pb.UpsertItemsRequest, cfg: "ServerConfig") -> list[Item]:
    if not req.items:
        raise InvalidInput("items", "give at least one item")
    if len(req.items) > cfg.max_items_per_call:
        raise InvalidInput("items", f"at most {cfg.max_items_per_call} items per call (got {len(req.items)})")
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
    return _check_ids(req.item_ids, "item_ids", cfg.max_items_per_call)


def events_from_proto(req: pb.RecordEventsRequest, cfg: "ServerConfig", now: float | None = None) -> list[Event]:
    if not req.events:
        raise InvalidInput("events", "give at least one event")
    if len(req.events) > cfg.max_items_per_call:
        raise InvalidInput("events", f"at most {cfg.max_items_per_call} events per call (got {len(req.events)})")
    now = time.time() if now is None else now
    out = []
    for i, e in enumerate(req.events):
        if not math.isfinite(e.ts) or e.ts < 0:
            raise InvalidInput(f"events[{i}].ts", f"must be unix seconds >= 0 (got {e.ts})")
        kind = e.kind or "purchase"
        if len(kind) > 32 or not kind.isidentifier():
            raise InvalidInput(f"events[{i}].kind", f"must be a short word like 'purchase' (got {kind[:40]!r})")
        out.append(Event(user_id=_check_id(e.user_id, f"events[{i}].user_id"),
                         item_id=_check_id(e.item_id, f"events[{i}].item_id"),
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
    return Feedback(user_id=_check_id(req.user_id, "user_id"), item_id=_check_id(req.item_id, "item_id"),
                    kind=FEEDBACK_KINDS[req.kind], helpful=HELPFUL[req.helpful],
                    reason=_check_text(req.reason, "reason", cfg.max_text_chars),
                    request_id=req.request_id[:MAX_ID_CHARS] or request_id)


# -- domain -> replies --------------------------------------------------------------
def item_to_proto(item: Item) -> pb.Item:
    p = pb.Item(id=item.id, title=item.title, category=item.category, brand=item.brand,
                description=item.description,
                attributes={str(k): v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                            for k, v in (item.attributes or {}).items()})
    if item.price is not None:
        p.price = item.price
    return p


def evidence_to_proto(c: Candidate) -> list[pb.Evidence]:
    return [pb.Evidence(item_id=e.item_id, similarity=e.similarity, shared=list(e.shared)) for e in c.evidence]


def justification_to_proto(j: "Justification") -> pb.Justification:
    return pb.Justification(text=j.text, source=j.source, template=j.template, model=j.model,
                            evidence_ids=list(j.evidence_ids), facts=list(j.facts),
                            fallback_reason=j.fallback_reason, failed_rules=list(j.failed_rules),
                            cached=j.cached)


def recommended_to_proto(rank: int, item: Item, cand: Candidate, just: "Justification | None") -> pb.RecommendedItem:
    p = pb.RecommendedItem(rank=rank, item=item_to_proto(item), score=cand.score, evidence=evidence_to_proto(cand))
    if cand.query_match is not None:
        p.query_match = cand.query_match
    if just is not None:
        p.justification.CopyFrom(justification_to_proto(just))
    return p


def explanation_to_proto(item: Item, cand: Candidate, just: "Justification") -> pb.ItemExplanation:
    return pb.ItemExplanation(item=item_to_proto(item), score=cand.score, evidence=evidence_to_proto(cand),
                              justification=justification_to_proto(just))


def history_query_from_proto(req: pb.GetHistoryRequest, cfg: "ServerConfig") -> tuple[str, int]:
    limit = req.limit or 50
    if not 1 <= limit <= cfg.max_items_per_call:
        raise InvalidInput("limit", f"must be in 1..{cfg.max_items_per_call} (got {req.limit})")
    return _check_id(req.user_id, "user_id"), limit


def item_ids_from_proto(req: pb.GetItemsRequest, cfg: "ServerConfig") -> tuple[str, ...]:
    if not req.item_ids:
        raise InvalidInput("item_ids", "give at least one item id")
    return _check_ids(req.item_ids, "item_ids", cfg.max_items_per_call)


def history_to_proto(entries: Sequence[tuple[Event, Item]], total: int, request_id: str) -> pb.GetHistoryResponse:
    return pb.GetHistoryResponse(request_id=request_id, total=total, entries=[
        pb.HistoryEntry(item=item_to_proto(item), kind=e.kind, ts=e.ts) for e, item in entries])
