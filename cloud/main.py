"""`freshmesh cloud`: the cloud on one box or against real servers.

Starts embedded NATS / PostgreSQL for whichever of NATS_URL / DATABASE_URL is unset, a local Ray unless
RAY_ADDRESS is set, then runs the NATS bridge and the expiry sweeper in this process and the HTTP API in
`--workers` uvicorn worker processes (they share Ray, PostgreSQL and NATS, so they can serve the same flash sale
without overselling).

Keys (cloud/keys.py): FRESHMESH_SECRET_KEY, the master secret, is given to the API workers through their
environment (never printed). When it is unset and the database is the embedded one, a random one is made once and
kept beside the embedded state in an owner-only file (`secret.key`, 0600), so a restart on the same `--workdir`
can still open the phones it sealed; against a configured DATABASE_URL it must be configured too (a key made up
here would be lost with this machine, and with it every sealed phone). With the embedded NATS, the chain's store
credential book (FRESHMESH_STORE_CREDENTIALS) is the stack's, so stores' member lookup hashes can be computed.

Processes (who stops what): this process heads its own process group, and a reaper kills what is left of that
group the moment it is gone, `kill -9` included (`cloud.embedded.process.reap_group_on_exit`): the API's uvicorn
supervisor and workers and, when it started one, the local Ray (GCS, raylet, actor workers, agents). The embedded
nats-server and PostgreSQL get a parent-death signal and stop cleanly. So a restart on the same ports works at once.
Against a Ray cluster (`RAY_ADDRESS`) the actors are the cluster's (detached): stopping this process leaves them
serving the other cloud processes (`cloud/runtime/hosting.py`).

Operators sign in with their own accounts. On an empty operators table the cloud creates the first one, `admin`
(hq_admin), with the password in FRESHMESH_ADMIN_PASSWORD, or else a generated one kept in an owner-only file
whose path it prints (never the password: `freshmesh operators password --username admin` sets a new one).
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
from pathlib import Path

DEFAULT_HTTP_PORT = 8080
# Loopback unless told otherwise: an API reachable from the network is a decision (`--host 0.0.0.0` in a container or
# behind a load balancer), never an accident of the defaults.
DEFAULT_HOST = "127.0.0.1"
log = logging.getLogger("freshmesh.cloud")


def api_command(port: int, workers: int, host: str = DEFAULT_HOST) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "cloud.http.app:create_app", "--factory", "--host", host,
            "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", "5",
            # longer than clients keep an idle connection, so a reused one is never closed under a request
            "--timeout-keep-alive", "75"]

STOP_TIMEOUT_S = 15
WARM_TIMEOUT_S = 60  # every actor made and rebuilt before the API serves (a long journal takes a while)


KEY_FILE_NAME = "secret.key"


def secret_key_beside(workdir: Path) -> str:
    """The master secret kept in `workdir/secret.key`, made (random, 0600 from its creation) when absent."""
    path = workdir / KEY_FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


ADMIN_PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name, not a password


def keep_admin_password(directory: Path, password: str) -> Path:
    """The generated first admin's password, in an owner-only file (0600 from its creation) in an owner-only dir:
    the terminal and the logs never show it; whoever may read the cloud's own files may read it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / ADMIN_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return path


def startup_lines(http_port: int, admin_created: bool, password_file: Path | None,
                  host: str = DEFAULT_HOST) -> list[str]:
    """What the cloud prints once it serves: never a password. A first admin's password this process made up is in
    `password_file` (owner-only); one the operator configured is theirs already."""
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{http_port}"  # noqa: S104 - only shown
    lines = [f"FreshMesh cloud: {base}  (API described at /openapi.json)", f"Operator console: {base}/console"]
    if admin_created and password_file is not None:
        lines += [f"First operator account: username admin (hq_admin); its generated password is in {password_file} "
                  f"(owner-only; keep it, or set a new one with `freshmesh operators password --username admin`)"]
    elif admin_created:
        lines += ["First operator account: username admin (hq_admin), password from FRESHMESH_ADMIN_PASSWORD"]
    else:
        lines += ["  sign in with your operator account (`freshmesh operators add` creates more)"]
    return lines


