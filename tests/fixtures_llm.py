"""The one real vLLM server of a test session (SmolLM2, --enforce-eager), shared by every area."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from store.paths import default_workdir


def _llm_workdir(tmp_path_factory) -> Path:
    """The prepared model is cached in the default workdir (building it takes ~40 s);
    EXPLAINREC_TEST_LLM_WORKDIR points elsewhere."""
    env = os.environ.get("EXPLAINREC_TEST_LLM_WORKDIR")
    return Path(env) if env else default_workdir()


@pytest.fixture(scope="session")
def llm_model_dir(tmp_path_factory) -> Path:
    from explainer.prepare import prepare_model
    return prepare_model(_llm_workdir(tmp_path_factory))


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory, llm_model_dir):
    """A running LocalVLLMServer on a free loopback port; `.url`, `.model_name`. Do not stop it."""
    from explainer.config import ExplainerConfig
    from explainer.vllm_server import LocalVLLMServer
    logs = tmp_path_factory.mktemp("vllm")
    cfg = ExplainerConfig(model_dir=llm_model_dir, workdir=logs, enforce_eager=True, kv_cache_gib=1)
    server = LocalVLLMServer(cfg)
    # the compile/cache dir stays in the shared workdir so sessions reuse it
    server.start()
    yield server
    server.stop()
