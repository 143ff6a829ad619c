"""deploy/: the Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate,
strict: unknown fields fail), the compose file against the Compose specification's schema
(check-jsonschema's vendored copy), and the service arguments in both against our own CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S_VERSION = "1.30.0"   # the oldest version we claim: native gRPC probes are GA since 1.27
MANIFESTS = sorted(p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path):
    import kubernetes_validate
    for doc in _docs(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)   # raises on any error


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in MANIFESTS]


def test_compose_file_matches_the_compose_spec():
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(DEPLOY / "compose.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _serve_config(argv: list[str]):
    """The service's own parser and config validation, as `explainrec serve` would apply them."""
    from server.cli import build_parser
    from server.config import ServerConfig
    args = build_parser().parse_args(argv)
    assert args.command == "serve"
    return ServerConfig.from_args(args, None)


def test_the_service_arguments_are_valid_and_probes_hit_the_grpc_port():
    docs = {(d["kind"], d["metadata"]["name"]): d for p in MANIFESTS for d in _docs(p)}
    pod = docs[("Deployment", "explainrec")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config = _serve_config(container["args"])
    assert config.host == "0.0.0.0" and config.llm == "url"
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert grpc_port == config.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe
    # every vLLM server named in --vllm-url is a pod of the vLLM StatefulSet
    vllm = docs[("StatefulSet", "vllm")]
    expected = {f"http://vllm-{i}.vllm:8000" for i in range(vllm["spec"]["replicas"])}
    assert set(config.vllm_url.split(",")) == expected
    assert pod["terminationGracePeriodSeconds"] > config.grace_s     # the drain finishes before SIGKILL

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["explainrec"]
    assert _serve_config(compose["command"]).vllm_url == "http://vllm:8000"
    assert compose["deploy"]["replicas"] >= 2
