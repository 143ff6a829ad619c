"""The garbage collector of a serving process, set once the service is loaded.

Python's cyclic collector walks every tracked object of the generations it collects. A loaded
service holds millions of them (the catalog's items, the ranker's tables, the explainer's
indexes), and serving allocates many short-lived ones per call (candidates, evidence, protos),
so at the default thresholds (a young collection every 700 allocations, the old generation
re-walked now and then) the collector took about a fifth of the ranking CPU
(`bench/bench_ranker_parts.py --gc default` beside `--gc serving`).

So: `gc.freeze()` after loading moves everything loaded into the permanent generation, which no
collection walks again, and young collections run every `gen0` allocations instead of 700.
Cycles are still collected; most serving garbage has none and goes by reference counting.
"""
from __future__ import annotations

import gc

DEFAULT_GEN0 = 50_000


def tune_for_serving(gen0: int = DEFAULT_GEN0) -> None:
    """Freeze what is loaded and make young collections rarer (gen0 <= 0: Python's defaults, nothing frozen)."""
    if gen0 <= 0:
        return
    gc.collect()
    gc.freeze()
    _g0, g1, g2 = gc.get_threshold()
    gc.set_threshold(gen0, g1, g2)