def state_dir() -> Path:
    """Where a cloud that runs against configured servers keeps what it makes (the first admin's password)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "freshmesh"


async def serve(http_port: int, workers: int, world: str | None, stop: asyncio.Event, ready=None,
                secret_env: dict[str, str] | None = None, keep_dir: Path | None = None, host: str = DEFAULT_HOST) -> None:
    """Run until `stop` is set (SIGINT/SIGTERM set it). `secret_env`: key settings made here (the master secret), given
    to this process's services and the API workers only, not to this process's environment (which Ray inherits).
    `keep_dir`: where a generated first admin's password is kept (default: `state_dir()`)."""
    from cloud.embedded.process import die_with_parent
    from cloud.http import metrics
    from cloud.keys import KeyRing
    from cloud.runtime.hosting import ensure_ray
    from cloud.wiring import start_services
    from cloud.world import World

    ray_address = ensure_ray()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ray's driver installs its own SIGTERM handler: take it back
        loop.add_signal_handler(sig, stop.set)
    env = {**os.environ, **(secret_env or {})}
    env.setdefault("RAY_ADDRESS", ray_address)  # the API workers join this Ray
    if world:
        env["FRESHMESH_WORLD"] = world
    services = await start_services(World.load(world), env["DATABASE_URL"], env.get("NATS_URL"),
                                    background=True, explicit_world=bool(world), keys=KeyRing.from_env(env))
    created, generated = await services.operators.bootstrap_admin(env.get("FRESHMESH_ADMIN_PASSWORD") or None)
    try:  # the actors answer before the API takes traffic (a cold one is made and rebuilt on its first call)
        await asyncio.wait_for(services.cloud.actors.warm(), WARM_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a timeout or an actor down: they start on first use all the same
        logging.getLogger("freshmesh.cloud").warning("actors not all warm at start (%s); they start on first use", exc)
    workers_env = {k: v for k, v in env.items() if k != "FRESHMESH_ADMIN_PASSWORD"}  # used above, needed nowhere else
    workers_env[metrics.MULTIPROC_ENV] = str(metrics.prepare_dir(metrics.run_dir(keep_dir)))  # summed by /metrics
    # in our process group (the reaper's), and told to stop if we die even where no reaper runs
    api = subprocess.Popen(api_command(http_port, workers, host), env={**workers_env, "FRESHMESH_BACKGROUND": "0"},
                           preexec_fn=die_with_parent)
    password_file = keep_admin_password(keep_dir or state_dir(), generated) if generated else None
    for line in startup_lines(http_port, created, password_file, host):
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
        metrics.remove_dir(workers_env[metrics.MULTIPROC_ENV])  # this run's worker metric files go with it
        try:  # the servers may already be gone (their launcher was killed): stopping must not hang on them
            await asyncio.wait_for(services.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            logging.getLogger("freshmesh.cloud").warning("services did not stop within %ss; exiting anyway",
                                                         STOP_TIMEOUT_S)


def add_arguments(parser) -> None:
    from cloud.cli_help import cloud_epilog
    parser.epilog = cloud_epilog()
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, help="the HTTP API's port")
    parser.add_argument("--host", default=os.environ.get("FRESHMESH_HOST") or DEFAULT_HOST,
                        help="address the HTTP API listens on (default: $FRESHMESH_HOST or 127.0.0.1, loopback only; "
                             "0.0.0.0 in a container or behind a load balancer)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes for the HTTP API")
    parser.add_argument("--world", default=None, help="world file (stores, catalogue, rule book); default: shipped")
    parser.add_argument("--workdir", default=None,
                        help="keep the embedded servers' data (and the secret key made for it) here; default: a "
                             "temporary dir removed at stop")
    parser.add_argument("--access-log", action="store_true", help="one JSON log line per HTTP request (method, path, "
                        "status, duration, request id), on the freshmesh.access logger")


def main(argv: list[str] | None = None) -> int:
    """`python -m cloud`: the same as `freshmesh cloud`."""
    import argparse

    from cloud.cli_help import HelpFormatter, add_version
    parser = argparse.ArgumentParser(prog="python -m cloud", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    add_version(parser)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    from cloud.embedded import EmbeddedStack, redacted
    from cloud.embedded.process import reap_group_on_exit
    from cloud.logs import configure
    from cloud.runtime.shard_map import ShardConfig, ShardConfigError
    from protocol.errors import ProtocolError
    from protocol.roles import check_password
    configure()  # JSON lines, rate-limited repeats (cloud/logs.py)
    if getattr(args, "access_log", False):
        os.environ["FRESHMESH_ACCESS_LOG"] = "1"  # the API workers' access log (cloud/http/middleware.py)
    if os.environ.get("FRESHMESH_ADMIN_PASSWORD"):  # said before anything starts, not after a minute of start-up
        try:
            check_password(os.environ["FRESHMESH_ADMIN_PASSWORD"])
        except ProtocolError as exc:
            print(f"freshmesh cloud: FRESHMESH_ADMIN_PASSWORD: {exc}", file=sys.stderr)
            return 2
    try:
        ShardConfig.from_env()  # a malformed FRESHMESH_STOCK_SHARDS is said before anything starts
    except ShardConfigError as exc:
        print(f"freshmesh cloud: {exc}", file=sys.stderr)
        return 2
    reap_group_on_exit()  # before Ray or the API start: they join our group, and go with us however we end
    need_nats, need_pg = "NATS_URL" not in os.environ, "DATABASE_URL" not in os.environ
    if not need_pg and not os.environ.get("FRESHMESH_SECRET_KEY"):
        print("freshmesh cloud: set FRESHMESH_SECRET_KEY (at least 32 characters) to use DATABASE_URL: it keys the "
              "sealed personal data there, and every cloud process needs the same one", file=sys.stderr)
        return 2
    workdir = getattr(args, "workdir", None)
    stack = (EmbeddedStack(workdir=Path(workdir) if workdir else None, nats=need_nats, postgres=need_pg)
             if (need_nats or need_pg) else nullcontext())
    secret_env: dict[str, str] = {}
    with stack as running:
        if running is not None:  # the embedded stack runs what the environment did not name
            if need_nats:
                os.environ["NATS_URL"] = running.nats_url
                print(f"NATS_URL={redacted(running.nats_url)}")  # the password stays out of terminals and logs
            if need_pg:
                os.environ["DATABASE_URL"] = running.database_url
                print(f"DATABASE_URL={redacted(running.database_url)}")
                if not os.environ.get("FRESHMESH_SECRET_KEY"):  # kept beside the data it seals; never printed
                    secret_env["FRESHMESH_SECRET_KEY"] = secret_key_beside(running.workdir)
            if need_nats and not os.environ.get("FRESHMESH_STORE_CREDENTIALS"):
                # the stores' credential book: their lookup keys derive from their own passwords
                secret_env["FRESHMESH_STORE_CREDENTIALS"] = str(running.credentials.path)
        keep_dir = running.workdir if running is not None else None  # beside the embedded data it opens
        try:
            asyncio.run(serve(args.http_port, args.workers, args.world, asyncio.Event(), secret_env=secret_env,
                              keep_dir=keep_dir, host=getattr(args, "host", DEFAULT_HOST)))
        except ShardConfigError as exc:  # counts unlike the recorded ones: said plainly, before the API serves
            print(f"freshmesh cloud: {exc}", file=sys.stderr)
            return 2
    return 0
