"""`freshmesh edge --store ID --config FILE`: one store's box (store db, actor, devices, sync, lane API).

The lane API listens on `http_host` (config key or `--host`, default 127.0.0.1: the cashier terminals run on the
box itself; a box whose terminals are separate machines on the store LAN sets the LAN address or 0.0.0.0).

Its log is JSON lines naming the store (and the lane and request id of a lane request), or text with
`--log-format text`; `--access-log` adds a line per lane request (edge/logs.py).

A config with a `stores` list runs several boxes in one process (the fleet simulator packs many stores on one
machine this way); each box keeps its own store db, NATS user, devices and lane API port, exactly as alone.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket

import uvicorn

from edge import config as config_schema
from edge import logs, service
from edge.box import EdgeBox
from edge.lanes import build_lane_app

log = logging.getLogger("freshmesh.edge")
DEFAULT_HOST = "127.0.0.1"  # loopback unless the config says otherwise: the lane API takes payments
DESCRIBE_MAX = 4  # boxes in one process described at start in full


def checked_configs(args) -> list[config_schema.StoreConfig]:
    """The boxes to run, checked against the schema (edge/config.py): SystemExit naming what is wrong."""
    try:
        return config_schema.load(args.config, args.store, args.http_port, host=getattr(args, "host", None))
    except config_schema.ConfigError as exc:
        raise SystemExit(f"freshmesh edge: bad configuration: {exc}") from None


def load_configs(args) -> list[dict]:
    return [config_schema.as_box_config(c) for c in checked_configs(args)]


def announce(configs: list[config_schema.StoreConfig], config_path: str | None) -> None:
    """What each box will do, and loudly what it cannot (no cloud); a missing catalogue is told once the box has
    opened its store db (it may hold one the cloud sent)."""
    for config in configs:
        if len(configs) <= DESCRIBE_MAX:  # a fleet process's hundreds of boxes: their lanes' lines say enough
            print(config_schema.describe(config, config_path), flush=True)
        for warning in config_schema.warnings(config, has_catalogue=True):
            head, _, rest = warning.partition(":")  # the head shouted: it must not be missed in a log
            log.warning("edge %s: %s:%s", config.store_id, head.upper(), rest)


async def _serve_box(config: dict, stop: asyncio.Event, started: list, access_log: bool = False) -> bool:
    """One box, start to stop. In a process with several boxes, one that cannot start is reported and the others
    go on (they are separate stores); a box that started is always stopped cleanly."""
    logs.bind_store(config["store_id"])  # this task's lines, and its box's tasks', name the store
    try:
        box = await EdgeBox(config).start()
    except Exception:  # noqa: BLE001 - e.g. its store db is unreadable: that store is down, not its neighbours
        log.exception("edge %s: could not start", config.get("store_id"))
        started.append(None)
        return False
    started.append(box)
    if box.actor is not None and box.actor.catalogue is None:  # the db has none either: say so, loudly
        log.warning("edge %s: NO CATALOGUE: none received from the cloud and no world file; scans are refused",
                    box.store_id)
    try:
        await _serve_lanes(box, config, stop, access_log)
    finally:
        await box.stop()
    return True


def lane_server(app, config: dict) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=config.get("http_host") or DEFAULT_HOST, port=config["http_port"],
                                         log_level="warning", lifespan="off",
                                         log_config=None,  # uvicorn's lines through our handler: JSON, store, lane
                                         # tills keep their connection; a server closing it just as a client
                                         # reuses it (both at 5 s) would fail a payment for nothing
                                         timeout_keep_alive=75))


async def _serve_lanes(box: EdgeBox, config: dict, stop: asyncio.Event, access_log: bool = False) -> None:
    server = lane_server(logs.LaneRequests(build_lane_app(box), box.store_id, access_log), config)
    # a launcher may hand over the listening socket itself (`http_fd`), so that nobody can take the port first
    sockets = [socket.socket(fileno=config["http_fd"])] if config.get("http_fd") is not None else None
    task = asyncio.create_task(server.serve(sockets=sockets))
    print(f"edge {config['store_id']}: lanes on http://{server.config.host}:{config['http_port']}", flush=True)
    await stop.wait()
    server.should_exit = True
    await task


async def serve(configs: list[dict] | dict, access_log: bool = False) -> bool:
    """True when every box started (and, after SIGINT/SIGTERM, stopped). `access_log`: a line per lane request."""
    configs = [configs] if isinstance(configs, dict) else configs
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list = []  # each box once started (None: could not start), for systemd's READY and watchdog
    notifier = service.Notifier()
    tasks = [asyncio.create_task(_notify(notifier, started, len(configs), stop))] if notifier.enabled else []
    try:
        return all(await asyncio.gather(*(_serve_box(c, stop, started, access_log) for c in configs)))
    finally:
        for task in tasks:
            task.cancel()
        notifier.send("STOPPING=1")


async def _notify(notifier: service.Notifier, started: list, expected: int, stop: asyncio.Event) -> None:
    """READY=1 once every box started (or failed to), then the watchdog pings while all that started are alive."""
    while len(started) < expected and not stop.is_set():
        await asyncio.sleep(0.05)
    boxes = [b for b in started if b is not None]
    notifier.send("READY=1", f"STATUS=serving {len(boxes)} of {expected} store boxes "
                             f"({', '.join(b.store_id for b in boxes)})")
    await notifier.watchdog(lambda: all(service.box_alive(b) for b in boxes))


def add_arguments(parser) -> None:
    parser.add_argument("--store", default=None, help="the store this box is (overrides store_id in the config)")
    parser.add_argument("--config", default=None,
                        help="a JSON file in the edge config schema (edge/config.py; example: edge/example-config.json); "
                             "unknown keys are refused. Reads FRESHMESH_EDGE_DATA, NATS_URL, FRESHMESH_STORE_PASSWORD, "
                             "FRESHMESH_SURVEY_URL_BASE for keys it leaves out")
    parser.add_argument("--http-port", type=int, default=None,
                        help="the lane API's port (overrides http_port; default 9000)")
    parser.add_argument("--host", default=None,
                        help="address the lane API listens on (default: http_host in the config, else "
                             "$FRESHMESH_EDGE_HOST, else 127.0.0.1)")
    parser.add_argument("--log-format", choices=("json", "text"), default=None,
                        help="log lines as JSON (ts, level, logger, msg, store_id, lane and request_id while a lane "
                             "request is served) or plain text (default: $FRESHMESH_LOG_FORMAT, else json); to "
                             "log_file in the config (rotated) or stderr")
    parser.add_argument("--access-log", action="store_true",
                        help="one JSON log line per lane API request (method, path, status, duration, request id, "
                             "lane), on the freshmesh.access logger")


def main(argv: list[str] | None = None) -> int:
    """`python -m edge`: the same as `freshmesh edge`."""
    import argparse
    from importlib import metadata
    parser = argparse.ArgumentParser(prog="python -m edge", description="one store's edge box",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"freshmesh {metadata.version('freshmesh')}")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    configs = checked_configs(args)  # refused before anything is made or logged
    first = configs[0]  # one process, one log (a fleet process's boxes share it: each line names its box's store)
    try:
        service.setup_logging(first.log_file, first.log_max_bytes, first.log_backups,
                              form=getattr(args, "log_format", None),
                              store_id=first.store_id if len(configs) == 1 else None)
    except ValueError as exc:  # FRESHMESH_LOG_FORMAT / _LEVEL / _REPEAT_S: said before anything starts
        raise SystemExit(f"freshmesh edge: {exc}") from None
    announce(configs, args.config)
    boxes = [config_schema.as_box_config(c) for c in configs]
    return 0 if asyncio.run(serve(boxes, access_log=getattr(args, "access_log", False))) else 1
