"""Prometheus metrics of the service, served on their own HTTP port (`/metrics`).

With `serve --workers N` each worker writes its metrics to files that the parent serves summed
(prometheus_client's multiprocess mode, `server.workers`); each gauge says below how its workers'
values combine there."""
from __future__ import annotations

import os
from typing import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

REQUESTS = Counter("explainrec_requests_total", "gRPC calls finished, by method and status code",
                   ["method", "code"])
LATENCY = Histogram("explainrec_request_latency_seconds", "gRPC call latency (streams: until the last message)",
                    ["method"], buckets=(.002, .005, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
IN_FLIGHT = Gauge("explainrec_requests_in_flight", "gRPC calls being served now", multiprocess_mode="livesum")
BATCH_SIZE = Histogram("explainrec_recommend_batch_size", "Recommend calls ranked together in one batch "
                       "(server.batcher)", buckets=(1, 2, 4, 6, 8, 12, 16, 24, 32, 64))
JUSTIFICATIONS = Counter("explainrec_justifications_total", "justifications returned, by source",
                         ["source"])
FALLBACKS = Counter("explainrec_template_fallbacks_total",
                    "justifications that fell back to the template, by reason", ["reason"])
LLM_TOKENS = Counter("explainrec_llm_tokens_total",
                     "LLM tokens as reported by vLLM ('prompt', 'completion'; all samples), and streamed "
                     "chunks ('streamed', about one token each)", ["kind"])

MODEL_SWAPS = Counter("explainrec_model_swaps_total", "ranker versions picked up without a restart, by result "
                      "('ok' serving, 'refused' failed to load: the old one kept serving)", ["result"])
MODEL_VERSION = Gauge("explainrec_model_version_info", "the ranker version serving now (value 1; with workers: "
                      "1 while any live worker serves it)", ["version"], multiprocess_mode="livemax")
_serving_version: list[str] = []


def record_model_swap(result: str, version: str) -> None:
    MODEL_SWAPS.labels(result).inc()
    if result == "ok":
        for old in _serving_version:      # 0, not clear(): a worker's metrics file keeps every label it set
            MODEL_VERSION.labels(old).set(0)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MODEL_VERSION.clear()
        MODEL_VERSION.labels(version).set(1)
        _serving_version[:] = [version]


class LLMCollector:
    """Read at scrape time from the LLM supervisor, so the time without an LLM includes the outage
    still going on."""

    def __init__(self) -> None:
        self.source = None

    def collect(self):
        s = self.source
        if s is None:
            return
        yield GaugeMetricFamily("explainrec_llm_up", "1 while the LLM answers its health check, else 0",
                                value=1.0 if s.up else 0.0)
        yield CounterMetricFamily("explainrec_llm_restarts", "times the local vLLM was restarted after dying",
                                  value=s.restarts)
        yield CounterMetricFamily("explainrec_llm_down_seconds", "seconds without an answering LLM (templates only)",
                                  value=s.down_seconds())


_LLM = LLMCollector()
REGISTRY.register(_LLM)


def watch_llm(supervisor) -> None:
    """Exports `supervisor`'s state (up, restarts, down_seconds()) as explainrec_llm_* metrics."""
    _LLM.source = supervisor


def record_justifications(justifications: Iterable) -> None:
    for j in justifications:
        JUSTIFICATIONS.labels(j.source).inc()
        if j.source != "llm":
            FALLBACKS.labels(j.fallback_reason or "unspecified").inc()


def record_llm_usage(prompt_tokens: int, completion_tokens: int) -> None:
    LLM_TOKENS.labels("prompt").inc(prompt_tokens)
    LLM_TOKENS.labels("completion").inc(completion_tokens)


def record_stream_chunk() -> None:
    LLM_TOKENS.labels("streamed").inc()


def start_metrics_server(host: str, port: int):
    """Starts the /metrics HTTP server in a daemon thread; returns (http_server, bound_port)."""
    httpd, _thread = start_http_server(port, addr=host)
    return httpd, httpd.server_port
