"""The store box as a system service: rotated log files, and systemd's notify protocol (Type=notify, WatchdogSec).

Guarantees:
- With `log_file` configured, logs go to that file through `logging.handlers.RotatingFileHandler`: at most
  `log_max_bytes` per file and `log_backups` old files, so a box left alone for months never fills its disk with
  logs. Without it, logs go to stderr (the journal, under systemd). Either way as JSON lines naming the store
  (or text), with the same repeat filter as the cloud (edge/logs.py).
- When `NOTIFY_SOCKET` is set (systemd sets it for Type=notify units), the box says READY=1 once every box of the
  process has started (or failed to), STATUS= with what it runs, STOPPING=1 when asked to stop, and WATCHDOG=1
  every half of `WATCHDOG_USEC` (or every WATCHDOG_DEFAULT_S) - but only while every box is alive (its store actor
  task running and its mailbox not jammed full). A box whose actor is dead or whose event loop is stuck stops the
  pings, and systemd restarts the service. Without NOTIFY_SOCKET nothing is sent and nothing fails.
- The notify protocol is a few lines over a unix datagram socket (an abstract address when it starts with "@"), as
  sd_notify(3) describes; a failure to send is logged once, never fatal.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from edge import logs

WATCHDOG_DEFAULT_S = 5.0  # ping interval when systemd gives no WATCHDOG_USEC (harmless: it ignores extra pings)
log = logging.getLogger("freshmesh.edge")


def setup_logging(log_file: str | None = None, max_bytes: int = 10 * 1024 * 1024, backups: int = 5,
                  form: str | None = None, store_id: str | None = None,
                  env: Mapping[str, str] | None = None) -> logging.Handler:
    """The root logger's one handler: a rotating file, or stderr; JSON lines (or text) naming the store, with the
    repeat filter (edge/logs.py). Returns it (tests and shutdown close it)."""
    return logs.setup(log_file, max_bytes, backups, form=form, store_id=store_id, env=env)


class Notifier:
    """systemd's notify socket (sd_notify(3)); does nothing when NOTIFY_SOCKET is not set."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = not pid or pid == str(os.getpid())
        self.interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and watchdog_for_us else WATCHDOG_DEFAULT_S
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address.replace("\0", "@"), exc)
                self._warned = True
            return False

    async def watchdog(self, alive: Callable[[], bool]) -> None:
        """WATCHDOG=1 every interval while `alive()`; silence otherwise (systemd then restarts the service)."""
        if not self.enabled:
            return
        while True:
            if alive():
                self.send("WATCHDOG=1")
            else:
                log.error("a store box is not alive: withholding the watchdog ping")
            await asyncio.sleep(self.interval_s)


def box_alive(box) -> bool:
    """The box's store actor is running and its mailbox is not jammed full."""
    task = box._tasks.get("actor")  # noqa: SLF001 - the box's own supervision state, read-only
    actor = box.actor
    return task is not None and not task.done() and actor is not None and not actor.mailbox.full()
