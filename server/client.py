"""A small typed Python client for the ExplainRec service.

    with ExplainRecClient("127.0.0.1:50051") as c:
        reply = c.recommend(user_id="A1B2", k=5, explain=True, timeout_s=10)
        for it in reply.items: print(it.rank, it.item.title, it.justification.text)

Several replicas: `ExplainRecClient("10.0.0.1:50051,10.0.0.2:50051")` or
`ExplainRecClient("dns:///explainrec-headless:50051")` balances calls round-robin over the
replicas that report SERVING (see `server.targets`); a call that meets a replica as it dies is
retried on another.

Every call has a deadline (`timeout_s`, default from the client). Only calls that are safe to
repeat are retried, with exponential back-off on UNAVAILABLE (server starting, draining or
unreachable; the first attempt may still have been applied) while the deadline allows:
reads (Recommend, Explain), UpsertItems (same content, same result), and RecordEvents /
SubmitFeedback, which the client sends with an idempotency key (one per logical call, the same
on every attempt) so that the server writes them once. DeleteItems is not retried: a repeat of
an applied delete would report NOT_FOUND. Streams are not retried.
"""
from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.explainrec.v1 import explainrec_pb2 as pb
from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
from server.targets import channel_target
from server.tls import ClientTLS

FEEDBACK_KINDS = {"click": pb.FEEDBACK_KIND_CLICK, "purchase": pb.FEEDBACK_KIND_PURCHASE,
                  "dismiss": pb.FEEDBACK_KIND_DISMISS, "rating": pb.FEEDBACK_KIND_RATING}


