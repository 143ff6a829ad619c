from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedbackKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_KIND_UNSPECIFIED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_CLICK: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_PURCHASE: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_DISMISS: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_RATING: _ClassVar[FeedbackKind]

class Helpfulness(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HELPFULNESS_UNSPECIFIED: _ClassVar[Helpfulness]
    HELPFULNESS_HELPFUL: _ClassVar[Helpfulness]
    HELPFULNESS_NOT_HELPFUL: _ClassVar[Helpfulness]
FEEDBACK_KIND_UNSPECIFIED: FeedbackKind
FEEDBACK_KIND_CLICK: FeedbackKind
FEEDBACK_KIND_PURCHASE: FeedbackKind
FEEDBACK_KIND_DISMISS: FeedbackKind
FEEDBACK_KIND_RATING: FeedbackKind
HELPFULNESS_UNSPECIFIED: Helpfulness
HELPFULNESS_HELPFUL: Helpfulness
HELPFULNESS_NOT_HELPFUL: Helpfulness

class Item(_message.Message):
    __slots__ = ("id", "title", "category", "brand", "price", "description", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    category: str
    brand: str
    price: float
    description: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., category: _Optional[str] = ..., brand: _Optional[str] = ..., price: _Optional[float] = ..., description: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("item_id", "similarity", "shared")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    similarity: float
    shared: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., similarity: _Optional[float] = ..., shared: _Optional[_Iterable[str]] = ...) -> None: ...

class Justification(_message.Message):
    __slots__ = ("text", "source", "template", "model", "evidence_ids", "facts", "fallback_reason", "failed_rules", "cached")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_IDS_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_RULES_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    text: str
    source: str
    template: str
    model: str
    evidence_ids: _containers.RepeatedScalarFieldContainer[str]
    facts: _containers.RepeatedScalarFieldContainer[str]
    fallback_reason: str
    failed_rules: _containers.RepeatedScalarFieldContainer[str]
    cached: bool
    def __init__(self, text: _Optional[str] = ..., source: _Optional[str] = ..., template: _Optional[str] = ..., model: _Optional[str] = ..., evidence_ids: _Optional[_Iterable[str]] = ..., facts: _Optional[_Iterable[str]] = ..., fallback_reason: _Optional[str] = ..., failed_rules: _Optional[_Iterable[str]] = ..., cached: _Optional[bool] = ...) -> None: ...

class RecommendedItem(_message.Message):
    __slots__ = ("rank", "item", "score", "evidence", "query_match", "justification")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    QUERY_MATCH_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    rank: int
    item: Item
    score: float
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    query_match: float
    justification: Justification
    def __init__(self, rank: _Optional[int] = ..., item: _Optional[_Union[Item, _Mapping]] = ..., score: _Optional[float] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ..., query_match: _Optional[float] = ..., justification: _Optional[_Union[Justification, _Mapping]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "history", "query", "k", "category", "exclude_item_ids", "explain", "include_history", "similar_to_item_id", "min_price", "max_price", "brands", "exclude_brands")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_HISTORY_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_TO_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_BRANDS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    history: _containers.RepeatedScalarFieldContainer[str]
    query: str
    k: int
    category: str
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    explain: bool
    include_history: bool
    similar_to_item_id: str
    min_price: float
    max_price: float
    brands: _containers.RepeatedScalarFieldContainer[str]
    exclude_brands: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., history: _Optional[_Iterable[str]] = ..., query: _Optional[str] = ..., k: _Optional[int] = ..., category: _Optional[str] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., explain: _Optional[bool] = ..., include_history: _Optional[bool] = ..., similar_to_item_id: _Optional[str] = ..., min_price: _Optional[float] = ..., max_price: _Optional[float] = ..., brands: _Optional[_Iterable[str]] = ..., exclude_brands: _Optional[_Iterable[str]] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("request_id", "items", "excluded_no_price", "model_version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_NO_PRICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    excluded_no_price: int
    model_version: str
    def __init__(self, request_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., excluded_no_price: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class RankedList(_message.Message):
    __slots__ = ("request_id", "items", "excluded_no_price", "model_version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_NO_PRICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    items: _containers.RepeatedCompositeFieldContainer[RecommendedItem]
    excluded_no_price: int
    model_version: str
    def __init__(self, request_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[RecommendedItem, _Mapping]]] = ..., excluded_no_price: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class JustificationChunk(_message.Message):
    __slots__ = ("item_id", "delta")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    delta: str
    def __init__(self, item_id: _Optional[str] = ..., delta: _Optional[str] = ...) -> None: ...

class FinalJustification(_message.Message):
    __slots__ = ("item_id", "justification")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    justification: Justification
    def __init__(self, item_id: _Optional[str] = ..., justification: _Optional[_Union[Justification, _Mapping]] = ...) -> None: ...

class StreamRecommendResponse(_message.Message):
    __slots__ = ("ranked", "chunk", "final")
    RANKED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ranked: RankedList
    chunk: JustificationChunk
    final: FinalJustification
    def __init__(self, ranked: _Optional[_Union[RankedList, _Mapping]] = ..., chunk: _Optional[_Union[JustificationChunk, _Mapping]] = ..., final: _Optional[_Union[FinalJustification, _Mapping]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("user_id", "history", "item_ids", "query")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    history: _containers.RepeatedScalarFieldContainer[str]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    query: str
    def __init__(self, user_id: _Optional[str] = ..., history: _Optional[_Iterable[str]] = ..., item_ids: _Optional[_Iterable[str]] = ..., query: _Optional[str] = ...) -> None: ...

class ItemExplanation(_message.Message):
    __slots__ = ("item", "score", "evidence", "justification")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    item: Item
    score: float
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    justification: Justification
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., score: _Optional[float] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ..., justification: _Optional[_Union[Justification, _Mapping]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("request_id", "explanations", "model_version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    explanations: _containers.RepeatedCompositeFieldContainer[ItemExplanation]
    model_version: str
    def __init__(self, request_id: _Optional[str] = ..., explanations: _Optional[_Iterable[_Union[ItemExplanation, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class ExplainBatchRequest(_message.Message):
    __slots__ = ("key", "request")
    KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    key: str
    request: ExplainRequest
    def __init__(self, key: _Optional[str] = ..., request: _Optional[_Union[ExplainRequest, _Mapping]] = ...) -> None: ...

class BatchError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ExplainBatchResponse(_message.Message):
    __slots__ = ("key", "result", "error")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    key: str
    result: ExplainResponse
    error: BatchError
    def __init__(self, key: _Optional[str] = ..., result: _Optional[_Union[ExplainResponse, _Mapping]] = ..., error: _Optional[_Union[BatchError, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("user_id", "item_id", "kind", "ts")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    kind: str
    ts: float
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., kind: _Optional[str] = ..., ts: _Optional[float] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("events", "idempotency_key")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    idempotency_key: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("user_id", "item_id", "kind", "helpful", "reason", "request_id", "idempotency_key")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HELPFUL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    kind: FeedbackKind
    helpful: Helpfulness
    reason: str
    request_id: str
    idempotency_key: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., kind: _Optional[_Union[FeedbackKind, str]] = ..., helpful: _Optional[_Union[Helpfulness, str]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("feedback_id",)
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    feedback_id: int
    def __init__(self, feedback_id: _Optional[int] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("user_id", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("item", "kind", "ts")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    item: Item
    kind: str
    ts: float
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., kind: _Optional[str] = ..., ts: _Optional[float] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("request_id", "entries", "total")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    total: int
    def __init__(self, request_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetItemsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetItemsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class UpsertItemsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class UpsertItemsResponse(_message.Message):
    __slots__ = ("upserted",)
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    def __init__(self, upserted: _Optional[int] = ...) -> None: ...

class DeleteItemsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteItemsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...
