"""LLM supervision on a stand-in process tree (fast tier): a tiny HTTP "vLLM" with an "engine" child
in its group. The same paths with the real vLLM are in tests/test_reliability_serve.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from explainer.group_watchdog import group_members

FAKE_VLLM = textwrap.dedent("""
    import http.server, subprocess, sys
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])   # the 'engine': same group
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers()
        def log_message(self, *a):
            pass
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")

FAKE_SERVER_CLASS = textwrap.dedent("""
    import sys
    from explainer.config import ExplainerConfig
    from explainer.vllm_server import LocalVLLMServer

    class FakeVLLM(LocalVLLMServer):
        def command(self, model_dir):
            return [sys.executable, {script!r}, str(self.port)]

    def make(tmp):
        return FakeVLLM(ExplainerConfig(model_dir=tmp, workdir=tmp, startup_timeout_s=60))
""")


@pytest.fixture()
def fake_module(tmp_path, monkeypatch):
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    (tmp_path / "fake_server.py").write_text(FAKE_SERVER_CLASS.format(script=str(script)))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import fake_server
    importlib.reload(fake_server)
    return fake_server


def wait_for(cond, timeout_s: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def test_kill_9_of_the_parent_ends_the_whole_group(tmp_path, fake_module):
    """The parent starts the server from a worker thread (as `serve` does), then is SIGKILLed:
    the watchdog ends the API process and its engine child."""
    code = textwrap.dedent(f"""
        import json, sys, threading, time
        sys.path.insert(0, {str(tmp_path)!r})
        import fake_server
        srv = fake_server.make({str(tmp_path)!r})
        t = threading.Thread(target=srv.start); t.start(); t.join()
        print(json.dumps({{"pgid": srv.pid, "watchdog": srv.watchdog_pid}}), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env=dict(os.environ, PYTHONPATH=os.getcwd()))
    info = json.loads(parent.stdout.readline())
    pgid = info["pgid"]
    assert wait_for(lambda: len(group_members(pgid)) == 2, 10), group_members(pgid)   # API + engine
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_for(lambda: not group_members(pgid), 20), f"orphans left: {group_members(pgid)}"
    assert wait_for(lambda: not group_members(info["watchdog"]), 10)


def test_supervisor_restarts_a_killed_server_and_clears_its_group(tmp_path, fake_module):
    from explainer.vllm_supervisor import LLMSupervisor, SupervisorConfig
    from server import metrics
    srv = fake_module.make(tmp_path)
    changes: list[bool] = []
    srv.start()
    sup = LLMSupervisor(srv, on_change=changes.append,
                        config=SupervisorConfig(check_interval_s=0.1, health_interval_s=0.5, backoff_initial_s=0.2))
    metrics.watch_llm(sup.start())
    try:
        first, url = srv.pid, srv.url
        os.kill(first, signal.SIGKILL)                       # the API process only; its engine lingers
        assert wait_for(lambda: sup.restarts == 1 and sup.up, 30)
        assert srv.pid != first and srv.url == url and srv.healthy()
        assert not group_members(first), "the killed server's engine was left running"
        assert changes[:3] == [True, False, True]
        assert sup.down_seconds() > 0
        from prometheus_client import generate_latest
        text = generate_latest().decode()
        assert "explainrec_llm_restarts_total 1.0" in text and "explainrec_llm_up 1.0" in text
    finally:
        sup.stop()
        metrics.watch_llm(None)
    assert not srv.running and not group_members(first)


def test_a_stop_during_the_start_ends_a_vllm_that_ignores_sigterm_in_seconds(tmp_path):
    """A loading vLLM ignored SIGTERM for the whole 30 s grace, so a SIGTERM to `serve` during the start
    took 30 s and logged the start as failed. Before /health answers, stop() waits STARTING_STOP_GRACE_S,
    then SIGKILLs the group, and the start ends with StartStopped (the service logs it as stopping)."""
    import threading

    from explainer.config import ExplainerConfig
    from explainer.vllm_server import STARTING_STOP_GRACE_S, LocalVLLMServer, StartStopped
    script = tmp_path / "deaf_vllm.py"
    script.write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)\n")

    class DeafVLLM(LocalVLLMServer):
        def command(self, model_dir):
            return [sys.executable, str(script)]

    srv = DeafVLLM(ExplainerConfig(model_dir=tmp_path, workdir=tmp_path, startup_timeout_s=60))
    raised: list[BaseException] = []

    def start():
        try:
            srv.start()
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            raised.append(exc)
    t = threading.Thread(target=start)
    t.start()
    assert wait_for(lambda: srv.pid is not None, 10)
    pgid = srv.pid
    time.sleep(0.5)
    t0 = time.monotonic()
    srv.stop()
    stopped_s = time.monotonic() - t0
    t.join(10)
    assert not t.is_alive() and len(raised) == 1 and isinstance(raised[0], StartStopped), raised
    assert STARTING_STOP_GRACE_S - 0.5 <= stopped_s < STARTING_STOP_GRACE_S + 5, stopped_s
    assert wait_for(lambda: not group_members(pgid), 10), f"left: {group_members(pgid)}"