@dataclass
class ClientConfig:
    target: str = "127.0.0.1:50051"
    """host:port of the service; several, comma-separated, or dns:///name:port: round-robin."""
    token: str = ""
    """Bearer token, when the server requires one."""
    tls_ca_file: str = ""
    """PEM root certificate(s) to trust: set it to talk TLS."""
    tls_cert_file: str = ""
    """PEM client certificate, for a server that asks for mutual TLS (with tls_key_file)."""
    tls_key_file: str = ""
    """PEM private key of tls_cert_file."""
    timeout_s: float = 10.0
    """Default deadline of each call, seconds (retries included)."""
    retries: int = 4
    """Extra attempts after an UNAVAILABLE, within the deadline."""
    backoff_s: float = 0.1
    """First back-off; doubles per attempt, with jitter."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest message received."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 (got {self.timeout_s})")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0 (got {self.retries})")


class ExplainRecClient:
    def __init__(self, target: str | ClientConfig = "127.0.0.1:50051", **kwargs):
        self.config = target if isinstance(target, ClientConfig) else ClientConfig(target=target, **kwargs)
        c = self.config
        target, balancing = channel_target(c.target)
        options = [("grpc.max_receive_message_length", c.max_message_bytes), *balancing]
        tls = ClientTLS(c.tls_ca_file, c.tls_cert_file, c.tls_key_file)   # the desk and MCP tools use the same
        if tls.enabled:
            self.channel = grpc.secure_channel(target, tls.credentials(), options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.ExplainRecStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)
        self.last_request_id = ""

    # -- plumbing -------------------------------------------------------------------------
    def _metadata(self, request_id: str = "") -> list[tuple[str, str]]:
        md = [("authorization", f"Bearer {self.config.token}")] if self.config.token else []
        if request_id:
            md.append(("x-request-id", request_id))
        return md

    def _call(self, method, request, timeout_s: float | None, request_id: str = "", retry: bool = True):
        """Unary call with one deadline across retries on UNAVAILABLE; retry=False for calls that are
        not safe to repeat."""
        deadline = time.monotonic() + (timeout_s or self.config.timeout_s)
        backoff = self.config.backoff_s
        attempts = self.config.retries + 1 if retry else 1
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            try:
                reply, call = method.with_call(request, timeout=max(remaining, 0.001),
                                               metadata=self._metadata(request_id))
                self.last_request_id = dict(call.trailing_metadata() or ()).get("x-request-id", "")
                return reply
            except grpc.RpcError as err:
                self.last_request_id = dict(err.trailing_metadata() or ()).get("x-request-id", "")
                pause = backoff * (1 + random.random())
                if (err.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts - 1
                        or deadline - time.monotonic() <= pause):
                    raise
                time.sleep(pause)
                backoff *= 2
        raise AssertionError("unreachable")

    # -- the calls --------------------------------------------------------------------------
    @staticmethod
    def recommend_request(user_id: str = "", history: Sequence[str] = (), query: str = "", k: int = 10,
                          category: str = "", exclude: Sequence[str] = (), explain: bool = False,
                          include_history: bool = False, *, similar_to: str = "", min_price: float | None = None,
                          max_price: float | None = None, brands: Sequence[str] = (),
                          exclude_brands: Sequence[str] = ()) -> pb.RecommendRequest:
        req = pb.RecommendRequest(user_id=user_id, history=list(history), query=query, k=k, category=category,
                                  exclude_item_ids=list(exclude), explain=explain, include_history=include_history,
                                  similar_to_item_id=similar_to, brands=list(brands),
                                  exclude_brands=list(exclude_brands))
        if min_price is not None:
            req.min_price = min_price
        if max_price is not None:
            req.max_price = max_price
        return req

    def recommend(self, user_id: str = "", history: Sequence[str] = (), query: str = "", k: int = 10,
                  category: str = "", exclude: Sequence[str] = (), explain: bool = False,
                  include_history: bool = False, timeout_s: float | None = None,
                  request_id: str = "", **filters) -> pb.RecommendResponse:
        """filters: similar_to, min_price, max_price, brands, exclude_brands (see RecommendRequest)."""
        req = self.recommend_request(user_id, history, query, k, category, exclude, explain, include_history,
                                     **filters)
        return self._call(self.stub.Recommend, req, timeout_s, request_id)

    def explain(self, item_ids: Sequence[str], user_id: str = "", history: Sequence[str] = (), query: str = "",
                timeout_s: float | None = None, request_id: str = "") -> pb.ExplainResponse:
        req = pb.ExplainRequest(user_id=user_id, history=list(history), item_ids=list(item_ids), query=query)
        return self._call(self.stub.Explain, req, timeout_s, request_id)

    def stream_recommend(self, user_id: str = "", history: Sequence[str] = (), query: str = "", k: int = 10,
                         category: str = "", exclude: Sequence[str] = (), timeout_s: float | None = None,
                         **filters) -> Iterator[pb.StreamRecommendResponse]:
        """The ranked list, then token chunks, then one final justification per item. Not retried:
        a stream that broke after its first message cannot be replayed transparently."""
        req = self.recommend_request(user_id, history, query, k, category, exclude, **filters)
        yield from self.stub.StreamRecommend(req, timeout=timeout_s or self.config.timeout_s,
                                             metadata=self._metadata())

    def explain_batch(self, requests: Iterable[tuple[str, pb.ExplainRequest]], timeout_s: float | None = None
                      ) -> Iterator[pb.ExplainBatchResponse]:
        """(key, request) pairs in; replies out as they finish, each with its key."""
        msgs = (pb.ExplainBatchRequest(key=key, request=req) for key, req in requests)
        yield from self.stub.ExplainBatch(msgs, timeout=timeout_s or self.config.timeout_s,
                                          metadata=self._metadata())

    def record_events(self, events: Iterable[tuple[str, str] | tuple[str, str, str]],
                      timeout_s: float | None = None, idempotency_key: str | None = None) -> int:
        """(user_id, item_id[, kind]) triples, time-stamped now. Retried under one idempotency key
        (a fresh one unless given): the events are recorded once."""
        now = time.time()
        pbs = [pb.Event(user_id=e[0], item_id=e[1], kind=e[2] if len(e) > 2 else "purchase", ts=now + i * 1e-6)
               for i, e in enumerate(events)]
        req = pb.RecordEventsRequest(events=pbs, idempotency_key=idempotency_key or uuid.uuid4().hex)
        return self._call(self.stub.RecordEvents, req, timeout_s).recorded

    def submit_feedback(self, user_id: str, item_id: str, kind: str = "rating", helpful: bool | None = None,
                        reason: str = "", request_id: str = "", timeout_s: float | None = None,
                        idempotency_key: str | None = None) -> int:
        """Retried under one idempotency key (a fresh one unless given): stored once, one feedback id."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"kind must be one of {sorted(FEEDBACK_KINDS)} (got {kind!r})")
        helpful_pb = {None: pb.HELPFULNESS_UNSPECIFIED, True: pb.HELPFULNESS_HELPFUL,
                      False: pb.HELPFULNESS_NOT_HELPFUL}[helpful]
        req = pb.SubmitFeedbackRequest(user_id=user_id, item_id=item_id, kind=FEEDBACK_KINDS[kind],
                                       helpful=helpful_pb, reason=reason, request_id=request_id,
                                       idempotency_key=idempotency_key or uuid.uuid4().hex)
        return self._call(self.stub.SubmitFeedback, req, timeout_s).feedback_id

    def history(self, user_id: str, limit: int = 50, timeout_s: float | None = None) -> pb.GetHistoryResponse:
        """The shopper's latest events with their items, newest first."""
        return self._call(self.stub.GetHistory, pb.GetHistoryRequest(user_id=user_id, limit=limit), timeout_s)

    def get_items(self, item_ids: Sequence[str], timeout_s: float | None = None) -> list[pb.Item]:
        return list(self._call(self.stub.GetItems, pb.GetItemsRequest(item_ids=list(item_ids)), timeout_s).items)

    def upsert_items(self, items: Sequence[pb.Item], timeout_s: float | None = None) -> int:
        return self._call(self.stub.UpsertItems, pb.UpsertItemsRequest(items=list(items)), timeout_s).upserted

    def delete_items(self, item_ids: Sequence[str], timeout_s: float | None = None) -> int:
        """Not retried: a repeat of a delete that was applied would report NOT_FOUND."""
        return self._call(self.stub.DeleteItems, pb.DeleteItemsRequest(item_ids=list(item_ids)), timeout_s,
                          retry=False).deleted

    def health(self, service: str = "", timeout_s: float | None = None) -> str:
        """'SERVING' / 'NOT_SERVING' / ...; health needs no token and is not retried."""
        reply = self.health_stub.Check(health_pb2.HealthCheckRequest(service=service),
                                       timeout=timeout_s or self.config.timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_until_serving(self, timeout_s: float = 600.0, poll_s: float = 0.5) -> None:
        end = time.monotonic() + timeout_s
        while True:
            try:
                if self.health(timeout_s=2.0) == "SERVING":
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{self.config.target} not SERVING after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "ExplainRecClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
