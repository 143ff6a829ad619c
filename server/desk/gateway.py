"""Async calls to the ExplainRec gRPC service for the desk page and the MCP tools, with replies
turned into plain JSON-ready dicts. The caller's bearer token is passed through per call, so
the service's own auth (and its token scopes) decides what a desk user may do."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.explainrec.v1 import explainrec_pb2 as pb
from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
from server.targets import channel_target
from server.tls import ClientTLS, connect_failure_reason

FEEDBACK_KINDS = {"click": pb.FEEDBACK_KIND_CLICK, "purchase": pb.FEEDBACK_KIND_PURCHASE,
                  "dismiss": pb.FEEDBACK_KIND_DISMISS, "rating": pb.FEEDBACK_KIND_RATING}
HELPFUL = {None: pb.HELPFULNESS_UNSPECIFIED, True: pb.HELPFULNESS_HELPFUL, False: pb.HELPFULNESS_NOT_HELPFUL}


@dataclass
class Filters:
    """What a desk search asks for; mirrors the RecommendRequest fields."""

    user_id: str = ""
    query: str = ""
    similar_to: str = ""
    min_price: float | None = None
    max_price: float | None = None
    brands: list[str] = field(default_factory=list)
    exclude_brands: list[str] = field(default_factory=list)
    category: str = ""
    k: int = 10

    def to_request(self) -> pb.RecommendRequest:
        req = pb.RecommendRequest(user_id=self.user_id, query=self.query, k=self.k, category=self.category,
                                  similar_to_item_id=self.similar_to, brands=list(self.brands),
                                  exclude_brands=list(self.exclude_brands))
        if self.min_price is not None:
            req.min_price = self.min_price
        if self.max_price is not None:
            req.max_price = self.max_price
        return req

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "", [])}


# -- proto -> dict ------------------------------------------------------------------------------
def item_dict(p: pb.Item) -> dict:
    return {"id": p.id, "title": p.title, "category": p.category, "brand": p.brand,
            "price": p.price if p.HasField("price") else None, "description": p.description,
            "attributes": dict(p.attributes)}


def justification_dict(j: pb.Justification) -> dict:
    return {"text": j.text, "source": j.source, "template": j.template, "model": j.model,
            "evidence_ids": list(j.evidence_ids), "facts": list(j.facts), "fallback_reason": j.fallback_reason}


def recommended_dict(r: pb.RecommendedItem) -> dict:
    out = {"rank": r.rank, "item": item_dict(r.item), "score": round(r.score, 6),
           "evidence": [{"item_id": e.item_id, "similarity": round(e.similarity, 4), "shared": list(e.shared)}
                        for e in r.evidence]}
    if r.HasField("query_match"):
        out["query_match"] = round(r.query_match, 4)
    if r.HasField("justification"):
        out["justification"] = justification_dict(r.justification)
    return out


class ServiceUnreachable(RuntimeError):
    """The desk cannot talk to the service because of how it is configured (TLS on one side only,
    the wrong CA, a missing client certificate, a certificate for another host)."""


class Gateway:
    """One channel to the service, shared by every desk request. `tls` is what the CLI client takes
    (CA, and for mutual TLS a client certificate and key); without it the channel is plaintext."""

    def __init__(self, target: str, tls: ClientTLS | None = None, max_message_bytes: int = 4 * 1024 * 1024):
        self.tls = tls or ClientTLS()
        resolved, balancing = channel_target(target)
        options = [("grpc.max_receive_message_length", max_message_bytes), *balancing]
        if self.tls.enabled:
            self.channel = grpc.aio.secure_channel(resolved, self.tls.credentials(),
                                                   options=options + self.tls.channel_options())
        else:
            self.channel = grpc.aio.insecure_channel(resolved, options=options)
        self.stub = pb_grpc.ExplainRecStub(self.channel)
        self.target = target

    def explain_failure(self, err: grpc.aio.AioRpcError) -> str | None:
        """Plain words when a call failed because TLS is misconfigured on the desk's side."""
        if err.code() != grpc.StatusCode.UNAVAILABLE:
            return None
        return connect_failure_reason(err.details() or "", self.tls, self.target)

    async def probe(self, timeout_s: float = 5.0) -> str:
        """One health check (open to every caller): the service's status, "" when nothing answers
        yet (the page may start before the service). Raises ServiceUnreachable, with the setting to
        fix, when the connection fails because of TLS."""
        try:
            reply = await health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            reason = self.explain_failure(err)
            if reason is not None:
                raise ServiceUnreachable(f"support desk -> gRPC {self.target}: {reason}") from None
            return ""
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    @staticmethod
    def _md(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def history(self, user_id: str, limit: int = 50, token: str = "", timeout_s: float = 10.0) -> dict:
        reply = await self.stub.GetHistory(pb.GetHistoryRequest(user_id=user_id, limit=limit),
                                           metadata=self._md(token), timeout=timeout_s)
        return {"user_id": user_id, "total": reply.total, "request_id": reply.request_id,
                "entries": [{"item": item_dict(e.item), "kind": e.kind, "ts": e.ts} for e in reply.entries]}

    async def items(self, item_ids: Sequence[str], token: str = "", timeout_s: float = 10.0) -> list[dict]:
        reply = await self.stub.GetItems(pb.GetItemsRequest(item_ids=list(item_ids)),
                                         metadata=self._md(token), timeout=timeout_s)
        return [item_dict(i) for i in reply.items]

    async def recommend(self, f: Filters, explain: bool = False, token: str = "", timeout_s: float = 60.0) -> dict:
        req = f.to_request()
        req.explain = explain
        reply = await self.stub.Recommend(req, metadata=self._md(token), timeout=timeout_s)
        return {"request_id": reply.request_id, "excluded_no_price": reply.excluded_no_price,
                "items": [recommended_dict(r) for r in reply.items]}

    async def explain(self, user_id: str, item_ids: Sequence[str], query: str = "", token: str = "",
                      timeout_s: float = 60.0) -> dict:
        reply = await self.stub.Explain(pb.ExplainRequest(user_id=user_id, item_ids=list(item_ids), query=query),
                                        metadata=self._md(token), timeout=timeout_s)
        return {"request_id": reply.request_id, "explanations": [
            {"item": item_dict(e.item), "score": round(e.score, 6), "justification": justification_dict(e.justification),
             "evidence": [{"item_id": v.item_id, "shared": list(v.shared)} for v in e.evidence]}
            for e in reply.explanations]}

    async def stream(self, f: Filters, token: str = "", timeout_s: float = 120.0) -> AsyncIterator[tuple[str, dict]]:
        """("ranked", {...}) first, then ("chunk", {item_id, delta}) and ("final", {item_id, justification})."""
        call = self.stub.StreamRecommend(f.to_request(), metadata=self._md(token), timeout=timeout_s)
        try:
            async for msg in call:
                kind = msg.WhichOneof("event")
                if kind == "ranked":
                    yield "ranked", {"request_id": msg.ranked.request_id,
                                     "excluded_no_price": msg.ranked.excluded_no_price,
                                     "items": [recommended_dict(r) for r in msg.ranked.items]}
                elif kind == "chunk":
                    yield "chunk", {"item_id": msg.chunk.item_id, "delta": msg.chunk.delta}
                elif kind == "final":
                    yield "final", {"item_id": msg.final.item_id,
                                    "justification": justification_dict(msg.final.justification)}
        finally:
            call.cancel()    # the page went away: stop the LLM work behind it

    async def feedback(self, user_id: str, item_id: str, kind: str, helpful: bool | None = None, reason: str = "",
                       request_id: str = "", token: str = "", timeout_s: float = 10.0) -> int:
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"kind must be one of {sorted(FEEDBACK_KINDS)} (got {kind!r})")
        req = pb.SubmitFeedbackRequest(user_id=user_id, item_id=item_id, kind=FEEDBACK_KINDS[kind],
                                       helpful=HELPFUL[helpful], reason=reason, request_id=request_id)
        reply = await self.stub.SubmitFeedback(req, metadata=self._md(token), timeout=timeout_s)
        return reply.feedback_id

    async def close(self) -> None:
        await self.channel.close()


def strictly_below(price: float) -> float:
    """The largest bound that keeps only items cheaper than `price` (max_price is inclusive)."""
    return math.nextafter(price, 0.0)


def strictly_above(price: float) -> float:
    return math.nextafter(price, math.inf)
