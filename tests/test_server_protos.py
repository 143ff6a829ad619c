"""The contract's generated code is current, and the server config validates and layers its sources."""
from __future__ import annotations

import pytest

from server.config import ServerConfig, documentation


def test_generated_code_is_not_stale():
    from protos.generate import stale_files
    assert stale_files() == [], "run `python -m protos.generate` and commit the result"


def test_contract_has_every_rpc():
    from protos.explainrec.v1 import explainrec_pb2 as pb
    methods = {m.name: m for m in pb.DESCRIPTOR.services_by_name["ExplainRec"].methods}
    assert set(methods) == {"Recommend", "Explain", "StreamRecommend", "ExplainBatch", "RecordEvents",
                            "SubmitFeedback", "UpsertItems", "DeleteItems", "GetHistory", "GetItems"}
    assert methods["StreamRecommend"].server_streaming and not methods["StreamRecommend"].client_streaming
    assert methods["ExplainBatch"].server_streaming and methods["ExplainBatch"].client_streaming
    assert pb.DESCRIPTOR.package == "explainrec.v1"


def test_config_layers_file_env_and_flags(tmp_path):
    f = tmp_path / "server.toml"
    f.write_text('[server]\nport = 6000\nmax_k = 50\nllm = "off"\n')
    cfg = ServerConfig.load(f, env={"EXPLAINREC_SERVER_MAX_K": "60", "EXPLAINREC_SERVER_ZERO_SHOT": "true"},
                            port=None, default_k=5)
    assert (cfg.port, cfg.max_k, cfg.zero_shot, cfg.default_k, cfg.llm) == (6000, 60, True, 5, "off")


@pytest.mark.parametrize("kwargs, field", [
    ({"port": 70000}, "port"), ({"llm": "gpt"}, "llm"), ({"llm": "url"}, "vllm_url"),
    ({"tls_cert": "/nope.pem", "tls_key": "/nope.key"}, "tls_cert"), ({"default_k": 0}, "default_k"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ServerConfig(**kwargs)


def test_config_env_type_errors_name_the_variable():
    with pytest.raises(ValueError, match="EXPLAINREC_SERVER_PORT"):
        ServerConfig.load(env={"EXPLAINREC_SERVER_PORT": "eighty"})


def test_config_documentation_is_the_readme_table():
    """The README's settings table is documentation() verbatim: every row, default and help text."""
    from pathlib import Path
    doc = documentation()
    assert "EXPLAINREC_SERVER_AUTH_TOKEN" in doc and "min_llm_budget_s" in doc
    readme = (Path(__file__).resolve().parents[1] / "server" / "README.md").read_text()
    section = readme[readme.index("## Settings"):]
    table = section[section.index("| setting |"):].split("\n")
    table = "\n".join(line for line in table[:next(i for i, ln in enumerate(table) if not ln.startswith("|"))])
    assert table == doc, "regenerate the table in server/README.md from server.config.documentation()"


def test_llm_budget_leaves_a_margin_and_falls_back_below_the_minimum():
    from server.app import RecService
    cfg = ServerConfig(llm="url", vllm_url="http://127.0.0.1:1", min_llm_budget_s=1.0, deadline_margin_s=0.2,
                       explain_deadline_s=30.0)
    svc = RecService(None, None, None, cfg)
    try:
        assert svc.llm_budget(None) == 30.0                 # no deadline: the configured budget
        assert svc.llm_budget(100.0) == 30.0
        assert svc.llm_budget(5.0) == pytest.approx(4.8)    # the margin is kept back for the reply
        assert svc.llm_budget(1.1) is None                  # 0.9 s would not fit the LLM: templates
    finally:
        svc._pool.shutdown()
    off = RecService(None, None, None, ServerConfig(llm="off"))
    assert off.llm_budget(None) is None
    off._pool.shutdown()
