"""bench/bench_server.py's event-loop lag p99: the samples taken between two readings of the lag
histogram, interpolated inside their bucket as Prometheus's histogram_quantile does."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_server import histogram_quantile  # noqa: E402

INF = float("inf")


def test_only_the_samples_between_the_readings_count():
    before = {0.001: 1000, 0.005: 1000, 0.01: 1000, INF: 1000}    # a quiet earlier level: all under 1 ms
    after = {0.001: 1050, 0.005: 1090, 0.01: 1099, INF: 1100}     # this level: 100 samples, 10 over 5 ms
    assert abs(histogram_quantile(0.99, before, after) - (0.005 + 0.005 * (9 / 9))) < 1e-12
    assert abs(histogram_quantile(0.5, before, after) - 0.001) < 1e-12
    assert abs(histogram_quantile(0.7, before, after) - (0.001 + 0.004 * (20 / 40))) < 1e-12


def test_beyond_the_last_bound_and_no_samples():
    assert histogram_quantile(0.99, {}, {0.01: 50, INF: 100}) == 0.01
    assert histogram_quantile(0.99, {0.01: 5, INF: 5}, {0.01: 5, INF: 5}) is None
