"""Starting and stopping a child server process so that none is ever left behind.

Two mechanisms, each for what it fits:
- a server child (nats-server, PostgreSQL, an API) gets a parent-death signal (`PR_SET_PDEATHSIG`, set in the child
  after Popen has dropped privileges - the setting is cleared by a change of uid, so it is set last) and stops the
  way it stops cleanly (PostgreSQL's fast shutdown on SIGINT);
- what a process starts that is not its child, or starts further down (a local Ray's GCS and raylet start workers
  and agents, which Ray's own fate sharing does not reach: after a `kill -9` its dashboard and runtime-env agents
  lived on), is held in the process's own process group, and a reaper - a tiny process in its own session that
  waits on a pipe only we hold the write end of - kills that whole group the moment we are gone, however we went
  (`reap_group_on_exit`).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A bound, listening socket on a free port, inheritable: hand it to a child (`pass_fds`) and the port is
    the child's with no window in which another process could take it (unlike `free_port`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    except OSError:
        pass


# The reaper: blocks reading the pipe (EOF = every holder of its write end, i.e. the cloud process, is gone), then
# kills the group. Inline (`python -c`): nothing of ours to import, so it is up in milliseconds.
_REAPER = """
import os, signal, sys
pgid = int(sys.argv[1])
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    while os.read(0, 4096):
        pass
except OSError:
    pass
try:
    os.killpg(pgid, signal.SIGKILL)
except OSError:
    pass
"""
_reaper_pipe: int | None = None  # our write end: kept open for the life of this process, never written


def reap_group_on_exit() -> int | None:
    """Put this process at the head of its own process group (if it is not already) and start the reaper of that
    group: when this process ends - `kill -9` included - every process still in the group is killed (a local
    Ray's processes, the API's workers). Returns the reaper's pid, or None where this cannot be done.

    Only for a top-level command (`freshmesh cloud`): a new group means a Ctrl-C at a terminal reaches us only if
    our shell gave us the foreground group, which an interactive shell does (each command heads its own group
    there, and this changes nothing)."""
    global _reaper_pipe
    if os.name != "posix" or _reaper_pipe is not None:
        return None
    try:
        if os.getpgid(0) != os.getpid():
            os.setpgid(0, 0)
    except OSError:
        return None  # a session leader of another group cannot move: nothing of ours to kill safely
    if os.getpgid(0) != os.getpid():
        return None
    read_end, write_end = os.pipe()  # both close-on-exec: no child of ours inherits the write end
    try:
        reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid())], stdin=read_end,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.close(read_end)
    _reaper_pipe = write_end
    return reaper.pid


def as_user(user: str | None) -> dict:
    """Popen arguments that run a child as `user` with only that user's uid and primary gid (`user=` alone
    keeps root's gid and supplementary groups, so the child could read what only root's group may)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def spawn(argv: list[str], log_path: Path, user: str | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start a server with its output in log_path. If we are killed (-9 included) it gets SIGINT.

    The parent-death signal follows the *thread* that forks, so it is only armed from the main thread.
    """
    armed = threading.current_thread() is threading.main_thread() and os.name == "posix"
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, **as_user(user),
            preexec_fn=die_with_parent if armed else None, start_new_session=True,
        )


def spawn_quiet(argv: list[str], env: dict | None = None, log_path: Path | None = None,
                pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A child in its own session (a Ctrl-C at the terminal reaches only us; we stop it ourselves, in order),
    which still gets SIGINT if we die. Its output goes to `log_path` (kept for a post-mortem) or nowhere."""
    armed = threading.current_thread() is threading.main_thread() and os.name == "posix"
    with contextlib.ExitStack() as stack:  # a log file is closed here once the child has its own copy
        out: IO[bytes] | int = stack.enter_context(open(log_path, "ab")) if log_path else subprocess.DEVNULL
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if log_path else out,
                                stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds,
                                preexec_fn=die_with_parent if armed else None)


def wait_for_port(port: int, proc: subprocess.Popen, what: str, log_path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; log {log_path}:\n{tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s}s; log:\n{tail(log_path)}")


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace_s: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
