"""The ExplainRec servicer: a translator. request -> convert -> await the facade -> convert back.

Errors are not handled here beyond `translate_errors`, which applies the one error table.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from protos.explainrec.v1 import explainrec_pb2 as pb
from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc
from server import convert, reply_bytes
from server.app import RankedList
from server.context import current_model_version, current_request_id
from server.errors import NotReady, status_for, translate_errors

if TYPE_CHECKING:
    from server.app import RecService
    from server.config import ServerConfig
    from server.lifecycle import Lifecycle


class ExplainRecServicer(pb_grpc.ExplainRecServicer):
    def __init__(self, lifecycle: "Lifecycle", config: "ServerConfig"):
        self.lifecycle, self.config = lifecycle, config

    @property
    def service(self) -> "RecService":
        service = self.lifecycle.service
        if service is None:
            raise NotReady("the service is loading its models; retry shortly")
        return service

    @translate_errors
    async def Recommend(self, request, context):
        query = convert.to_rank_query(request, self.config)
        if not request.explain and self.config.reply_bytes:
            # the items are encoded in the ranking thread; the loop adds this call's own fields
            ranked = await self.service.recommend_counted(query, False, context.time_remaining(),
                                                          encode=reply_bytes.items_bytes)
            return reply_bytes.response_bytes(current_request_id(), current_model_version(),
                                              ranked.excluded_no_price, ranked.encoded or b"")
        ranked = await self.service.recommend_counted(query, request.explain, context.time_remaining())
        reply = pb.RecommendResponse(request_id=current_request_id(), model_version=current_model_version(),
                                     excluded_no_price=ranked.excluded_no_price)
        convert.add_recommended(reply, ((r.item, r.candidate, r.justification) for r in ranked.recommendations))
        return reply

    async def _explain(self, request: pb.ExplainRequest, context) -> pb.ExplainResponse:
        query, item_ids = convert.to_explain_query(request, self.config)
        recs = await self.service.explain(query, item_ids, context.time_remaining())
        return pb.ExplainResponse(
            request_id=current_request_id(), model_version=current_model_version(), explanations=[
            convert.explanation_to_proto(r.item, r.candidate, r.justification) for r in recs])

    @translate_errors
    async def Explain(self, request, context):
        return await self._explain(request, context)

    @translate_errors
    async def StreamRecommend(self, request, context):
        query = convert.to_rank_query(request, self.config)
        async for event in self.service.recommend_stream(query, context.time_remaining()):
            if isinstance(event, RankedList):
                yield pb.StreamRecommendResponse(ranked=pb.RankedList(
                    request_id=current_request_id(), model_version=current_model_version(),
                    excluded_no_price=event.excluded_no_price, items=[
                        convert.recommended_to_proto(n, r.item, r.candidate, None)
                        for n, r in enumerate(event.recommendations, 1)]))
            elif event.final is not None:
                yield pb.StreamRecommendResponse(final=pb.FinalJustification(
                    item_id=event.item_id, justification=convert.justification_to_proto(event.final)))
            elif event.delta:
                yield pb.StreamRecommendResponse(chunk=pb.JustificationChunk(item_id=event.item_id, delta=event.delta))

    @translate_errors
    async def ExplainBatch(self, request_iterator, context):
        """Up to `batch_concurrency` requests at once; each result (or error) goes out as soon as
        it is ready, tagged with the caller's key. One bad key does not end the stream."""
        results: asyncio.Queue = asyncio.Queue()
        slots = asyncio.Semaphore(self.config.batch_concurrency)
        rid = current_request_id()

        async def one(msg: pb.ExplainBatchRequest) -> None:
            try:
                reply = pb.ExplainBatchResponse(key=msg.key, result=await self._explain(msg.request, context))
            except Exception as exc:  # noqa: BLE001 - per-key status from the one table
                code, message = status_for(exc, f"{rid}/{msg.key}")
                reply = pb.ExplainBatchResponse(key=msg.key, error=pb.BatchError(code=code.value[0], message=message))
            finally:
                slots.release()
            await results.put(reply)

        async def read() -> None:
            tasks = set()
            try:
                async for msg in request_iterator:
                    await slots.acquire()     # back-pressure: stop reading while all slots are busy
                    task = asyncio.create_task(one(msg))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)   # a long stream keeps only what is in flight
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await results.put(None)

        reader = asyncio.create_task(read())
        try:
            while (reply := await results.get()) is not None:
                yield reply
            await reader    # re-raises a failure of the request stream
        finally:
            reader.cancel()

    @translate_errors
    async def RecordEvents(self, request, context):
        events = convert.events_from_proto(request, self.config)
        key, fingerprint = convert.idempotency_from_proto(request)
        return pb.RecordEventsResponse(recorded=await self.service.record_events(events, key, fingerprint))

    @translate_errors
    async def SubmitFeedback(self, request, context):
        fb = convert.feedback_from_proto(request, self.config, current_request_id())
        key, fingerprint = convert.idempotency_from_proto(request)
        return pb.SubmitFeedbackResponse(feedback_id=await self.service.submit_feedback(fb, key, fingerprint))

    @translate_errors
    async def GetHistory(self, request, context):
        user_id, limit = convert.history_query_from_proto(request, self.config)
        entries, total = await self.service.history(user_id, limit)
        return convert.history_to_proto(entries, total, current_request_id())

    @translate_errors
    async def GetItems(self, request, context):
        ids = convert.item_ids_from_proto(request, self.config)
        return pb.GetItemsResponse(items=[convert.item_to_proto(i) for i in await self.service.get_items(ids)])

    @translate_errors
    async def UpsertItems(self, request, context):
        items = convert.items_from_proto(request, self.config)
        return pb.UpsertItemsResponse(upserted=await self.service.upsert_items(items))

    @translate_errors
    async def DeleteItems(self, request, context):
        ids = convert.delete_ids_from_proto(request, self.config)
        return pb.DeleteItemsResponse(deleted=await self.service.delete_items(ids))
