"""core.cpu_yield: preemption points that only serving ranking threads act on.

What a yield does to the event loop's lag is a kernel scheduling effect, measured by
bench/bench_server.py (README, Performance: "Eighth pass"); here, which threads yield, and that the
ranking code reaches a preemption point between the calls of a batch without changing any answer.
The counter wraps the real os.sched_yield (the kernel call is still made)."""
from __future__ import annotations

import os
import threading

import pytest

from core import cpu_yield
from explainer.pipeline import RecommendPipeline
from ranker.types import RankQuery
from server.config import ServerConfig
from server.setup import _init_ranking_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_yield"), reason="needs os.sched_yield")


@pytest.fixture
def yields(monkeypatch):
    """Counts os.sched_yield calls, per thread, while still making them."""
    real, counts = os.sched_yield, {}

    def counted():
        tid = threading.get_native_id()
        counts[tid] = counts.get(tid, 0) + 1
        real()
    monkeypatch.setattr(os, "sched_yield", counted)
    return counts


def _in_thread(fn):
    out: dict = {}

    def run():
        out["tid"] = threading.get_native_id()
        out["value"] = fn()
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["tid"], out["value"]


def test_pause_yields_only_in_threads_that_allowed_it(yields):
    def allowed():
        cpu_yield.allow_in_this_thread()
        for _ in range(5):
            cpu_yield.pause()
        return cpu_yield.allowed_in_this_thread()

    def not_allowed():
        for _ in range(5):
            cpu_yield.pause()
        return cpu_yield.allowed_in_this_thread()

    tid_a, was_allowed = _in_thread(allowed)
    tid_b, was_not = _in_thread(not_allowed)
    cpu_yield.pause()                               # the test's own thread never allowed it
    assert was_allowed and not was_not
    assert yields == {tid_a: 5}, "only the thread that allowed it yields, once per pause"


def test_a_thread_can_take_it_back(yields):
    def run():
        cpu_yield.allow_in_this_thread()
        cpu_yield.allow_in_this_thread(False)
        cpu_yield.pause()
    _in_thread(run)
    assert yields == {}


@pytest.mark.parametrize("setting", [True, False])
def test_the_ranking_thread_initialiser_follows_the_setting(setting):
    config = ServerConfig(ranking_yield=setting, ranking_thread_nice=0)
    _tid, allowed = _in_thread(lambda: (_init_ranking_thread(config), cpu_yield.allowed_in_this_thread())[1])
    assert allowed is setting
    assert ServerConfig().ranking_yield, "on by default"


def test_a_batch_reaches_a_preemption_point_per_call_and_answers_the_same(yields, zero_shot_ranker,
                                                                          ranker_catalog):
    pipeline = RecommendPipeline(ranker_catalog, zero_shot_ranker, explainer=None)
    users = [u for u in ranker_catalog.user_ids() if ranker_catalog.history(u)][:24]
    queries = [RankQuery(user_id=u, k=5) for u in users]
    zero_shot_ranker.user_vectors.clear()
    plain = [[r.candidate for r in p.recommendations] for p in pipeline.rank_many(queries)]
    assert yields == {}, "no thread allowed it yet"

    def batch():
        cpu_yield.allow_in_this_thread()
        zero_shot_ranker.user_vectors.clear()
        return pipeline.rank_many(queries)
    tid, results = _in_thread(batch)
    # the ranker pauses per call in each of its per-call loops, the pipeline once per call more
    assert yields[tid] >= 3 * len(queries), yields
    for a, prepared in zip(plain, results):
        assert [(c.item_id, c.score) for c in a] == [(r.candidate.item_id, r.candidate.score)
                                                     for r in prepared.recommendations]
