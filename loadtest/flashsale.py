"""`freshmesh load flashsale`: open-loop HTTP load on one flash sale, many members; oversold must be 0.

Authentication is on, as in production: before the sale, `--members` members sign in through the cloud's sign-in
endpoints (a code by SMS each, read from the simulated provider) and take a flash pass; every attempt carries one
of those passes. Without --url it starts the simulated SMS provider and `freshmesh cloud` (embedded servers,
--workers uvicorn processes) and stops them after; with --url give the provider with --sms-url and --sms-key.
The sale is opened by the cloud's first account `admin`: without --url with a password made for the run; with --url
sign in as --admin-user with --admin-password (or FRESHMESH_ADMIN_PASSWORD).
Without --url, stores S001 and S002 receive the units and grant them online (over NATS, as their boxes would), and
the sale takes its units from their escrow ("stores"), so its orders are assigned to them meanwhile (--sale-only: not).
Before the sale it measures the client's own ceiling against a bare Starlette JSON POST (`ceiling_per_s`).
Latency is measured from each request's scheduled time (open loop: a slow server cannot slow the arrivals).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.embedded import EmbeddedStack
from cloud.embedded.process import free_port
from cloud.main import secret_key_beside
from loadtest import store_escrow
from loadtest.cost import CpuMeter, ms_per_unit
from loadtest.http import Connection, LeanClients, encode_post, split_url
from loadtest.report import Progress, latency_ms, stop_process, wait_http
from simulators.chain import SimulatedSms
from simulators.customer_auth import SimulatedPhones, flash_pass, sign_in

CONNECTIONS = 256
SKU = "EGG-EGGS-0160"
SALE_STORES = ["S001", "S002"]  # without --url: these stores grant the sale's units (as store boxes do, over NATS)
CEILING_SECONDS = 3.0
SIGN_IN_CONCURRENCY = 48


def _start(argv: list[str], ready_url: str, timeout_s: float = 120.0, env: dict | None = None):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        wait_http(ready_url, timeout_s, proc)
    except RuntimeError:
        stop_process(proc)
        raise
    return proc


def _wait_port(port: int, timeout_s: float = 20.0) -> None:
    import socket
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            time.sleep(1.0)  # let every worker process finish starting
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def _closed_loop(host: str, port: int, raw: bytes, seconds: float, connections: int) -> float:
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker():
        nonlocal done
        conn = Connection(host, port)
        while time.monotonic() < stop_at:
            await conn.request(raw)
            done += 1
        conn.close()
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.monotonic() - started)


async def _sign_in(host, port, username: str, password: str) -> str:
    """An operator session token (the sale is opened by an hq_admin)."""
    conn = Connection(host, port)
    status, _, payload = await conn.request(encode_post(host, "/operator/sessions",
                                                        {"username": username, "password": password}, {}))
    conn.close()
    if status != 201:
        raise RuntimeError(f"could not sign in as {username}: {status} {payload[:300]!r}")
    return json.loads(payload)["token"]


async def _sale(host, port, token, quantity, rate, duration, limit, stores=None) -> str:
    now = datetime.now(UTC)
    body = {"sku": SKU, "quantity": quantity, "price_fen": 990, "per_member_limit": limit,
            "rate_per_s": int(max(rate * 2, 1000)), "starts_at": (now - timedelta(seconds=1)).isoformat(),
            "ends_at": (now + timedelta(seconds=duration + 120)).isoformat()}
    if stores:  # the units come from these stores' online escrow; each accepted order goes to one of them
        body["stores"] = stores
    conn = Connection(host, port)
    status, _, payload = await conn.request(encode_post(host, "/flash-sales", body, {"Authorization": f"Bearer {token}"}))
    conn.close()
    if status != 201:
        raise RuntimeError(f"could not create the sale: {status} {payload[:300]!r}")
    return json.loads(payload)["sale_id"]


async def _sign_in_all(url: str, phones: SimulatedPhones, members: int, seed: int) -> tuple[list[str], float]:
    """(a flash pass per member, sign-ins per second): each member asks for a code, reads it, signs in, takes a pass."""
    rng = random.Random(seed)
    numbers = [f"13{n:09d}" for n in rng.sample(range(10**9), members)]
    gate = asyncio.Semaphore(SIGN_IN_CONCURRENCY)
    progress = Progress("sign-in")
    passes: list[str] = []

    async def one(http: LeanClients, phone: str) -> None:
        async with gate:
            passes.append(await flash_pass(http, url, await sign_in(http, url, phones, phone)))
            progress.update(f"{len(passes):,} of {members:,} members signed in")
    started = time.monotonic()
    async with LeanClients(timeout=30) as http:
        await asyncio.gather(*(one(http, phone) for phone in numbers))
    progress.done()
    return passes, members / (time.monotonic() - started)


async def _open_loop(host, port, sale_id, rate, duration, passes, seed) -> dict:
    rng = random.Random(seed)
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(Connection(host, port))
    counts = {"accepted": 0, "sold_out": 0, "throttled": 0, "over_limit": 0, "other_409": 0, "unauthorized": 0,
              "errors": 0}
    latencies: list[float] = []
    path = f"/flash-sales/{sale_id}/orders"
    progress = Progress("flashsale")

    async def attempt(scheduled: float, member_pass: str):
        conn = await pool.get()
        try:
            status, _, body = await conn.request(encode_post(host, path, {"qty": 1}, {
                "Idempotency-Key": uuid.uuid4().hex, "Authorization": f"Bearer {member_pass}"}))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
            conn.close()
            return
        finally:
            pool.put_nowait(conn)
        latencies.append(time.monotonic() - scheduled)
        if status == 201:
            counts["accepted"] += 1
        elif status == 429:
            counts["throttled"] += 1
        elif status == 403:
            counts["over_limit"] += 1
        elif status == 409:
            counts["sold_out" if b"sold out" in body else "other_409"] += 1
        elif status == 401:
            counts["unauthorized"] += 1
        else:
            counts["errors"] += 1

    tasks = set()
    sent = 0
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < duration:
        due = int(elapsed * rate) - sent
        for i in range(due):
            scheduled = started + (sent + i) / rate
            task = asyncio.create_task(attempt(scheduled, passes[rng.randrange(len(passes))]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent += max(due, 0)
        progress.update(f"{sent:,} sent, {counts['accepted']:,} accepted, {counts['sold_out']:,} sold out")
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    wall = time.monotonic() - started
    progress.done()
    while not pool.empty():
        pool.get_nowait().close()
    return {"attempts": sent, "seconds": round(wall, 3), "rate_achieved_per_s": round(sent / wall),
            "latency_ms": latency_ms(latencies), **counts}


async def _status(host, port, sale_id) -> dict:
    conn = Connection(host, port)
    conn_raw = f"GET /flash-sales/{sale_id} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    _, _, body = await conn.request(conn_raw)
    conn.close()
    return json.loads(body)


def run_from_args(args) -> dict:
    rate, duration = args.rate, args.duration
    quantity, members, workers = args.quantity, args.members, args.workers
    cloud = bare = sms = workdir = stack = None
    granted: dict[str, int] = {}
    try:
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "loadtest.bare:app", "--port", str(bare_port),
                                 "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                                stderr=subprocess.DEVNULL)
        _wait_port(bare_port)
        # the same request size as an attempt (a pass is about 60 characters)
        raw = encode_post("127.0.0.1", "/echo", {"qty": 1}, {"Idempotency-Key": uuid.uuid4().hex,
                                                             "Authorization": "Bearer " + "p" * 60})
        ceiling = asyncio.run(_closed_loop("127.0.0.1", bare_port, raw, CEILING_SECONDS, CONNECTIONS // 4))
        stop_process(bare)
        bare = None
        url, password = args.url, args.admin_password or os.environ.get("FRESHMESH_ADMIN_PASSWORD")
        if not url:
            port = free_port()
            password = password or secrets.token_urlsafe(12)  # the fresh cloud's first account gets it
            url = f"http://127.0.0.1:{port}"
            workdir = Path(tempfile.mkdtemp(prefix="freshmesh-load-"))
            sms = SimulatedSms(f"{url}/callbacks/sms", workdir / "sms.log")
            phones = sms.phones
            env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "RAY_ADDRESS")}
            # the embedded servers run here (not inside the cloud) so that the sale's stores can speak NATS as
            # themselves: the same servers, the same cloud processes
            stack = EmbeddedStack(workdir=workdir / "stack").start()
            env.update({"NATS_URL": stack.nats_url, "DATABASE_URL": stack.database_url,
                        "FRESHMESH_SECRET_KEY": secret_key_beside(stack.workdir),
                        "FRESHMESH_STORE_CREDENTIALS": str(stack.credentials.path)})
            cloud = _start([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(port), "--workers",
                            str(workers)], f"{url}/health",
                           env={**env, **sms.env, "FRESHMESH_ADMIN_PASSWORD": password})
        elif args.sms_url and args.sms_key:
            phones = SimulatedPhones(args.sms_url, args.sms_key)
        else:
            raise SystemExit("with --url, give the simulated SMS provider the cloud sends codes through: "
                             "--sms-url and --sms-key")
        if not password:
            raise SystemExit("give --admin-password (or FRESHMESH_ADMIN_PASSWORD) of an hq_admin to create a sale on --url")
        host, port = split_url(url)
        token = asyncio.run(_sign_in(host, port, args.admin_user, password))
        passes, sign_in_rate = asyncio.run(_sign_in_all(url, phones, members, args.seed))
        if stack is not None and not args.sale_only:  # each store can cover the whole sale: no refusal by escrow
            granted = asyncio.run(store_escrow.grant(stack, host, port, SALE_STORES, SKU, quantity))
        sale_id = asyncio.run(_sale(host, port, token, quantity, rate, duration, 1,
                                    SALE_STORES if granted else None))
        meter = CpuMeter({cloud.pid: "cloud"} if cloud is not None else {}).start()  # the attempts' cost only
        measured = asyncio.run(_open_loop(host, port, sale_id, rate, duration, passes, args.seed))
        cpu = meter.stop()
        status = asyncio.run(_status(host, port, sale_id))
    finally:
        stop_process(bare)
        stop_process(cloud)
        if stack is not None:
            stack.stop()
        if sms is not None:
            sms.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"suite": "flashsale", "url": url, "sale_id": sale_id, "rate_target_per_s": rate, "members": members,
            "authentication": "flash pass per member (signed in by SMS code first)",
            "sign_ins_per_s": round(sign_in_rate, 1),
            "quantity": quantity, "sold": status["sold"], "remaining": status["remaining"],
            "oversold": max(status["sold"] - quantity, 0, measured["accepted"] - quantity),
            "ceiling_per_s": round(ceiling), "ceiling_ratio": round(measured["rate_achieved_per_s"] / ceiling, 3),
            "api_workers": workers, "stores": status.get("stores") or "none (a sale-only sale)",
            "escrow_granted": granted, **measured,
            "cpu": cpu, "cpu_ms_per_attempt": ms_per_unit(cpu, measured["attempts"])}
