"""SASRec's training examples and model inputs from the project's split (ranker.data.SplitData).

As RecBole's sequential data augmentation: every prefix of a user's train sequence predicts the
item after it, reading at most the `max_len` most recent items of the prefix. Each example is a
row of its own (not one causal pass per user), so a long sequence's window slides with its positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


@dataclass
class Examples:
    seqs: np.ndarray        # long[E, max_len] item ids (row + 1), oldest first, right-padded with 0
    lengths: np.ndarray     # long[E] items in each row (>= 1)
    targets: np.ndarray     # long[E] the next item's id (row + 1)

    def __len__(self) -> int:
        return len(self.targets)


def pad_histories(histories: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Catalog rows, oldest first (each non-empty) -> (ids long[B, l] right-padded, lengths long[B]),
    keeping each history's `max_len` most recent items; l = the longest kept history."""
    kept = [np.asarray(h[-max_len:], dtype=np.int64) + 1 for h in histories]
    lengths = np.array([len(h) for h in kept], dtype=np.int64)
    if not len(kept) or lengths.min() < 1:
        raise ValueError("every history needs at least one item")
    seqs = np.zeros((len(kept), int(lengths.max())), dtype=np.int64)
    for b, h in enumerate(kept):
        seqs[b, :len(h)] = h
    return seqs, lengths


def prefix_examples(train_seqs: Sequence[np.ndarray], max_len: int) -> Examples:
    """Every (prefix -> next item) of every train sequence (catalog rows, oldest first)."""
    prefixes, targets = [], []
    for s in train_seqs:
        for i in range(1, len(s)):
            prefixes.append(s[max(0, i - max_len):i])
            targets.append(s[i])
    if not prefixes:
        raise ValueError("no training examples: every user has fewer than two train events")
    seqs, lengths = pad_histories(prefixes, max_len)
    return Examples(seqs, lengths, np.asarray(targets, dtype=np.int64) + 1)


def batches(ex: Examples, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One shuffled epoch: (seqs long[b, l], lengths long[b], targets long[b]), each batch cut to its longest row
    (padding past it is masked anyway, so this only saves time)."""
    order = rng.permutation(len(ex))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        lengths = ex.lengths[idx]
        yield ex.seqs[idx, :int(lengths.max())], lengths, ex.targets[idx]
