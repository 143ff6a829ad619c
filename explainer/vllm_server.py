"""LocalVLLMServer: start and stop vLLM's OpenAI-compatible server as a child process.

The CPU wheel is started as `python -m vllm.entrypoints.openai.api_server` (its `vllm serve`
script cannot find the distribution's metadata). The server runs in its own session (so its own
process group) so that stop() can bring down the API process and its engine processes together.
Beside it runs a watchdog process (`group_watchdog.py`) holding a pipe from this process: when
this process dies in any way, `kill -9` included, the watchdog ends the whole group. An atexit
hook stops whatever is still running on a normal exit.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import httpx

from explainer.config import ExplainerConfig
from explainer.prepare import SERVED_NAME, prepare_model
from store.paths import default_workdir

log = logging.getLogger(__name__)

_LIVE: "weakref.WeakSet[LocalVLLMServer]" = weakref.WeakSet()


# Asks the kernel for SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG, kept across exec), leaves
# if the parent is already gone, then becomes the command. A launcher, not a preexec_fn: Python code
# between fork and exec in a threaded parent (gRPC's pollers, the supervisor) can deadlock or abort.
_DEATH_SIGNAL_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n")


def with_death_signal(cmd: list[str]) -> list[str]:
    """`cmd`, run so that it gets SIGTERM when this process dies, even by SIGKILL. The signal follows
    the forking *thread*: only use it from the main one."""
    return [sys.executable, "-c", _DEATH_SIGNAL_LAUNCHER, str(os.getpid()), *cmd]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


STARTING_STOP_GRACE_S = 3.0
"""How long a vLLM that has not answered /health yet gets to end on SIGTERM before SIGKILL: nothing
is served to drain, and while it loads its model it ignored SIGTERM for the whole 30 s grace here
(a SIGTERM to `explainrec serve` during the start took 30 s)."""


class StartStopped(RuntimeError):
    """`stop()` ended a `start()` in progress (the service is stopping): not a failure to report."""


class LocalVLLMServer:
    """One vLLM API server on loopback serving the prepared SmolLM2 directory.

    Usage: `with LocalVLLMServer(cfg) as srv: ... srv.url ...`
    """

    def __init__(self, config: ExplainerConfig | None = None):
        self.config = config or ExplainerConfig()
        self.workdir = Path(self.config.workdir or default_workdir())
        self.model_name = self.config.model or SERVED_NAME
        self.port = self.config.port
        self.url = ""
        self.log_path = self.workdir / "logs" / "vllm-server.log"
        self._proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None
        self.stop_grace_s = 30.0
        self._ready = False                    # answered /health since its start
        self._stop_lock = threading.Lock()     # the supervisor's thread and the drain may both stop it

    # -- life cycle -----------------------------------------------------------
    def command(self, model_dir: Path) -> list[str]:
        c = self.config
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(model_dir), "--served-model-name", self.model_name,
               "--host", c.host, "--port", str(self.port),
               "--dtype", "bfloat16", "--max-model-len", str(c.max_model_len),
               "--disable-uvicorn-access-log"]
        if c.enforce_eager:
            cmd.append("--enforce-eager")
        cmd.append("--enable-prefix-caching" if c.enable_prefix_caching else "--no-enable-prefix-caching")
        return cmd + list(c.extra_args)

    def reserve_url(self) -> str:
        """Picks the port now (when configured as 0), so the URL is known before `start`: a parent
        can hand it to processes that start beside the server (`serve --workers N`)."""
        if self.port == 0:
            self.port = _free_port(self.config.host)
        self.url = f"http://{self.config.host}:{self.port}"
        return self.url

    def start(self) -> "LocalVLLMServer":
        if self.running:
            return self
        model_dir = Path(self.config.model_dir) if self.config.model_dir else prepare_model(self.workdir)
        if self.port == 0:      # picked once: a restart keeps the URL the explainer already uses
            self.port = _free_port(self.config.host)
        self.url = f"http://{self.config.host}:{self.port}"
        env = dict(os.environ)
        env.update({
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": str(self.config.kv_cache_gib),
            "VLLM_CACHE_ROOT": str(self.workdir / "vllm-cache"),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        })
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        logf.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command(model_dir))}\n".encode())
        logf.flush()
        cmd = self.command(model_dir)
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            cmd = with_death_signal(cmd)   # the death signal follows the forking *thread*: the main one only
        self._proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                      start_new_session=True)
        logf.close()
        self._watchdog = self._start_watchdog(self._proc.pid)
        _LIVE.add(self)
        log.info("vLLM server starting (pid %d, %s), log %s", self._proc.pid, self.url, self.log_path)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self._ready = True
        log.info("vLLM server ready at %s", self.url)
        return self

    def _start_watchdog(self, pgid: int) -> subprocess.Popen | None:
        """A process that ends group `pgid` when our end of its stdin pipe closes (we died or stopped)."""
        script = Path(__file__).with_name("group_watchdog.py")
        try:
            return subprocess.Popen([sys.executable, "-s", str(script), str(pgid), str(min(self.stop_grace_s, 10.0))],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
        except OSError:
            log.exception("could not start the vLLM watchdog; a kill -9 of this process would orphan vLLM")
            return None

    def _wait_healthy(self) -> None:
        t0 = time.monotonic()
        # the first probes come quickly (a restart of a warm server, or a stand-in, is up in well under
        # a second), then once a second: a cold vLLM takes a minute, and each probe costs a connection
        pause = 0.05
        while time.monotonic() - t0 < self.config.startup_timeout_s:
            proc = self._proc
            if proc is None:
                raise StartStopped("vLLM server stopped during start-up")
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited with code {proc.returncode} during start-up; "
                                   f"see {self.log_path}:\n{self._log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
        raise TimeoutError(f"vLLM server not healthy after {self.config.startup_timeout_s:.0f} s; "
                           f"see {self.log_path}:\n{self._log_tail()}")

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog else None

    def healthy(self, timeout_s: float = 5.0) -> bool:
        """The process is alive and answers /health."""
        if not self.running:
            return False
        try:
            return httpx.get(self.url + "/health", timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM to the whole process group (API server + engine), SIGKILL if it lingers."""
        with self._stop_lock:
            self._stop(self.stop_grace_s if timeout_s is None else timeout_s)

    def _stop(self, timeout_s: float) -> None:
        starting = not self._ready
        if starting:              # nothing to drain yet
            timeout_s = min(timeout_s, STARTING_STOP_GRACE_S)
        self._ready = False
        proc, self._proc = self._proc, None
        watchdog, self._watchdog = self._watchdog, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:   # expected of a vLLM still loading its model
                log.log(logging.INFO if starting else logging.WARNING,
                        "vLLM server did not stop in %.0f s%s: SIGKILL", timeout_s, " (still starting)" if starting else "")
        # the engine core may outlive the API process: clear the group either way
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if watchdog is not None:     # EOF on its pipe: it finds the group gone and exits
            try:
                watchdog.stdin.close()
                watchdog.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                watchdog.kill()
        _LIVE.discard(self)
        log.info("vLLM server stopped")

    def __enter__(self) -> "LocalVLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.stop(timeout_s=5)


@atexit.register
def _stop_all() -> None:
    for srv in list(_LIVE):
        srv.stop(timeout_s=10)
