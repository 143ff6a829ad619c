"""The dynamic batcher in front of the ranker: same answers as one call at a time, deadlines kept
inside a batch, one bad call never failing its batch. Real zero-shot ranker on the small catalog."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from explainer.pipeline import RecommendPipeline
from ranker.types import RankQuery
from server.batcher import BatcherConfig, DeadlineExceeded, DynamicBatcher
from server.setup import set_search_threads
from store.errors import InvalidInput, UnknownUser


def _same_ranking(a, b) -> None:
    """Same items, same order, same scores, to the bit: the exact search scores its answer in a way
    that does not depend on the batch (ranker.exact_search), so near-ties order the same too."""
    assert [(c.item_id, c.score) for c in a] == [(c.item_id, c.score) for c in b]


@pytest.fixture(scope="module")
def pipeline(zero_shot_ranker, ranker_catalog):
    return RecommendPipeline(ranker_catalog, zero_shot_ranker, explainer=None)


def _batched(pipeline, queries, config=BatcherConfig(max_batch=32, max_wait_s=0.005)):
    with ThreadPoolExecutor(2, initializer=set_search_threads, initargs=(1,)) as pool:   # as `serve` does
        batcher = DynamicBatcher(pipeline.rank_many, pool, config)

        async def run():
            return await asyncio.gather(*(batcher.submit(q) for q in queries), return_exceptions=True)
        return asyncio.run(run()), batcher


def test_batched_answers_equal_unbatched_on_200_users(pipeline, zero_shot_ranker, ranker_catalog):
    users = [u for u in ranker_catalog.user_ids() if ranker_catalog.history(u)][:200]
    assert len(users) == 200
    queries = [RankQuery(user_id=u, k=10) for u in users]
    zero_shot_ranker.user_vectors.clear()
    alone = [zero_shot_ranker.rank(q).candidates for q in queries]
    zero_shot_ranker.user_vectors.clear()       # the batched run computes every user vector again
    results, batcher = _batched(pipeline, queries)
    assert batcher.calls == 200 and batcher.batches < 200 / 4, "calls were not batched"
    for a, prepared in zip(alone, results):
        _same_ranking(a, [r.candidate for r in prepared.recommendations])


def test_one_bad_call_does_not_fail_its_batch(pipeline, zero_shot_ranker, ranker_catalog):
    users = [u for u in ranker_catalog.user_ids() if ranker_catalog.history(u)][:6]
    queries = [RankQuery(user_id=u, k=5) for u in users]
    queries.insert(2, RankQuery(user_id="nobody-such", k=5))
    queries.insert(4, RankQuery(user_id=users[0], k=0))
    results, batcher = _batched(pipeline, queries, BatcherConfig(max_batch=64, max_wait_s=0.05))
    assert batcher.batches == 1
    assert isinstance(results[2], UnknownUser)
    assert isinstance(results[4], InvalidInput) and results[4].field == "k"
    good = [(q, r) for n, (q, r) in enumerate(zip(queries, results)) if n not in (2, 4)]
    for q, prepared in good:
        _same_ranking(zero_shot_ranker.rank(q).candidates, [r.candidate for r in prepared.recommendations])


def test_deadlines_are_kept_inside_a_batch():
    ran: list[list[int]] = []

    def slow_work(items):
        ran.append(list(items))
        time.sleep(0.4)
        return [i * 10 for i in items]

    async def run():
        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(slow_work, pool, BatcherConfig(max_batch=8, max_wait_s=0.3, max_in_flight=1))
            t0 = time.monotonic()
            # the batch would wait 0.3 s for more calls; the 0.05 s deadline closes it early
            short = asyncio.ensure_future(batcher.submit(1, t0 + 0.05))
            patient = asyncio.ensure_future(batcher.submit(2, t0 + 5))
            with pytest.raises(DeadlineExceeded):
                await short                    # the caller stops waiting at 0.05 s
            short_took = time.monotonic() - t0
            assert await patient == 20         # its neighbour still gets its answer
            # a call whose deadline has passed before its batch runs is not worked on at all
            busy = asyncio.ensure_future(batcher.submit(3))
            await asyncio.sleep(0.01)
            expired = asyncio.ensure_future(batcher.submit(4, time.monotonic() + 0.02))
            assert await busy == 30
            with pytest.raises(DeadlineExceeded):
                await expired
            return short_took
    short_took = asyncio.run(run())
    assert short_took < 0.3     # the work takes 0.4 s: the caller did not wait for it
    assert [1, 2] in ran and all(4 not in batch for batch in ran)


def test_a_batch_wide_failure_reaches_every_call_and_the_batcher_goes_on():
    def work(items):
        if 0 in items:
            raise RuntimeError("boom")
        return list(items)

    async def run():
        with ThreadPoolExecutor(1) as pool:
            batcher = DynamicBatcher(work, pool, BatcherConfig(max_batch=4, max_wait_s=0.02))
            first = await asyncio.gather(batcher.submit(0), batcher.submit(1), return_exceptions=True)
            second = await batcher.submit(5)
            return first, second
    first, second = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) for r in first) and second == 5


def test_a_finished_batch_wakes_its_callers_a_few_per_loop_turn():
    """resume_chunk: a batch of 8 with chunk 2 wakes its callers over 4 loop turns, so a timer or a
    new call waits for two replies, not eight; with chunk 8 they all wake in one turn."""
    def turns_seen(chunk: int) -> set[int]:
        batcher = DynamicBatcher(lambda items: list(items), None, BatcherConfig(max_batch=8, max_wait_s=0.05,
                                                                                resume_chunk=chunk))

        async def run() -> set[int]:
            turn = 0

            async def ticker() -> None:
                nonlocal turn
                while True:
                    turn += 1
                    await asyncio.sleep(0)

            async def call(n: int) -> int:
                await batcher.submit(n)
                return turn

            tick = asyncio.create_task(ticker())
            woke = await asyncio.gather(*(call(n) for n in range(8)))
            tick.cancel()
            assert batcher.batches == 1
            return set(woke)
        return asyncio.run(run())

    assert len(turns_seen(8)) == 1
    assert len(turns_seen(2)) >= 4
    with pytest.raises(ValueError, match="resume_chunk"):
        BatcherConfig(resume_chunk=0)
