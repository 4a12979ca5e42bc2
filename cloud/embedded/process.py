"""Starting and stopping a child server process so that none is ever left behind."""
from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
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
