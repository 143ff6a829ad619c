"""Catalog text as inert data: used by names, facts, prompts and the verifier."""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|<\|endoftext\|>", re.I)


def clean_text(text: str) -> str:
    """One line, no control characters, no chat special tokens, no double quotes."""
    text = _SPECIAL_TOKENS.sub(" ", text or "")
    text = _CONTROL.sub(" ", text).replace('"', "'").replace("`", "'")
    return re.sub(r"\s+", " ", text).strip()
