"""A store's edge box for integration tests: started against the test stack's NATS as the store (or through a NetCut
proxy, to cut its network), with its lane app (the lane API and the till page) served on a port of its own, so that
a browser or a client can reach it. It can be stopped and started again on the same data (a box restart). Its seqs
continue those the shared test database holds of the store (tests/conftest.py's `boxes_continue_their_stores`)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import uvicorn

from cloud.embedded.process import free_port
from edge.box import EdgeBox
from edge.lanes import build_lane_app
from tests.integration.harness import eventually

WORLD = Path(__file__).resolve().parents[2] / "cloud" / "data" / "default_world.json"


class ServedBox:
    """The box of `store_id` with data in `data_dir`, its lane app on `base`; `config`: more of the box's config
    (devices, cashiers, ...); `nats_url`: a proxy's, to cut the store's network (default: the stack's own)."""

    def __init__(self, stack, store_id: str, data_dir: Path, nats_url: str | None = None, **config) -> None:
        self.stack, self.store_id, self.data_dir, self.port = stack, store_id, data_dir, free_port()
        self.nats_url, self.config = nats_url or stack.nats_address, config
        self.box: EdgeBox | None = None
        self.server: uvicorn.Server | None = None
        self.serving: asyncio.Task | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, online_within_s: float = 15) -> EdgeBox:
        box = await EdgeBox({"store_id": self.store_id, "data_dir": str(self.data_dir), "world": str(WORLD),
                             "nats_url": self.nats_url, "nats_password": self.stack.store_credentials(self.store_id)[1],
                             **self.config}).start()
        self.box = box
        self.server = uvicorn.Server(uvicorn.Config(build_lane_app(box), host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.serving = asyncio.create_task(self.server.serve())
        assert await eventually(lambda: asyncio.sleep(0, result=box.actor.online), timeout_s=online_within_s)
        return box

    async def stop(self) -> None:
        if self.server is not None and self.serving is not None:
            self.server.should_exit = True
            await self.serving
        if self.box is not None:
            await self.box.stop()
        self.box = self.server = self.serving = None
