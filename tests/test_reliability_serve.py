"""`explainrec serve` with its own real vLLM: the LLM comes back after a kill -9 of vLLM, and a
kill -9 of serve leaves no vLLM process behind (the watchdog ends the group)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from explainer.group_watchdog import child_processes, group_members

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
LLM = "explainrec.v1.LLM"


def wait_for(cond, timeout_s: float, step: float = 1.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def _vllm(serve_pid: int) -> tuple[int | None, int | None]:
    kids = child_processes(serve_pid)
    return (next((p for p, c in kids if "vllm.entrypoints" in c), None),
            next((p for p, c in kids if "group_watchdog" in c), None))


def test_llm_comes_back_and_kill_9_of_serve_leaves_no_orphans(tmp_path, small_db, llm_model_dir, some_user):
    from server.client import ExplainRecClient
    shutil.copy(small_db, tmp_path / "catalog.sqlite")
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / llm_model_dir.name).symlink_to(llm_model_dir)       # prepared model, not rebuilt
    env = dict(os.environ, EXPLAINREC_LLM_KV_CACHE_GIB="1")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workdir", str(tmp_path), "--zero-shot",
                             "--port", "0", "--metrics-port", "0", "--grace-s", "5"],
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.log", "wb"), text=True, env=env)
    seen: list[int] = []
    try:
        info = json.loads(proc.stdout.readline())
        with ExplainRecClient(info["grpc"], timeout_s=60) as c:
            assert wait_for(lambda: c.health() == "SERVING" and c.health(LLM) == "SERVING", 900), \
                (tmp_path / "serve.log").read_text()[-3000:]
            api, dog = _vllm(proc.pid)
            assert api and dog
            seen += [api, dog]
            os.kill(api, signal.SIGKILL)                      # vLLM's API process; its engine is left behind
            assert wait_for(lambda: c.health(LLM) == "NOT_SERVING", 30)
            assert c.health() == "SERVING"                     # the templates answer meanwhile
            reply = c.recommend(user_id=some_user, k=2, explain=True)
            assert {it.justification.source for it in reply.items} == {"template"}
            assert wait_for(lambda: c.health(LLM) == "SERVING", 600), (tmp_path / "serve.log").read_text()[-3000:]
            assert not group_members(api), "the killed server's engine processes were left running"
            metrics = httpx.get(f"http://127.0.0.1:{info['metrics']}/metrics", timeout=10).text
            assert "explainrec_llm_restarts_total 1.0" in metrics
            api2, dog2 = _vllm(proc.pid)
            assert api2 and api2 != api
            seen += [api2, dog2]
            assert len(group_members(api2)) >= 2                # API server + engine core, one group
        proc.kill()                                            # kill -9 of serve itself
        proc.wait()
        assert wait_for(lambda: not group_members(api2) and not any(p and group_members(p) for p in (dog2,)), 60), \
            f"left running: {group_members(api2)}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pgid in seen:          # never leave a vLLM behind, even when an assertion failed
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
