"""`explainrec serve` as a real child process, for the replica tests and bench/bench_scale.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


class ServeProcess:
    """Starts `explainrec serve ARGS --port 0 --metrics-port 0`; `.target` and `.metrics_port`
    come from its first stdout line. The log goes to a temp file (`.log()` reads it)."""

    def __init__(self, *args: str, env: dict | None = None):
        self._log = tempfile.NamedTemporaryFile("w+", prefix="explainrec-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--metrics-port", "0", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True, env=dict(os.environ, **(env or {})))
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(300)
        if not first or not first[0].strip():
            self.kill()
            raise RuntimeError(f"serve did not start:\n{self.log()[-3000:]}")
        info = json.loads(first[0])
        self.target = info["grpc"]
        self.metrics_port = info["metrics"]

    def wait_serving(self, timeout_s: float = 600) -> "ServeProcess":
        from server.client import ExplainRecClient
        with ExplainRecClient(self.target, timeout_s=30) as c:
            try:
                c.wait_until_serving(timeout_s=timeout_s)
            except TimeoutError:
                raise TimeoutError(f"{self.target} not serving:\n{self.log()[-3000:]}") from None
        return self

    def calls(self, method: str) -> float:
        """How many `method` calls this replica finished with OK (from its /metrics)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("explainrec_requests_total{") and f'ExplainRec/{method}"' in line \
                    and 'code="OK"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no drain, like a crashed machine."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def terminate(self) -> None:
        """SIGTERM: drain and exit (`stop` waits for it); signal several before waiting on any."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        os.unlink(self._log.name)
        return self.proc.returncode
