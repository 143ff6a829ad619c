"""Server test fixtures: a real grpc.aio server on port 0, run in its own event-loop thread, with
the real zero-shot ranker (on the fake encoder) on a private copy of the small catalog. Tests talk to it through the
real generated stubs (via server.client)."""
from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Callable

import pytest


class ServerHarness:
    """One server and its lifecycle, driven from synchronous test code."""

    def __init__(self, config, service_factory: Callable | None = None):
        from server.lifecycle import new_server
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="test-grpc-loop")
        self._thread.start()
        self.server, self.port, self.lifecycle = self.run(new_server(config))
        self.target = f"127.0.0.1:{self.port}"
        if service_factory is not None:
            self.attach(service_factory(self.lifecycle))

    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def attach(self, service) -> None:
        self.run(self.lifecycle.attach(service))

    def drain(self, grace_s: float = 5.0):
        """Drains in the background; returns the concurrent future."""
        return asyncio.run_coroutine_threadsafe(self.lifecycle.drain(self.server, grace_s), self.loop)

    def client(self, **kwargs):
        from server.client import ExplainRecClient
        kwargs.setdefault("timeout_s", 60.0)
        return ExplainRecClient(self.target, **kwargs)

    def close(self) -> None:
        if not self.lifecycle.draining:
            self.drain(1.0).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def server_config(**overrides):
    from server.config import ServerConfig
    values = dict(host="127.0.0.1", port=0, metrics_port=-1, llm="off", grace_s=2.0)
    values.update(overrides)
    return ServerConfig(**values)


@pytest.fixture(scope="session")
def server_db(tmp_path_factory, small_db) -> Path:
    """A session-private writable copy of the small catalog (tests here add events and items)."""
    path = tmp_path_factory.mktemp("server_db") / "catalog.sqlite"
    shutil.copy(small_db, path)
    return path


@pytest.fixture(scope="session")
def server_catalog(server_db):
    from store.catalog import Catalog
    cat = Catalog(server_db)
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def server_ranker(server_catalog, fake_encoder):
    """The real zero-shot ranker over the small catalog, on the fake encoder: what the server tests
    check (the RPCs, errors, lifecycle, the pipeline) does not depend on what the vectors mean.
    `explainrec serve` with the real MiniLM runs in the slow tests (test_server_serve, test_replicas)."""
    from ranker.service import Ranker
    return Ranker.zero_shot(server_catalog, encoder=fake_encoder)


def template_service_factory(catalog, ranker, config):
    def make(lifecycle):
        from explainer.config import ExplainerConfig
        from explainer.service import Explainer
        from server.app import RecService
        return RecService(catalog, ranker, Explainer.from_catalog(ExplainerConfig(enabled=False), catalog), config,
                          thread_init=search_thread_init(config))
    return make


def search_thread_init(config):
    """What `serve` runs in each ranking thread (server.setup.build_service)."""
    from server.setup import set_search_threads
    return lambda: set_search_threads(config.search_threads)


@pytest.fixture(scope="session")
def template_server(server_catalog, server_ranker):
    """The shared server with template-only justifications (llm off)."""
    cfg = server_config()
    harness = ServerHarness(cfg, template_service_factory(server_catalog, server_ranker, cfg))
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def llm_server(server_catalog, server_ranker, vllm_server):
    """The shared server whose explainer calls the session's real vLLM server."""
    cfg = server_config(llm="url", vllm_url=vllm_server.url)

    def make(lifecycle):
        from explainer.config import ExplainerConfig
        from explainer.service import Explainer
        from server.app import RecService
        ex = Explainer.from_catalog(ExplainerConfig(vllm_url=vllm_server.url, model=vllm_server.model_name), server_catalog)
        return RecService(server_catalog, server_ranker, ex, cfg, thread_init=search_thread_init(cfg))
    harness = ServerHarness(cfg, make)
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def some_user(server_catalog) -> str:
    """A user with a few events in the small catalog."""
    for uid in server_catalog.user_ids():
        if len(server_catalog.history(uid)) >= 5:
            return uid
    raise AssertionError("no user with 5 events in the small catalog")
