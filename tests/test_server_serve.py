"""`explainrec serve` as a real process: starts on a workdir, serves, exposes /metrics and the
support-desk page, and drains on SIGTERM with exit code 0."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_serve_process_serves_and_drains_on_sigterm(tmp_path, small_db, some_user):
    from server.client import ExplainRecClient
    shutil.copy(small_db, tmp_path / "catalog.sqlite")         # work already done is skipped
    env = dict(os.environ, EXPLAINREC_SERVER_AUTH_TOKEN="tok")  # settings from the environment too
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(tmp_path), "--no-llm",
                             "--zero-shot", "--port", "0", "--metrics-port", "0", "--grace-s", "5", "--http-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["llm"] == "off" and info["tls"] is False
        with ExplainRecClient(info["grpc"], token="tok", timeout_s=30) as c:
            c.wait_until_serving(timeout_s=300)
            reply = c.recommend(user_id=some_user, k=3, explain=True)
            assert len(reply.items) == 3 and reply.items[0].justification.fallback_reason == "disabled"
        # the support-desk page calls the service over gRPC with the agent's token
        page = info["desk"]
        assert httpx.get(page, timeout=10).status_code == 200
        denied = httpx.get(f"{page}api/history", params={"user_id": some_user}, timeout=30)
        assert denied.status_code == 401 and denied.json()["error"] == "UNAUTHENTICATED"
        hist = httpx.get(f"{page}api/history", params={"user_id": some_user}, timeout=30,
                         headers={"Authorization": "Bearer tok"}).json()
        assert hist["entries"] and hist["total"] >= len(hist["entries"])
        text = httpx.get(f"http://127.0.0.1:{info['metrics']}/metrics", timeout=10).text
        assert 'method="/explainrec.v1.ExplainRec/Recommend"' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        log = proc.stderr.read()
        assert log.index("draining") < log.index("closing catalog") < log.index("drained")
        # the explainer's read model of the catalog is built at start-up, before the server reports SERVING
        assert log.index("explainer read model built") < log.index("draining")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
