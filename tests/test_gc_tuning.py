"""server.gc_tuning: what a serving process does to its garbage collector once loaded."""
from __future__ import annotations

import gc

from server.gc_tuning import tune_for_serving


def test_tuning_freezes_what_is_loaded_and_raises_the_young_threshold():
    before = gc.get_threshold()
    loaded = [{"row": n} for n in range(1000)]       # tracked containers, as a loaded service holds
    try:
        tune_for_serving(12_345)
        assert gc.get_freeze_count() >= len(loaded)
        assert gc.get_threshold() == (12_345, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_zero_keeps_pythons_defaults():
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    tune_for_serving(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
