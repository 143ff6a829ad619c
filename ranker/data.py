"""Sequences from the catalog, as item rows, for training and evaluation (the fixed UniSRec split).

Per user, oldest first: the train-split items (training: every prefix -> next item), then the
valid target (its history = the train items), then the test target (its history = train + valid).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from store.catalog import Catalog


@dataclass
class SplitData:
    item_ids: list[str]                                  # row -> item id (the model's residual rows)
    text_emb: np.ndarray                                 # float32[N, 384] frozen MiniLM vectors, unit
    train_seqs: list[np.ndarray] = field(default_factory=list)       # int64 rows, len >= 2 (has a target)
    valid_hist: list[np.ndarray] = field(default_factory=list)
    valid_target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_hist: list[np.ndarray] = field(default_factory=list)
    test_target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    train_items: set[int] = field(default_factory=set)  # rows that occur anywhere in the train split
    train_seqs_all: list[np.ndarray] = field(default_factory=list)   # every user's train items (len >= 1)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def popularity(self, include_valid: bool = False) -> np.ndarray:
        """float[N] interaction counts in the train split (plus valid targets if asked)."""
        counts = np.zeros(self.n_items, dtype=np.float64)
        for s in self.train_seqs_all:
            np.add.at(counts, s, 1)
        if include_valid:
            np.add.at(counts, self.valid_target, 1)
        return counts


def load_split_data(catalog: Catalog, encoder) -> SplitData:
    """Reads the catalog's train/valid/test events and encodes every item's text (cached)."""
    items = catalog.all_items()
    item_ids = [i.id for i in items]
    row = {i: r for r, i in enumerate(item_ids)}
    text_emb = encoder.encode([i.text() for i in items])
    data = SplitData(item_ids=item_ids, text_emb=text_emb)
    valid_t, test_t = [], []
    for _user, seq in catalog.sequences(("train", "valid", "test")).items():
        train = np.array([row[i] for i, s in seq if s == "train" and i in row], dtype=np.int64)
        valid = [row[i] for i, s in seq if s == "valid" and i in row]
        test = [row[i] for i, s in seq if s == "test" and i in row]
        if len(train):
            data.train_seqs_all.append(train)
            data.train_items.update(train.tolist())
        if len(train) >= 2:
            data.train_seqs.append(train)
        if valid and len(train):
            data.valid_hist.append(train)
            valid_t.append(valid[-1])
        if test and (len(train) or valid):
            data.test_hist.append(np.concatenate([train, np.array(valid, dtype=np.int64)]))
            test_t.append(test[-1])
    data.valid_target = np.array(valid_t, dtype=np.int64)
    data.test_target = np.array(test_t, dtype=np.int64)
    return data
