"""The one validation of a ranking request: one set of limits, the proto's field names in every error.

The ranker owns it: `Ranker.rank_many` (Recommend, StreamRecommend, the batcher) calls
`validate_query` and `Ranker.score_items` (Explain) calls `validate_explain`, once per request,
with the limits the server gives it (`ServerConfig.limits`); the server only converts the proto
(`server/convert.py`) and maps the InvalidInput to INVALID_ARGUMENT (`server/errors.py`). So a
request reads the same whether it comes over gRPC, from the batch job or from Python:
`k: must be in 1..100 (got 5000)`, `exclude_item_ids: at most 1000 ids (got 1200)`.
`RankQuery` attributes whose name differs from the proto field are reported by the proto name
(`text` -> `query`, `exclude` -> `exclude_item_ids`, `similar_to` -> `similar_to_item_id`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from core.errors import InvalidInput

if TYPE_CHECKING:
    from ranker.types import RankQuery


@dataclass(frozen=True)
class Limits:
    """The bounds of one request. The server takes them from its config (`ServerConfig.limits`)."""

    max_k: int = 100
    """Largest k, and most item ids to explain in one call."""
    max_id_chars: int = 128
    """Longest user or item id."""
    max_text_chars: int = 2000
    """Longest free-text query (and feedback reason)."""
    max_history: int = 500
    """Most inline history item ids."""
    max_ids: int = 1000
    """Most ids in exclude_item_ids, and most items / events / ids in one catalog call."""
    max_category_chars: int = 200
    """Longest category filter, and longest brand name in a brand filter."""
    max_brands: int = 100
    """Most names in brands or exclude_brands."""

    def __post_init__(self) -> None:
        for name in ("max_k", "max_id_chars", "max_text_chars", "max_history", "max_ids", "max_category_chars",
                     "max_brands"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")


DEFAULT_LIMITS = Limits()


def check_id(value: object, field: str, limits: Limits = DEFAULT_LIMITS) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, "must be a non-empty id")
    if len(value) > limits.max_id_chars or any(c.isspace() for c in value) or not value.isprintable():
        raise InvalidInput(field, f"must be a printable id of at most {limits.max_id_chars} characters without "
                                  f"spaces (got {value[:40]!r})")
    return value


def check_ids(values: Sequence[str], field: str, limit: int, limits: Limits = DEFAULT_LIMITS) -> tuple[str, ...]:
    if len(values) > limit:
        raise InvalidInput(field, f"at most {limit} ids (got {len(values)})")
    return tuple(check_id(v, f"{field}[{i}]", limits) for i, v in enumerate(values))


def check_text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be text (got {type(value).__name__})")
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters (got {len(value)})")
    return value


def check_price(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInput(field, f"must be a number >= 0 (got {value!r})")
    return float(value)


def check_brands(values: Sequence[str], field: str, limits: Limits = DEFAULT_LIMITS) -> tuple[str, ...]:
    if len(values) > limits.max_brands:
        raise InvalidInput(field, f"at most {limits.max_brands} brands (got {len(values)})")
    for n, b in enumerate(values):
        if not isinstance(b, str) or not b.strip() or len(b) > limits.max_category_chars or not b.isprintable():
            raise InvalidInput(f"{field}[{n}]",
                               f"must be a printable brand name of 1..{limits.max_category_chars} characters")
    return tuple(b.strip() for b in values)


def check_k(k: object, limits: Limits = DEFAULT_LIMITS) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limits.max_k:
        raise InvalidInput("k", f"must be in 1..{limits.max_k} (got {k!r})")
    return k


def check_item_ids(item_ids: Sequence[str], limits: Limits = DEFAULT_LIMITS) -> tuple[str, ...]:
    """The items of an Explain call ("why am I seeing these?")."""
    if not item_ids:
        raise InvalidInput("item_ids", "give at least one item id to explain")
    return check_ids(item_ids, "item_ids", limits.max_k, limits)


def validate_query(q: "RankQuery", limits: Limits = DEFAULT_LIMITS) -> "RankQuery":
    """Raises InvalidInput naming the proto field of the first bad part of the query; returns the
    query normalised (text and brand names stripped)."""
    if not q.user_id and not q.history and not (q.text or "").strip() and not q.similar_to:
        raise InvalidInput("user_id", "give a user_id, a history, a query or similar_to_item_id (all were empty)")
    check_k(q.k, limits)
    if q.user_id is not None:
        check_id(q.user_id, "user_id", limits)
    check_ids(q.history, "history", limits.max_history, limits)
    check_text(q.text, "query", limits.max_text_chars)
    check_text(q.category, "category", limits.max_category_chars)
    check_ids(q.exclude, "exclude_item_ids", limits.max_ids, limits)
    if q.similar_to:
        check_id(q.similar_to, "similar_to_item_id", limits)
    check_price(q.min_price, "min_price")
    check_price(q.max_price, "max_price")
    if q.min_price is not None and q.max_price is not None and q.min_price > q.max_price:
        raise InvalidInput("max_price", f"must be >= min_price {q.min_price} (got {q.max_price})")
    brands = check_brands(q.brands, "brands", limits)
    exclude_brands = check_brands(q.exclude_brands, "exclude_brands", limits)
    return dataclasses.replace(q, text=q.text.strip(), brands=brands, exclude_brands=exclude_brands)


def validate_explain(q: "RankQuery", item_ids: Sequence[str], limits: Limits = DEFAULT_LIMITS
                     ) -> tuple["RankQuery", tuple[str, ...]]:
    """Scoring given items ("why these?"): the item ids, then the query (as validate_query). The
    Explain RPC also needs a user or a history to explain against: its own rule, checked where the
    request is converted (server/convert.py); a Python caller may score items for a text alone.
    Returns both normalised."""
    ids = check_item_ids(item_ids, limits)
    return validate_query(q, limits), ids
