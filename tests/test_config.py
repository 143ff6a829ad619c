"""The one config mechanism (core.settings) behind every component's config: flags, environment
variables and a TOML file derived from one typed dataclass, strict about bad values."""
from __future__ import annotations

import argparse

import pytest

from explainer.batch.config import BatchConfig, Engine
from explainer.config import ExplainerConfig
from ranker.train import TrainConfig
from server.config import LLMMode, ServerConfig


@pytest.mark.parametrize("raw", ["maybe", "ture", "2"])
def test_a_boolean_that_does_not_parse_is_an_error_not_false(raw):
    with pytest.raises(ValueError, match="EXPLAINREC_LLM_ENABLED"):
        ExplainerConfig.load(env={"EXPLAINREC_LLM_ENABLED": raw})
    assert ExplainerConfig.load(env={"EXPLAINREC_LLM_ENABLED": "off"}).enabled is False


def test_every_config_reads_the_same_three_sources(tmp_path):
    toml = tmp_path / "explainrec.toml"
    toml.write_text('[llm]\nn_samples = 2\n[train]\nepochs = 7\n[batch]\nmax_group = 3\nengine = "ray"\n'
                    '[server]\nllm = "off"\n')
    env = {"EXPLAINREC_LLM_TEMPERATURE": "0.3", "EXPLAINREC_TRAIN_SEED": "5", "EXPLAINREC_BATCH_LLM": "no"}
    llm = ExplainerConfig.load(toml, env, max_tokens=30)
    assert (llm.n_samples, llm.temperature, llm.max_tokens) == (2, 0.3, 30)
    train = TrainConfig.load(toml, env)
    assert (train.epochs, train.seed) == (7, 5)
    batch = BatchConfig.load(toml, env)
    assert (batch.max_group, batch.engine, batch.llm) == (3, Engine.RAY, False)
    assert ServerConfig.load(toml, {}).llm is LLMMode.OFF


@pytest.mark.parametrize("cls, text, field", [
    (ExplainerConfig, "[llm]\nn_samples = \"four\"\n", "n_samples"),
    (TrainConfig, "[train]\nepoch = 3\n", "epoch"),                # unknown key
    (ServerConfig, "[server]\nport = 80.5\n", "port"),
    (BatchConfig, "[batch]\nengine = \"spark\"\n", "engine"),
])
def test_bad_toml_values_name_the_field(tmp_path, cls, text, field):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match=field):
        cls.load(f, {})


def test_flags_come_from_the_dataclass_with_its_help():
    p = argparse.ArgumentParser()
    TrainConfig.add_arguments(p)
    help_text = p.format_help()
    assert "--time-budget-s" in help_text and "Per ensemble member" in help_text
    cfg = TrainConfig.from_args(p.parse_args(["--epochs", "3", "--no-tied", "--lr", "0.01"]), env={})
    assert (cfg.epochs, cfg.tied, cfg.lr, cfg.dim) == (3, False, 0.01, TrainConfig().dim)
    with pytest.raises(SystemExit):
        p.parse_args(["--epochs", "three"])
    p = argparse.ArgumentParser()
    BatchConfig.add_arguments(p)
    cfg = BatchConfig.from_args(p.parse_args(["--no-llm", "--vllm-url", "http://a:1,http://b:2"]), env={})
    assert cfg.llm is False and cfg.vllm_url == ("http://a:1", "http://b:2")
    with pytest.raises(ValueError, match="max_group"):
        BatchConfig.from_args(p.parse_args(["--max-group", "0"]), env={})
