"""Sequences from the catalog, as item rows, for training and evaluation (the fixed UniSRec split).

Per user, oldest first: the train-split items (training: every prefix -> next item), then the
valid target (its history = the train items), then the test target (its history = train + valid).

`live=True` (the retrain loop) also reads what the service recorded: `live` events from
RecordEvents and positive feedback (click / purchase) join the training sequences in time order
(feedback last, in arrival order); dismissals become per-user hard negatives; each user's most
recent live event is held out as the `live` evaluation target (history = everything before it).
Valid / test targets never enter training, and their histories hold only what came before them.
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
    live_hist: list[np.ndarray] = field(default_factory=list)        # live=True: before each held-out live event
    live_target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dismissed: dict[int, np.ndarray] = field(default_factory=dict)   # index into train_seqs -> dismissed rows
    new_seqs: set[int] = field(default_factory=set)                   # train_seqs with live events or feedback
    counts: dict[str, int] = field(default_factory=dict)              # what went in (live events, feedback, ...)

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


POSITIVE_FEEDBACK = ("click", "purchase")
NEGATIVE_FEEDBACK = ("dismiss",)


def load_split_data(catalog: Catalog, encoder, live: bool = False, hold_out_live: bool = True) -> SplitData:
    """Reads the catalog's train/valid/test events and encodes every item's text (cached).

    live: also learn from live events and feedback (see the module docstring)."""
    items = catalog.all_items()
    item_ids = [i.id for i in items]
    row = {i: r for r, i in enumerate(item_ids)}
    text_emb = encoder.encode([i.text() for i in items])
    data = SplitData(item_ids=item_ids, text_emb=text_emb)
    if live:
        return _with_live(catalog, data, row, hold_out_live)
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


def _with_live(catalog: Catalog, data: SplitData, row: dict[str, int], hold_out: bool) -> SplitData:
    positives: dict[str, list[int]] = {}
    negatives: dict[str, list[int]] = {}
    n_pos = n_neg = 0
    for fb in catalog.feedback():
        r = row.get(fb["item_id"])
        if r is None:
            continue
        if fb["kind"] in POSITIVE_FEEDBACK:
            positives.setdefault(fb["user_id"], []).append(r)
            n_pos += 1
        elif fb["kind"] in NEGATIVE_FEEDBACK:
            negatives.setdefault(fb["user_id"], []).append(r)
            n_neg += 1
    valid_t, test_t, live_t = [], [], []
    n_live = 0
    sequences = catalog.sequences(("train", "valid", "test", "live"))
    for user in sorted(set(sequences) | set(positives)):
        seq = [(row[i], s) for i, s in sequences.get(user, []) if i in row]
        seen = {(r, s) for r, s in seq}
        seq += [(r, "live") for r in positives.get(user, []) if (r, "live") not in seen]
        n_live += sum(1 for _, s in seq if s == "live")
        held = max((k for k, (_, s) in enumerate(seq) if s == "live"), default=-1) if hold_out else -1
        # train = train + live steps, minus the held-out live step; targets see only what preceded them
        train: list[int] = []
        before: list[int] = []
        for k, (r, s) in enumerate(seq):
            if k == held:
                if before:                  # a held-out event with nothing before it cannot be scored
                    data.live_hist.append(np.array(before, dtype=np.int64))
                    live_t.append(r)
            elif s in ("train", "live"):
                train.append(r)
            elif s == "valid" and train:
                data.valid_hist.append(np.array(train, dtype=np.int64))
                valid_t.append(r)
            elif s == "test" and before:
                data.test_hist.append(np.array(before, dtype=np.int64))
                test_t.append(r)
            before.append(r)
        train_arr = np.array(train, dtype=np.int64)
        if len(train_arr):
            data.train_seqs_all.append(train_arr)
            data.train_items.update(train)
        if len(train_arr) >= 2:
            if user in negatives:
                data.dismissed[len(data.train_seqs)] = np.array(negatives[user], dtype=np.int64)
            if user in negatives or any(s == "live" for _, s in seq):
                data.new_seqs.add(len(data.train_seqs))
            data.train_seqs.append(train_arr)
    data.valid_target = np.array(valid_t, dtype=np.int64)
    data.test_target = np.array(test_t, dtype=np.int64)
    data.live_target = np.array(live_t, dtype=np.int64)
    data.counts = {"live_events": n_live, "positive_feedback": n_pos, "dismissals": n_neg,
                   "live_held_out": len(live_t)}
    return data
