"""`freshmesh edge --store ID --config FILE`: one store's box (shard, actor, devices, sync, lane API)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

import uvicorn

from edge.box import EdgeBox
from edge.lanes import build_lane_app


def load_config(args) -> dict:
    config = json.loads(open(args.config).read()) if args.config else {}
    config["store_id"] = args.store or config.get("store_id")
    if not config.get("store_id"):
        raise SystemExit("give --store ID (or store_id in the config)")
    config.setdefault("data_dir", os.environ.get("FRESHMESH_EDGE_DATA", "./var/edge"))
    config.setdefault("http_port", 9000)
    for key, env in (("nats_url", "NATS_URL"), ("store_secret", "FRESHMESH_STORE_SECRET"),
                     ("nats_password", "FRESHMESH_STORE_PASSWORD")):
        if os.environ.get(env) and not config.get(key):
            config[key] = os.environ[env]
    if args.http_port:
        config["http_port"] = args.http_port
    return config


async def serve(config: dict) -> None:
    box = await EdgeBox(config).start()
    server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=config["http_port"],
                                           log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(server.serve())
    print(f"edge {config['store_id']}: lanes on http://127.0.0.1:{config['http_port']}", flush=True)
    await stop.wait()
    server.should_exit = True
    await task
    await box.stop()


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(load_config(args)))
    return 0
