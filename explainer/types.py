"""What the explainer returns. Shared with the server and the batch job."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Source(enum.StrEnum):
    """Who wrote a justification's text (a str: compares, prints and serialises as its value)."""
    LLM = "llm"
    TEMPLATE = "template"


class FallbackReason(enum.StrEnum):
    """Why the template answered instead of the LLM ("" on an LLM justification)."""
    LLM_UNAVAILABLE = "llm_unavailable"   # server down, HTTP error, or per-call timeout
    DEADLINE = "deadline"                 # the request's deadline passed before a verified sample came back
    VERIFIER = "verifier"                 # every sample failed the strict verifier
    DISABLED = "disabled"                 # the LLM is switched off (config.enabled = False / explain_template)
    # no link with the history: the template states the weak reason as it is (explainer.links.weak_reason);
    # the model is not asked, as it words "a few shoppers" or "our model" no better and may overstate them
    WEAK_REASON = "weak_reason"
    # no link with the history, and the item matches the shopper's text query: the template states the match
    # (explainer.search_match); the model is not asked, for the same reason
    SEARCH = "search"


# the names the code has always used
SOURCE_LLM = Source.LLM
SOURCE_TEMPLATE = Source.TEMPLATE
FALLBACK_LLM_UNAVAILABLE = FallbackReason.LLM_UNAVAILABLE
FALLBACK_DEADLINE = FallbackReason.DEADLINE
FALLBACK_VERIFIER = FallbackReason.VERIFIER
FALLBACK_DISABLED = FallbackReason.DISABLED
FALLBACK_WEAK_REASON = FallbackReason.WEAK_REASON
FALLBACK_SEARCH = FallbackReason.SEARCH


@dataclass(frozen=True)
class Justification:
    item_id: str
    text: str
    source: Source                 # "llm" or "template"
    template: str                  # "name@version" of the prompt (llm) or of the deterministic template
    model: str                     # served model name, "" when source == "template"
    evidence_ids: tuple[str, ...]  # history item ids the text relies on
    facts: tuple[str, ...]         # the computed facts the text verbalises
    failed_rules: tuple[str, ...] = ()   # rules the LLM samples broke before this was chosen (audit)
    fallback_reason: FallbackReason | str = ""      # why the template was used: "llm_unavailable", "deadline", "verifier", "disabled"
    cached: bool = False           # returned from the justification cache: no LLM call was made for it


@dataclass(frozen=True)
class StreamEvent:
    """One streamed chunk of an item's text, or (final is not None) its verified justification."""

    item_id: str
    delta: str = ""
    final: Justification | None = None
