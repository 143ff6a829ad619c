"""A synthetic catalog as SplitData, for the training benches and tests: any size, no MiniLM, no database.

It has the shape that costs what a real catalog costs (text vectors of width 384, Zipf popularity,
sequence lengths like Amazon Scientific's: median 6, a long tail up to 60) and enough structure for
NDCG to mean something: items sit in topics (their text vector is the topic's centre plus noise),
each user keeps to a few topics, and the next item usually shares the previous item's topic.
Split as UniSRec does: last item test, the one before valid, the rest train.
"""
from __future__ import annotations

import numpy as np

from ranker.data import SplitData


def synthetic_split(n_items: int, n_users: int, seed: int = 0, topics: int | None = None,
                    text_dim: int = 384, mean_len: float = 7.0, max_len: int = 60) -> SplitData:
    if n_items < 2 or n_users < 1:
        raise ValueError(f"need n_items >= 2 and n_users >= 1 (got {n_items}, {n_users})")
    rng = np.random.default_rng(seed)
    topics = topics or max(2, n_items // 80)
    topic_of = rng.integers(0, topics, size=n_items)
    centres = rng.normal(size=(topics, text_dim))
    text = centres[topic_of] + 1.2 * rng.normal(size=(n_items, text_dim))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    # Zipf-like popularity, independent of topic; per topic, the items and their normalised weights
    pop = 1.0 / (1.0 + rng.permutation(n_items)) ** 0.8
    members = [np.flatnonzero(topic_of == t) for t in range(topics)]
    cdfs = [np.cumsum(pop[m]) / pop[m].sum() for m in members]     # per topic, for inverse-CDF draws
    topic_pop = np.array([pop[m].sum() for m in members])
    topic_pop /= topic_pop.sum()
    glob = np.cumsum(pop) / pop.sum()

    lengths = np.clip(3 + rng.geometric(1.0 / (mean_len - 2.0), size=n_users), 3, max_len)
    data = SplitData(item_ids=[f"S{i}" for i in range(n_items)], text_emb=text)
    valid_t, test_t = [], []
    for u in range(n_users):
        favourite = rng.choice(topics, size=3, p=topic_pop)
        seq = np.empty(lengths[u], dtype=np.int64)
        topic = favourite[0]
        for k in range(lengths[u]):
            r = rng.random()
            if r < 0.1:                                   # anything popular
                seq[k] = min(np.searchsorted(glob, rng.random()), n_items - 1)
                continue
            if r > 0.6:                                   # switch among the user's topics
                topic = favourite[rng.integers(0, 3)]
            if not len(members[topic]):
                topic = topic_of[rng.integers(0, n_items)]
            m = members[topic]
            seq[k] = m[min(np.searchsorted(cdfs[topic], rng.random()), len(m) - 1)]
        train = seq[:-2]
        data.train_seqs_all.append(train)
        data.train_items.update(train.tolist())
        if len(train) >= 2:
            data.train_seqs.append(train)
        data.valid_hist.append(train)
        valid_t.append(seq[-2])
        data.test_hist.append(seq[:-1])
        test_t.append(seq[-1])
    data.valid_target = np.array(valid_t, dtype=np.int64)
    data.test_target = np.array(test_t, dtype=np.int64)
    return data
