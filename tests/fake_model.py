"""The fast tier's stand-in for MiniLM: a deterministic hashed bag of words.

`FakeEncoder` has the interface the ranker uses (`ranker.encoder.TextEncoder.encode`: texts ->
unit float32[n, 384]), so a real `Ranker`, index, explainer and gRPC server run on it; only the
sentence model is replaced. It needs neither torch nor sentence-transformers (importing those
and loading MiniLM costs 10-25 s here), and it encodes the 4,385 Scientific items in well under
a second.

Texts that share words get close vectors (each word and each of its character trigrams is
hashed to one of the 384 coordinates with a sign), so tests of "an item like the sanding roll
ranks the other sanding roll first" still mean something on it. What it cannot do is meaning
beyond spelling ("glue" near "adhesive"): tests of that use the real MiniLM and are marked slow.
"""
from __future__ import annotations

import functools
import hashlib
import re
from typing import Sequence

import numpy as np

DIM = 384                      # ranker.encoder.DIM: what ZeroShotScorer and the saved models expect
_WORD = re.compile(r"[a-z0-9]+")
_TRIGRAM_WEIGHT = 0.35         # a shared word counts more than a shared piece of one ("caliper"/"calipers")


@functools.lru_cache(maxsize=None)     # the vocabulary is small; hashing each occurrence is the cost
def _slot(token: str) -> tuple[int, float]:
    """(coordinate, sign) of a token; a stable hash (Python's hash() is salted per process)."""
    h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return h % DIM, (1.0 if (h >> 32) & 1 else -1.0)


class FakeEncoder:
    """Unit float32[n, 384] from hashed words and character trigrams; deterministic across runs."""

    name = "fake-hashed-bag-of-words"
    device = "cpu"

    def __init__(self) -> None:
        self.texts_encoded = 0   # texts actually hashed (a repeated text comes from the memo, like MiniLM's cache)
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], use_cache: bool = True) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            vec = self._memo.get(text) if use_cache else None
            if vec is None:
                vec = self._memo[text] = _vector(text)
                self.texts_encoded += 1
            out[row] = vec
        return out


@functools.lru_cache(maxsize=None)
def _word(word: str) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates, weights) one occurrence of a word adds: the word, then its trigrams."""
    padded = f"<{word}>"
    slots = [_slot("w:" + word)] + [_slot("t:" + padded[n:n + 3]) for n in range(len(padded) - 2)]
    cols = np.array([c for c, _ in slots], dtype=np.int64)
    vals = np.array([sign * (1.0 if n == 0 else _TRIGRAM_WEIGHT) for n, (_, sign) in enumerate(slots)],
                    dtype=np.float32)
    return cols, vals


def _vector(text: str) -> np.ndarray:
    vec = np.zeros(DIM, dtype=np.float32)
    words = _WORD.findall(text.lower())
    if words:
        parts = [_word(w) for w in words]
        np.add.at(vec, np.concatenate([c for c, _ in parts]), np.concatenate([v for _, v in parts]))
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0        # an empty text still gets a unit vector
        return vec
    return vec / norm
