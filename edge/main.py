"""`freshmesh edge --store ID --config FILE`: one store's box (store db, actor, devices, sync, lane API).

A config with a `stores` list runs several boxes in one process (the fleet simulator packs many stores on one
machine this way); each box keeps its own store db, NATS user, devices and lane API port, exactly as alone.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from pathlib import Path

import uvicorn

from edge.box import EdgeBox
from edge.lanes import build_lane_app

log = logging.getLogger("freshmesh.edge")


def _with_env(config: dict) -> dict:
    config.setdefault("data_dir", os.environ.get("FRESHMESH_EDGE_DATA", "./var/edge"))
    config.setdefault("http_port", 9000)
    for key, env in (("nats_url", "NATS_URL"), ("nats_password", "FRESHMESH_STORE_PASSWORD"),
                     ("survey_url_base", "FRESHMESH_SURVEY_URL_BASE")):  # where receipts send the survey
        if os.environ.get(env) and not config.get(key):
            config[key] = os.environ[env]
    return config


def load_configs(args) -> list[dict]:
    config = json.loads(Path(args.config).read_text()) if args.config else {}
    if "stores" in config:  # many boxes: each entry overrides the shared keys
        shared = {k: v for k, v in config.items() if k != "stores"}
        return [_with_env({**shared, **entry}) for entry in config["stores"]]
    config["store_id"] = args.store or config.get("store_id")
    if not config.get("store_id"):
        raise SystemExit("give --store ID (or store_id in the config)")
    if args.http_port:
        config["http_port"] = args.http_port
    return [_with_env(config)]


async def _serve_box(config: dict, stop: asyncio.Event) -> bool:
    """One box, start to stop. In a process with several boxes, one that cannot start is reported and the others
    go on (they are separate stores); a box that started is always stopped cleanly."""
    try:
        box = await EdgeBox(config).start()
    except Exception:  # noqa: BLE001 - e.g. its store db is unreadable: that store is down, not its neighbours
        log.exception("edge %s: could not start", config.get("store_id"))
        return False
    try:
        await _serve_lanes(box, config, stop)
    finally:
        await box.stop()
    return True


async def _serve_lanes(box: EdgeBox, config: dict, stop: asyncio.Event) -> None:
    server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=config["http_port"],
                                           log_level="warning", lifespan="off",
                                           # tills keep their connection; a server closing it just as a client
                                           # reuses it (both at 5 s) would fail a payment for nothing
                                           timeout_keep_alive=75))
    # a launcher may hand over the listening socket itself (`http_fd`), so that nobody can take the port first
    sockets = [socket.socket(fileno=config["http_fd"])] if config.get("http_fd") is not None else None
    task = asyncio.create_task(server.serve(sockets=sockets))
    print(f"edge {config['store_id']}: lanes on http://127.0.0.1:{config['http_port']}", flush=True)
    await stop.wait()
    server.should_exit = True
    await task


async def serve(configs: list[dict] | dict) -> bool:
    """True when every box started (and, after SIGINT/SIGTERM, stopped)."""
    configs = [configs] if isinstance(configs, dict) else configs
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return all(await asyncio.gather(*(_serve_box(c, stop) for c in configs)))


def add_arguments(parser) -> None:
    parser.add_argument("--store", default=None)
    parser.add_argument("--config", default=None, help="JSON: data_dir, http_port, nats_url, devices, world ...")
    parser.add_argument("--http-port", type=int, default=None)


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return 0 if asyncio.run(serve(load_configs(args))) else 1
