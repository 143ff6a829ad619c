"""Brings up what `explainrec serve` needs, skipping work already done:
catalog (ingest if empty) -> ranker (trained model, else train, else zero-shot) ->
LLM (prepared model + local vLLM, an external URL, or templates only) -> the RecService.

Runs in a worker thread while the gRPC server already answers health with NOT_SERVING.
Heavy modules are imported here, inside functions, never at the CLI's import time.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from store.catalog import Catalog
from store.paths import default_data_dir, model_dir, store_location

if TYPE_CHECKING:
    from server.app import RecService
    from server.config import ServerConfig
    from server.lifecycle import Lifecycle

log = logging.getLogger("explainrec.server")


def open_catalog(workdir: Path, store: str = "") -> Catalog:
    """The SQLite file in the workdir, or `store` / $EXPLAINREC_STORE (a path or a postgresql:// URL)."""
    catalog = Catalog(store_location(workdir, store))
    if catalog.item_count() == 0:
        from store.ingest import ingest_unisrec
        log.info("empty catalog: ingesting the embedded Scientific data into %s", catalog.location)
        report = ingest_unisrec(catalog, default_data_dir())
        log.info("ingested: %s", report.as_dict())
    return catalog


class LoadingStopped(Exception):
    """The process is stopping (SIGTERM while loading): what was loading ends without a result."""


def _train(workdir: Path, catalog: Catalog, stop: threading.Event | None = None) -> bool:
    """Trains through the ranker's public API (`ranker.train.train`) with its default config;
    False when this build has no training code. `stop` set (SIGTERM): LoadingStopped, nothing written."""
    try:
        from ranker.train import TrainConfig, TrainingStopped, train
    except ImportError:
        return False
    log.info("no trained ranker in %s: training with the default config (this takes a while)", model_dir(workdir))
    t0 = time.perf_counter()
    try:
        train(catalog, model_dir(workdir), TrainConfig(), progress=False, stop=stop)
    except TrainingStopped as exc:
        raise LoadingStopped(f"training ended after {time.perf_counter() - t0:.0f} s: the service is stopping") from exc
    log.info("ranker trained in %.0f s", time.perf_counter() - t0)
    return True


def set_search_threads(n: int) -> None:
    """Serving searches one query per call: OpenMP fan-out only adds synchronisation.
    OpenMP keeps this per thread, so every thread that ranks must call it. The user tower's
    torch pool gets the same count: batches already run one per core (`batch_in_flight`), and
    torch's default of one thread per core made two spinning threads per forward pass. numpy's
    BLAS (the exact search's product, the numpy user tower) gets it too: its pool is process-wide,
    and on small products its threads cost more than they save (the tower ran 4x slower with two)."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(n)
    threadpool_limits(n, user_api="blas")
    import sys
    if "torch" in sys.modules:      # loaded with the ranker; serving without torch needs no setting
        sys.modules["torch"].set_num_threads(n)


def load_ranker(config: "ServerConfig", workdir: Path, catalog: Catalog, stop: threading.Event | None = None):
    from ranker.service import Ranker, RankerConfig
    set_search_threads(config.search_threads)
    rcfg = RankerConfig(limits=config.limits)   # the ranker validates with the server's limits
    if config.zero_shot:
        log.info("ranker: zero-shot MiniLM (asked for)")
        return Ranker.zero_shot(catalog, config=rcfg)
    from ranker.versions import current_version_dir
    mdir = current_version_dir(workdir) or model_dir(workdir)   # the promoted version, else the trained base
    if not (mdir / "config.json").exists() and config.train_if_missing:
        try:
            _train(workdir, catalog, stop) or log.warning(
                "ranker: no trained model and no training entry point; serving the zero-shot MiniLM ranker")
        except LoadingStopped:
            raise
        except Exception:  # noqa: BLE001 - serving beats not serving
            log.exception("ranker: training failed; serving the zero-shot MiniLM ranker")
    mdir = current_version_dir(workdir) or mdir
    if (mdir / "config.json").exists():
        log.info("ranker: trained model from %s", mdir)
        return Ranker.load(mdir, catalog, config=rcfg)
    log.warning("ranker: no trained model in %s; serving the zero-shot MiniLM ranker", mdir)
    return Ranker.zero_shot(catalog, config=rcfg)


def build_explainer(config: "ServerConfig", workdir: Path, catalog: Catalog, lifecycle: "Lifecycle"):
    """The explainer, and for an LLM a supervisor whose state drives the LLM's health entry and metrics:
    a local vLLM is restarted when it dies, an external one is watched."""
    from explainer.config import ExplainerConfig
    from explainer.read_model import CatalogReadModel
    from explainer.service import Explainer
    from explainer.vllm_supervisor import LLMSupervisor
    from server import metrics

    def explainer_over_catalog(cfg: ExplainerConfig) -> Explainer:
        # the read model is built here, at start-up, not on the first justified request
        t0 = time.perf_counter()
        read_model = CatalogReadModel.from_catalog(catalog, cfg.preferred_attributes)
        log.info("explainer read model built in %.1f s (%d items: categories, brands, attributes, co-purchases)",
                 time.perf_counter() - t0, len(read_model))
        return Explainer(cfg, read_model)

    if config.llm == "off":
        return explainer_over_catalog(ExplainerConfig(enabled=False))
    if config.llm == "url":
        supervisor = LLMSupervisor(url=config.vllm_url, on_change=lifecycle.llm_state_changed)
        lifecycle.on_close("LLM health watch", supervisor.stop)
        lifecycle.check_llm = supervisor.check_now
        metrics.watch_llm(supervisor.start())
        return explainer_over_catalog(ExplainerConfig.from_env(vllm_url=config.vllm_url))
    from explainer.prepare import prepare_model
    from explainer.vllm_server import LocalVLLMServer, StartStopped
    local = LocalVLLMServer(ExplainerConfig.from_env(workdir=workdir, model_dir=prepare_model(workdir)))
    supervisor = LLMSupervisor(local, on_change=lifecycle.llm_state_changed)
    lifecycle.on_close("local vLLM server", supervisor.stop)
    lifecycle.check_llm = supervisor.check_now
    try:
        local.start()
    except StartStopped:     # SIGTERM during the start: the drain stopped it, nothing failed
        log.info("the local vLLM's start ended: the service is stopping")
    except Exception:  # noqa: BLE001 - serving on templates beats not serving; the supervisor retries
        log.exception("the local vLLM did not start: templates answer while it is retried")
    metrics.watch_llm(supervisor.start())
    explainer = explainer_over_catalog(ExplainerConfig.from_env(vllm_url=local.url, model=local.model_name,
                                                                workdir=workdir))
    explainer.llm_up = lambda: supervisor.up        # down: templates at once, no failed call per item
    return explainer


def warm_user_vectors(ranker, limit: int):
    """The ranker, its user-vector cache filled for the most recently active shoppers (Ranker.warm_user_vectors)."""
    if limit > 0:
        t0 = time.perf_counter()
        n = ranker.warm_user_vectors(limit)
        log.info("ranker: %d user vectors computed in %.1f s", n, time.perf_counter() - t0)
    return ranker


def _init_ranking_thread(config: "ServerConfig") -> None:
    from core.cpu_yield import allow_in_this_thread
    from server.cpu_placement import lower_this_thread
    set_search_threads(config.search_threads)
    lower_this_thread(config.ranking_thread_nice)
    allow_in_this_thread(config.ranking_yield)


def build_service(config: "ServerConfig", lifecycle: "Lifecycle") -> "RecService":
    """Everything the service needs; closers are registered in drain order (vLLM, then the store)."""
    from server.app import RecService
    workdir = config.resolved_workdir()
    t0 = time.perf_counter()
    catalog = open_catalog(workdir, config.store)
    try:
        ranker = load_ranker(config, workdir, catalog, lifecycle.stopping)
        warm_user_vectors(ranker, config.warm_user_vectors)
        explainer = build_explainer(config, workdir, catalog, lifecycle)
    except BaseException:
        catalog.close()
        raise
    service = RecService(catalog, ranker, explainer, config,
                         thread_init=lambda: _init_ranking_thread(config))
    # which link kind justifications prefer, from the helpful / not-helpful ratings stored so far
    from explainer.link_feedback import preferences_from_catalog
    explainer.link_preferences = preferences_from_catalog(catalog, service.pipeline)
    from server.replicas import follow_store
    for name, stop in follow_store(catalog, service):   # what other processes change in the store
        lifecycle.on_close(name, stop)
    service.model_watcher = start_model_watch(config, workdir, service, catalog)
    if service.model_watcher is not None:
        lifecycle.on_close("model watch", service.model_watcher.stop)
    lifecycle.on_close("catalog", catalog.close)
    log.info("service loaded in %.0f s (llm=%s, ranker version %s)", time.perf_counter() - t0, config.llm,
             ranker.version)
    return service


def start_model_watch(config: "ServerConfig", workdir: Path, service, catalog: Catalog):
    """Hot swap (server.model_swap): polls models/current every model_watch_s seconds. None when off
    (zero-shot serving, or model_watch_s = 0)."""
    if config.zero_shot or config.model_watch_s <= 0:
        return None
    from ranker.service import Ranker
    from server import metrics
    from server.model_swap import ModelWatcher
    serving = service.ranker
    metrics.record_model_swap("ok", serving.version)      # the version info gauge, from the start
    watcher = ModelWatcher(workdir, service,
                           load=lambda path: warm_user_vectors(
                               Ranker.load(path, catalog, config=serving.config, encoder=serving.encoder),
                               config.warm_user_vectors),
                           poll_s=config.model_watch_s, on_result=metrics.record_model_swap)
    watcher.start()
    return watcher
