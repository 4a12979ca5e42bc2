"""`freshmesh cloud`: the cloud on one box or against real servers.

Starts embedded NATS / PostgreSQL for whichever of NATS_URL / DATABASE_URL is unset, a local Ray unless
RAY_ADDRESS is set, then runs the NATS bridge and the expiry sweeper in this process and the HTTP API in
`--workers` uvicorn worker processes (they share Ray, PostgreSQL and NATS, so they can serve the same flash sale
without overselling).

Operators sign in with their own accounts. On an empty operators table the cloud creates the first one, `admin`
(hq_admin), with the password in FRESHMESH_ADMIN_PASSWORD, or else a generated one that it prints once (and
never again: `freshmesh operators password --username admin` sets a new one).
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
from contextlib import nullcontext

DEFAULT_HTTP_PORT = 8080
log = logging.getLogger("freshmesh.cloud")


def api_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "cloud.http.app:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", "5"]

STOP_TIMEOUT_S = 15


def startup_lines(http_port: int, admin_created: bool, generated_password: str | None) -> list[str]:
    """What the cloud prints once it serves. The first admin's password only when this process made it up (nobody
    else knows it, and it is shown this once); a password the operator configured is theirs already and stays out
    of logs and terminals."""
    base = f"http://127.0.0.1:{http_port}"
    lines = [f"FreshMesh cloud: {base}  (API described at /openapi.json)", f"Operator console: {base}/console"]
    if admin_created and generated_password:
        lines += [f"First operator account: username admin, password {generated_password}  (hq_admin; shown only "
                  f"this once: keep it, or set a new one with `freshmesh operators password --username admin`)"]
    elif admin_created:
        lines += ["First operator account: username admin (hq_admin), password from FRESHMESH_ADMIN_PASSWORD"]
    else:
        lines += ["  sign in with your operator account (`freshmesh operators add` creates more)"]
    return lines


async def serve(http_port: int, workers: int, world: str | None, stop: asyncio.Event, ready=None) -> None:
    """Run until `stop` is set (SIGINT/SIGTERM set it)."""
    from cloud.runtime.hosting import ensure_ray
    from cloud.wiring import start_services
    from cloud.world import World

    ray_address = ensure_ray()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ray's driver installs its own SIGTERM handler: take it back
        loop.add_signal_handler(sig, stop.set)
    env = dict(os.environ)
    env.setdefault("RAY_ADDRESS", ray_address)  # the API workers join this Ray
    if not env.get("FRESHMESH_IDENTITY_SECRET") and not env.get("FRESHMESH_OPERATOR_TOKEN"):
        # The sign-in codes' key must be the same in every API worker; it was derived from the operator token,
        # which is no longer made up here. One random key for this run, shared through the environment.
        env["FRESHMESH_IDENTITY_SECRET"] = os.environ["FRESHMESH_IDENTITY_SECRET"] = secrets.token_hex(32)
    if world:
        env["FRESHMESH_WORLD"] = world
    services = await start_services(World.load(world), env["DATABASE_URL"], env.get("NATS_URL"),
                                    env.get("FRESHMESH_OPERATOR_TOKEN", ""), background=True, explicit_world=bool(world))
    created, generated = await services.operators.bootstrap_admin(env.get("FRESHMESH_ADMIN_PASSWORD") or None)
    workers_env = {k: v for k, v in env.items() if k != "FRESHMESH_ADMIN_PASSWORD"}  # used above, needed nowhere else
    api = subprocess.Popen(api_command(http_port, workers), env={**workers_env, "FRESHMESH_BACKGROUND": "0"})
    for line in startup_lines(http_port, created, generated):
        print(line, flush=True)
    if ready is not None:
        ready(http_port, env)
    try:
        while not stop.is_set() and api.poll() is None:
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
    finally:
        if api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
        try:  # the servers may already be gone (their launcher was killed): stopping must not hang on them
            await asyncio.wait_for(services.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            logging.getLogger("freshmesh.cloud").warning("services did not stop within %ss; exiting anyway",
                                                         STOP_TIMEOUT_S)


def add_arguments(parser) -> None:
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes for the HTTP API")
    parser.add_argument("--world", default=None, help="world file (stores, catalogue, rule book); default: shipped")


def main(argv: list[str] | None = None) -> int:
    """`python -m cloud`: the same as `freshmesh cloud`."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m cloud", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    from cloud.embedded import EmbeddedStack, redacted
    from protocol.errors import ProtocolError
    from protocol.roles import check_password

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.environ.get("FRESHMESH_ADMIN_PASSWORD"):  # said before anything starts, not after a minute of start-up
        try:
            check_password(os.environ["FRESHMESH_ADMIN_PASSWORD"])
        except ProtocolError as exc:
            print(f"freshmesh cloud: FRESHMESH_ADMIN_PASSWORD: {exc}", file=sys.stderr)
            return 2
    need_nats, need_pg = "NATS_URL" not in os.environ, "DATABASE_URL" not in os.environ
    stack = EmbeddedStack(nats=need_nats, postgres=need_pg) if (need_nats or need_pg) else nullcontext()
    with stack as running:
        if running is not None:  # the embedded stack runs what the environment did not name
            if need_nats:
                os.environ["NATS_URL"] = running.nats_url
                print(f"NATS_URL={redacted(running.nats_url)}")  # the password stays out of terminals and logs
            if need_pg:
                os.environ["DATABASE_URL"] = running.database_url
                print(f"DATABASE_URL={redacted(running.database_url)}")
        asyncio.run(serve(args.http_port, args.workers, args.world, asyncio.Event()))
    return 0
