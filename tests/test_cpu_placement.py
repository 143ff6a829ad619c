"""server.cpu_placement: each worker's share of the CPUs, and the ranking threads' lower priority
(the serving workers' own placement is checked in tests/test_workers.py)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from server.config import ServerConfig
from server.cpu_placement import lower_this_thread, worker_cpus


def test_workers_get_equal_contiguous_shares_covering_every_cpu():
    assert [worker_cpus(i, 2, [0, 1]) for i in range(2)] == [{0}, {1}]
    assert [worker_cpus(i, 2, [3, 2, 1, 0]) for i in range(2)] == [{0, 1}, {2, 3}]
    shares = [worker_cpus(i, 3, list(range(8))) for i in range(3)]
    assert shares == [{0, 1, 2}, {3, 4, 5}, {6, 7}]          # the remainder goes to the first workers
    assert set().union(*shares) == set(range(8)) and sum(map(len, shares)) == 8


def test_more_workers_than_cpus_share_them_round_robin():
    assert [worker_cpus(i, 5, [4, 6]) for i in range(5)] == [{4}, {6}, {4}, {6}, {4}]


def test_no_cpus_or_workers_is_an_error_naming_both():
    with pytest.raises(ValueError, match="workers"):
        worker_cpus(0, 0, [0])
    with pytest.raises(ValueError, match="cpus"):
        worker_cpus(0, 1, [])


def _nice(tid: int) -> int:
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])        # field 19 of proc(5): nice


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc")
def test_only_the_calling_thread_is_lowered():
    me = threading.get_native_id()
    before = _nice(me)
    seen: dict[str, int | None] = {}

    def ranking_thread():
        seen["returned"] = lower_this_thread(5)
        seen["tid"] = threading.get_native_id()
        seen["nice"] = _nice(threading.get_native_id())

    t = threading.Thread(target=ranking_thread)
    t.start()
    t.join()
    assert seen["returned"] == seen["nice"] == min(19, before + 5)
    assert _nice(me) == before, "the calling thread only: the event loop keeps its priority"
    assert lower_this_thread(0) is None


def test_ranking_thread_nice_is_validated():
    with pytest.raises(ValueError, match="ranking_thread_nice"):
        ServerConfig(ranking_thread_nice=-1)
    assert ServerConfig().worker_cpu_affinity and ServerConfig().ranking_thread_nice == 10
