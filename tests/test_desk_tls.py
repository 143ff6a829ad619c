"""The support-desk page against a TLS-only service (real gRPC server on loopback, the priced
catalog on a real SQLite file): the page that `serve --http-port` starts beside a TLS or mutual-TLS
service answers, `explainrec desk` takes the CLI client's TLS options, and a desk set up wrong
stops at start-up with an error that names the option to fix."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from server.desk.gateway import ServiceUnreachable
from server.desk.web import DeskServer
from server.tls import ClientTLS
from tests.certs import make_cert
from tests.fixtures_server import ServerHarness, server_config, template_service_factory

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; a server certificate it signs for 'localhost' (not for the IP the page dials); a client
    certificate it signs; and a second CA that signed neither."""
    d = tmp_path_factory.mktemp("pki")
    ca_crt, ca_key, ca_cert, ca_k = make_cert(d, "test-ca")
    srv_crt, srv_key, _, _ = make_cert(d, "server", (ca_cert, ca_k))
    cli_crt, cli_key, _, _ = make_cert(d, "desk-client", (ca_cert, ca_k))
    other_ca, _, _, _ = make_cert(d, "other-ca")
    return {"ca": str(ca_crt), "cert": str(srv_crt), "key": str(srv_key), "client_cert": str(cli_crt),
            "client_key": str(cli_key), "other_ca": str(other_ca)}


@pytest.fixture(scope="module")
def tls_server(pki, priced_catalog, priced_ranker):
    cfg = server_config(tls_cert=pki["cert"], tls_key=pki["key"], http_port=0)
    h = ServerHarness(cfg, template_service_factory(priced_catalog, priced_ranker, cfg))
    yield h
    h.close()


@pytest.fixture(scope="module")
def mtls_server(pki, priced_catalog, priced_ranker):
    cfg = server_config(tls_cert=pki["cert"], tls_key=pki["key"], tls_client_ca=pki["ca"], http_port=0,
                        desk_tls_cert=pki["client_cert"], desk_tls_key=pki["client_key"])
    h = ServerHarness(cfg, template_service_factory(priced_catalog, priced_ranker, cfg))
    yield h
    h.close()


def _serve_desk(harness):
    """The page as `serve --http-port` starts it: beside the service, dialling it on loopback."""
    from server.run import start_desk
    return harness.run(start_desk(harness.config, harness.port))


def _history_and_stream(url: str, user: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        hist = http.get("/api/history", params={"user_id": user})
        assert hist.status_code == 200, hist.text
        assert hist.json()["entries"]
        r = http.get("/api/stream", params={"user_id": user, "k": 3})
        assert r.status_code == 200 and "event: ranked" in r.text and "event: done" in r.text, r.text[-500:]


@pytest.mark.parametrize("which", ["tls", "mutual"])
def test_served_page_calls_a_tls_service(request, priced_catalog, which):
    harness = request.getfixturevalue("tls_server" if which == "tls" else "mtls_server")
    desk = _serve_desk(harness)
    try:
        assert desk.gateway.tls.enabled and desk.gateway.tls.server_name == "localhost"
        _history_and_stream(desk.url, priced_catalog.user_ids()[3])
    finally:
        harness.run(desk.stop())


def test_mutual_tls_page_needs_a_client_certificate(pki):
    with pytest.raises(ValueError, match="desk_tls_cert"):
        server_config(tls_cert=pki["cert"], tls_key=pki["key"], tls_client_ca=pki["ca"], http_port=0)
    with pytest.raises(ValueError, match="desk_tls_cert and desk_tls_key"):
        server_config(tls_cert=pki["cert"], tls_key=pki["key"], desk_tls_cert=pki["client_cert"])
    with pytest.raises(ValueError, match="desk_tls_ca is for a TLS service"):
        server_config(desk_tls_ca=pki["ca"])


@pytest.mark.parametrize("case,expect", [
    ("plaintext", "speaks TLS only: give --tls-ca"),
    ("wrong_ca", "is not signed by --tls-ca"),
    ("ip_not_in_cert", "not valid for the host"),
    ("no_client_cert", "give --tls-cert and --tls-key"),
    ("tls_to_plaintext", "does not speak TLS"),
])
def test_a_desk_set_up_wrong_says_which_option(request, pki, priced_server, case, expect):
    harness = request.getfixturevalue("mtls_server" if case == "no_client_cert" else "tls_server")
    port = harness.port
    target, tls = {
        "plaintext": (f"localhost:{port}", None),
        "wrong_ca": (f"localhost:{port}", ClientTLS(pki["other_ca"])),
        "ip_not_in_cert": (f"127.0.0.1:{port}", ClientTLS(pki["ca"])),
        "no_client_cert": (f"localhost:{port}", ClientTLS(pki["ca"])),
        "tls_to_plaintext": (priced_server.target, ClientTLS(pki["ca"])),
    }[case]

    async def start():
        await DeskServer(target, "127.0.0.1", 0, tls).start()
    with pytest.raises(ServiceUnreachable, match=expect):
        harness.run(start())


def test_desk_command_over_tls_and_its_errors(pki, tls_server, priced_catalog):
    """`explainrec desk` as a user runs it: the CLI client's --tls-ca; without it, exit code 2 and why."""
    target = f"localhost:{tls_server.port}"
    bad = subprocess.run([sys.executable, "-m", "server.cli", "desk", "--target", target, "--port", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "speaks TLS only: give --tls-ca" in bad.stderr, bad.stderr[-2000:]
    bad = subprocess.run([sys.executable, "-m", "server.cli", "desk", "--target", target, "--port", "0",
                          "--tls-ca", pki["ca"], "--tls-cert", pki["client_cert"]],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--tls-cert and --tls-key must be given together" in bad.stderr
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "desk", "--target", target, "--port", "0",
                             "--tls-ca", pki["ca"]], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert line and line[0].strip(), proc.stderr.read() if proc.poll() is not None else "no output"
        _history_and_stream(json.loads(line[0])["desk"], priced_catalog.user_ids()[4])
    finally:
        proc.terminate()
        proc.wait(30)
