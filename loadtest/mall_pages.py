"""`freshmesh load mall-pages`: a few hundred simulated browsers open the mall's home page and product pages at
once, against a running cloud (`--url`), or one started here (embedded NATS and PostgreSQL, `freshmesh cloud`).

Each browser is an httpx client with its own cookies (a chosen store, so a product page reads that store's stock
as a real visit does): it opens the home page and the stylesheet and script (a first visit), then keeps opening
product pages and now and then the home page again, closed loop, for `--duration` seconds. A page counts when its
HTML arrived whole with status 200; its time is request to last byte (what the browser needs to render it: the
assets are cached after the first visit). The JSON report gives, per page kind, count, errors and p50/p99/max in ms.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

from loadtest.report import Progress, latency_ms, stop_process, wait_http

WORLD = Path(__file__).resolve().parents[1] / "cloud" / "data" / "default_world.json"
STORES = ["S001", "S002", "S003", "S004", "S005"]
HOME_EVERY = 3  # one page in three is the home page again (a customer going back to browse)
CONNECT_LIMIT = 1000


def online_skus() -> list[str]:
    return [p["sku"] for p in json.loads(WORLD.read_text())["catalogue"] if "online" in p["channels"]]


def browser_client(url: str, n: int, tls: ssl.SSLContext) -> httpx.AsyncClient:
    """Browser n: its own cookies (a chosen store, a language) and connections. `tls`: one context for all (httpx
    builds one per client otherwise, loading the CA bundle each time: seconds of CPU for a few hundred clients,
    which the report would count as the cloud's)."""
    cookies = {"mall_store": STORES[n % len(STORES)], "mall_lang": "zh" if n % 4 else "en"}
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)  # a browser's few connections to one host
    return httpx.AsyncClient(base_url=url, cookies=cookies, timeout=30, limits=limits, verify=tls)


async def _browser(http: httpx.AsyncClient, n: int, end: float, skus: list[str], samples: dict, errors: dict) -> None:
    rng = random.Random(n)
    async with http:
        async def visit(kind: str, path: str, marker: str) -> None:
            started = time.perf_counter()
            try:
                r = await http.get(path)
                ok = r.status_code == 200 and marker in r.text
            except httpx.HTTPError:
                ok = False
            if ok:
                samples[kind].append(time.perf_counter() - started)
            else:
                errors[kind] += 1

        await visit("home", "/mall", 'class="shelves"')
        await visit("assets", "/mall/static/mall.css", ".tabs")
        await visit("assets", "/mall/static/mall.js", "Mall")
        i = 0
        while time.monotonic() < end:
            i += 1
            if i % HOME_EVERY == 0:
                await visit("home", "/mall", 'class="shelves"')
            else:
                await visit("product", f"/mall/products/{rng.choice(skus)}", 'id="availability"')


ROUTES = {"home": "/mall", "product": "/mall/products/{sku}"}


def server_side(metrics_text: str) -> dict:
    """From the cloud's /metrics (every API worker's histogram summed): per page kind, requests served, the mean
    time inside the server and the bucket under which 99% of them finished (ms): what the cloud itself spent, apart
    from queueing in this client on the same box."""
    out = {}
    for kind, route in ROUTES.items():
        label = f'route="{route}"'
        buckets: list[tuple[float, float]] = []
        total = count = 0.0
        for line in metrics_text.splitlines():
            if label not in line or line.startswith("#"):
                continue
            name, value = line.rsplit(" ", 1)
            if name.startswith("freshmesh_http_request_seconds_bucket"):
                le = name.split('le="', 1)[1].split('"', 1)[0]
                buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
            elif name.startswith("freshmesh_http_request_seconds_sum"):
                total = float(value)
            elif name.startswith("freshmesh_http_request_seconds_count"):
                count = float(value)
        buckets.sort()
        p99 = next((le for le, n in buckets if count and n >= 0.99 * count), None)
        out[kind] = {"served": int(count), "mean_ms": round(total / count * 1000, 2) if count else None,
                     "p99_under_ms": None if p99 is None or p99 == float("inf") else p99 * 1000}
    return out


async def _load(url: str, browsers: int, seconds: float) -> dict:
    skus = online_skus()
    samples: dict[str, list[float]] = {"home": [], "product": [], "assets": []}
    errors = {kind: 0 for kind in samples}
    tls = ssl.create_default_context()
    clients = [browser_client(url, n, tls) for n in range(browsers)]  # made before the clock starts
    progress = Progress("mall-pages")
    started = time.monotonic()
    end = started + seconds
    tasks = [asyncio.create_task(_browser(http, n, end, skus, samples, errors)) for n, http in enumerate(clients)]
    while not all(t.done() for t in tasks):
        progress.update(f"{sum(len(s) for s in samples.values())} pages")
        await asyncio.sleep(0.5)
    progress.done()
    for t in tasks:
        t.result()
    elapsed = time.monotonic() - started
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        metrics = await http.get("/metrics")
    server = server_side(metrics.text) if metrics.status_code == 200 else {}
    pages = {kind: {"count": len(s), "errors": errors[kind], "latency_ms": latency_ms(s)} for kind, s in samples.items()}
    p99 = {kind: latency_ms(s)["p99"] for kind, s in samples.items()}
    return {"suite": "mall-pages", "url": url, "browsers": browsers, "seconds": round(elapsed, 1),
            "pages_per_s": round(sum(len(s) for s in samples.values()) / elapsed, 1), "pages": pages,
            "home_p99_ms": p99["home"], "product_p99_ms": p99["product"],
            "server": server,
            "note": "request to last byte of the server-rendered HTML, closed loop; the client runs on the same box"}


def run_from_args(args) -> dict:
    url, cloud, stack, workdir = args.url, None, None, None
    try:
        if not url:
            from cloud.embedded import EmbeddedStack
            from cloud.embedded.process import free_port
            from cloud.main import secret_key_beside
            from loadtest.flashsale import _start
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            workdir = Path(tempfile.mkdtemp(prefix="freshmesh-load-"))
            stack = EmbeddedStack(workdir=workdir / "stack").start()
            env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "RAY_ADDRESS")}
            env.update({"NATS_URL": stack.nats_url, "DATABASE_URL": stack.database_url,
                        "FRESHMESH_SECRET_KEY": secret_key_beside(stack.workdir),
                        "FRESHMESH_STORE_CREDENTIALS": str(stack.credentials.path),
                        "FRESHMESH_ADMIN_PASSWORD": secrets.token_urlsafe(12)})
            cloud = _start([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(port), "--workers",
                            str(args.workers)], f"{url}/health", env=env)
        wait_http(f"{url}/health", 60)
        return asyncio.run(_load(url.rstrip("/"), args.browsers, args.duration))
    finally:
        stop_process(cloud)
        if stack is not None:
            stack.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
