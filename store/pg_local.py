"""A throwaway PostgreSQL cluster on loopback, for tests and benchmarks (never for serving).

`initdb` + `pg_ctl` from Debian's `postgresql` package, in a fresh temporary directory, on a
free 127.0.0.1 port, with trust authentication for one role. `initdb` refuses to run as root,
so as root (CI, this machine) every server command runs as the unprivileged `postgres` user
that the Debian package creates, and the directory is handed to that user.

    with LocalPostgres() as pg:
        url = pg.create_database("t1")     # postgresql://explainrec@127.0.0.1:PORT/t1
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROLE = "explainrec"
SERVER_USER = "postgres"   # created by Debian's postgresql package


def find_bindir() -> Path:
    """The newest installed server's bin directory (Debian keeps them off PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise FileNotFoundError("PostgreSQL server binaries not found: apt-get install -y postgresql "
                            "(scripts/setup.sh does it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    def __init__(self, port: int | None = None, base_dir: str | Path | None = None):
        self.bindir = find_bindir()
        self.port = port or free_port()
        # as root the server runs as another user, who must reach the directory: /tmp is
        # world-traversable, a root-only $TMPDIR may not be
        root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="explainrec-pg-", dir=base_dir or ("/tmp" if root else None)))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(f"running as root needs the unprivileged {SERVER_USER!r} user "
                                   "(Debian's postgresql package creates it)") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [*self._as_user, str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{log}")

    def start(self) -> "LocalPostgres":
        # --no-sync only speeds up initdb's own files; the server keeps fsync on, so a commit
        # is as durable here as in production (the write-rate bench depends on it).
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        for attempt in range(3):    # the free port may be taken meanwhile by another process
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                    "-c max_connections=200 -c shared_buffers=64MB")
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
                break
            except RuntimeError:
                if attempt == 2 or "could not bind" not in self.log.read_text(errors="replace"):
                    raise
                self.port = free_port()
        self.started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`, which must have no open connections)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(stmt)
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            try:
                # immediate: no shutdown checkpoint; the directory is deleted next anyway
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
            finally:
                self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)
