"""A Recommend reply without justifications as wire bytes, built in the ranking thread from cached
per-item bytes: the event loop only writes the call's header and hands the bytes to gRPC.

Building the reply's messages on the event loop (copying each item's message, adding evidence,
then serializing the whole) took ~14% of the server's GIL samples at 64 clients, and each resumed
caller did it in its loop turn (README, Performance: event-loop lag). The protobuf wire format
lets a message be written as its fields' encodings one after the other, in any order, and a
parser reads them back as one message. So a RecommendResponse is written as

    header: a RecommendResponse holding only request_id, model_version and excluded_no_price
            (the call's own values, serialized on the loop: `response_bytes`)
    + per item, the `items` field (tag, length, then a RecommendedItem written as
        a RecommendedItem holding rank, score, evidence and query_match, serialized per call
        + the `item` field: tag, length and the pb.Item's bytes, cached per Item object).

Parsed, it equals the message `server.convert.add_recommended` builds (tests/test_reply_bytes.py).
The tags and lengths come from protobuf's own encoder helpers.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Sequence

from google.protobuf.internal.encoder import TagBytes, _VarintBytes
from google.protobuf.internal.wire_format import WIRETYPE_FIXED32, WIRETYPE_LENGTH_DELIMITED, WIRETYPE_VARINT

from protos.explainrec.v1 import explainrec_pb2 as pb
from server.convert import item_to_proto

if TYPE_CHECKING:
    from explainer.pipeline import Recommendation
    from ranker.types import HistoryEvidence
    from store.catalog import Item

_ITEMS_TAG = TagBytes(pb.RecommendResponse.DESCRIPTOR.fields_by_name["items"].number, WIRETYPE_LENGTH_DELIMITED)
_RECOMMENDED = pb.RecommendedItem.DESCRIPTOR.fields_by_name
_ITEM_TAG = TagBytes(_RECOMMENDED["item"].number, WIRETYPE_LENGTH_DELIMITED)
_EVIDENCE_TAG = TagBytes(_RECOMMENDED["evidence"].number, WIRETYPE_LENGTH_DELIMITED)
_SCORE_TAG = TagBytes(_RECOMMENDED["score"].number, WIRETYPE_FIXED32)
_QUERY_MATCH_TAG = TagBytes(_RECOMMENDED["query_match"].number, WIRETYPE_FIXED32)
_RANK_FIELDS = [b""] + [TagBytes(_RECOMMENDED["rank"].number, WIRETYPE_VARINT) + _VarintBytes(r) for r in range(1, 1025)]
_FLOAT = struct.Struct("<f").pack


def _field(tag: bytes, payload: bytes) -> bytes:
    """One length-delimited field: its tag, its length as a varint, its bytes."""
    return tag + _VarintBytes(len(payload)) + payload


_ITEM_FIELDS: dict[str, tuple["Item", bytes]] = {}
_ITEM_FIELDS_MAX = 200_000


def item_field_bytes(item: "Item") -> bytes:
    """The RecommendedItem's `item` field for this item, built once per Item object: the ranker serves
    the same Item objects call after call, and an upsert makes a new one (so a changed item is
    encoded again). Read and written from several ranking threads: each dict operation is atomic,
    and a lost race only encodes an item twice."""
    hit = _ITEM_FIELDS.get(item.id)
    if hit is not None and hit[0] is item:
        return hit[1]
    if len(_ITEM_FIELDS) >= _ITEM_FIELDS_MAX:
        _ITEM_FIELDS.clear()
    encoded = _field(_ITEM_TAG, item_to_proto(item).SerializeToString())
    _ITEM_FIELDS[item.id] = (item, encoded)
    return encoded


_EVIDENCE_FIELDS: dict[int, tuple["HistoryEvidence", bytes]] = {}
_EVIDENCE_FIELDS_MAX = 500_000


def evidence_field_bytes(e: "HistoryEvidence") -> bytes:
    """A RecommendedItem's `evidence` field for this HistoryEvidence object, built once per object:
    the ranker memoises a (candidate, history item) pair's evidence (ranker.evidence) and cites the
    same objects call after call. Keyed by the object's id with the object held beside its bytes, so
    the id cannot be reused while the entry lives."""
    hit = _EVIDENCE_FIELDS.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    if len(_EVIDENCE_FIELDS) >= _EVIDENCE_FIELDS_MAX:
        _EVIDENCE_FIELDS.clear()
    encoded = _field(_EVIDENCE_TAG, pb.Evidence(item_id=e.item_id, similarity=e.similarity,
                                                shared=e.shared).SerializeToString())
    _EVIDENCE_FIELDS[id(e)] = (e, encoded)
    return encoded


def _own_fields(rank: int, score: float, query_match: float | None, evidence) -> bytes:
    """A RecommendedItem's fields other than `item`: rank, score, query_match, evidence, written
    field by field (one message and its evidence messages built per item cost ~6 us here)."""
    if rank >= len(_RANK_FIELDS) or not (-3.4e38 < score < 3.4e38) or (
            query_match is not None and not -3.4e38 < query_match < 3.4e38):
        # out of the precomputed ranks or float32's range (protobuf writes inf, struct refuses)
        head = pb.RecommendedItem(rank=rank, score=score, query_match=query_match)
        for e in evidence:
            head.evidence.add(item_id=e.item_id, similarity=e.similarity, shared=e.shared)
        return head.SerializeToString()
    parts = [_RANK_FIELDS[rank]]
    if score:                 # proto3: a zero score is not written
        parts += (_SCORE_TAG, _FLOAT(score))
    if query_match is not None:
        parts += (_QUERY_MATCH_TAG, _FLOAT(query_match))
    parts += [evidence_field_bytes(e) for e in evidence]
    return b"".join(parts)


def items_bytes(recommendations: Sequence["Recommendation"]) -> bytes:
    """The `items` fields of a RecommendResponse for recommendations in rank order, their
    justifications left out (what `convert.add_recommended` builds for them, as bytes)."""
    parts: list[bytes] = []
    for rank, r in enumerate(recommendations, 1):
        cand = r.candidate
        own = _own_fields(rank, cand.score, cand.query_match, cand.evidence)
        item = item_field_bytes(r.item)
        parts += (_ITEMS_TAG, _VarintBytes(len(own) + len(item)), own, item)
    return b"".join(parts)


def response_bytes(request_id: str, model_version: str, excluded_no_price: int, items: bytes) -> bytes:
    """The whole RecommendResponse: the call's header fields, then the items from `items_bytes`."""
    header = pb.RecommendResponse(request_id=request_id, model_version=model_version,
                                  excluded_no_price=excluded_no_price)
    return header.SerializeToString() + items
