"""The whole chain on one box: embedded NATS + PostgreSQL, one `freshmesh cloud`, the simulated SMS and wallet
providers, rider platform and marketplace (services of their own), and a fleet of edge boxes.

The demo, `freshmesh sim fleet` and the consistency and fleet load suites all start it the same way. The world
(stores, catalogue, rule book) is generated for `max_stores` so that a fleet can grow while it runs.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloud.embedded import EmbeddedStack
from cloud.embedded.process import free_port, spawn_quiet, tail
from cloud.main import secret_key_beside
from cloud.services import pay_signatures
from loadtest.report import stop_process, wait_http
from simulators.customer_auth import SimulatedPhones
from simulators.fleet import Fleet
from simulators.world import reference_world

GROUP_WINDOW_S = 15  # how long the simulated chain's group buys gather members
ADMIN_USERNAME = "admin"  # made by `freshmesh cloud` on its empty operators table, with FRESHMESH_ADMIN_PASSWORD


def store_ids(count: int) -> list[str]:
    return [f"S{i + 1:03d}" for i in range(count)]


class SimulatedService:
    """A simulated third party (`freshmesh sim <name>`) run as a process of its own on a free port."""
    proc: subprocess.Popen | None = None
    url = ""

    def _run(self, port: int, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = spawn_quiet([sys.executable, "-m", "simulators.cli", "sim", args[0], "--port", str(port),
                                 *args[1:]], env=env, log_path=log_path)
        try:
            wait_http(f"{self.url}/health", 30, self.proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class SimulatedSms(SimulatedService):
    """The simulated SMS provider (`freshmesh sim sms`) as a service of its own, with a fresh account key and
    secret; `.env` configures a cloud to send through it, `.phones` reads what it "sent"."""

    def __init__(self, callback_url: str, log_path: Path) -> None:
        port, self.key, self.secret = free_port(), secrets.token_hex(8), secrets.token_hex(16)
        self._run(port, ["sms", "--key", self.key, "--secret", self.secret, "--callback-url", callback_url],
                  os.environ.copy(), log_path)

    @property
    def env(self) -> dict[str, str]:
        return {"FRESHMESH_SMS_URL": self.url, "FRESHMESH_SMS_KEY": self.key, "FRESHMESH_SMS_SECRET": self.secret}

    @property
    def phones(self) -> SimulatedPhones:
        return SimulatedPhones(self.url, self.key)


class SimulatedWallet(SimulatedService):
    """The simulated wallet provider (`freshmesh sim pay`) as a service of its own, with fresh keys: its own
    signing key and the merchant's APIv3 key (handed to it in its environment), and the merchant's signing key (the
    cloud's); `.env` configures a cloud to pay through it and to believe its signed notifications at `notify_url`."""

    def __init__(self, notify_url: str, log_path: Path) -> None:
        port, self.mchid, self.notify_url = free_port(), "freshmesh-demo", notify_url
        self._merchant, self._provider = pay_signatures.new_private_text(), pay_signatures.new_private_text()
        self._api_key = pay_signatures.new_private_text()  # any 32 random bytes, base64
        merchant_public = pay_signatures.public_text(pay_signatures.private_key(self._merchant))
        self._run(port, ["pay", "--mchid", self.mchid, "--merchant-public-key", merchant_public],
                  {**os.environ, "FRESHMESH_SIM_PAY_PRIVATE_KEY": self._provider,
                   "FRESHMESH_SIM_PAY_API_KEY": self._api_key}, log_path)

    @property
    def env(self) -> dict[str, str]:
        return {"FRESHMESH_PAY_URL": self.url, "FRESHMESH_PAY_MCHID": self.mchid,
                "FRESHMESH_PAY_MERCHANT_KEY": self._merchant, "FRESHMESH_PAY_NOTIFY_URL": self.notify_url,
                "FRESHMESH_PAY_API_KEY": self._api_key,
                "FRESHMESH_PAY_PROVIDER_PUBLIC_KEY": pay_signatures.public_text(
                    pay_signatures.private_key(self._provider))}


@dataclass(frozen=True)
class RiderPace:
    """How the simulated riders behave: their delays and how often a delivery fails (nobody accepts it, or the
    rider cancels after accepting; each failure leads to a redispatch, a second one to a refund)."""
    step_ms: int = 1000
    accept_delay_ms: int = 1000
    no_rider_rate: float = 0.05
    rider_cancel_rate: float = 0.05
    seed: int | None = None  # the platform's dice: the same seed, the same fate for its first deliveries


class SimulatedRiders(SimulatedService):
    """The simulated rider platform (`freshmesh sim riders`) as a service of its own, with a fresh app key and
    secret; `.env` configures a cloud to dispatch through it and believe its signed callbacks at `callback_url`."""

    def __init__(self, callback_url: str, log_path: Path, pace: RiderPace | None = None) -> None:
        port, self.app_key, self.secret = free_port(), "freshmesh-demo", secrets.token_hex(16)
        self.callback_url, self.pace = callback_url, pace or RiderPace()
        p = self.pace
        self._run(port, ["riders", "--app-key", self.app_key, "--step-ms", str(p.step_ms), "--accept-delay-ms",
                         str(p.accept_delay_ms), "--no-rider-rate", str(p.no_rider_rate), "--rider-cancel-rate",
                         str(p.rider_cancel_rate), "--duplicate-rate", "0.1", "--out-of-order-rate", "0.05",
                         *(["--seed", str(p.seed)] if p.seed is not None else [])],
                  {**os.environ, "FRESHMESH_RIDERS_APP_SECRET": self.secret}, log_path)

    @property
    def env(self) -> dict[str, str]:
        return {"FRESHMESH_RIDERS_URL": self.url, "FRESHMESH_RIDERS_APP_KEY": self.app_key,
                "FRESHMESH_RIDERS_APP_SECRET": self.secret, "FRESHMESH_RIDERS_CALLBACK_URL": self.callback_url}


class SimulatedMarketplaceService(SimulatedService):
    """The simulated marketplace (`freshmesh sim marketplace`) as a service of its own, with a fresh app key and
    secret; `.env` configures a cloud to push the stores' offers there and believe its signed webhooks, which it
    sends to `callback_url`."""
    MARKETPLACE = "simmkt"  # its id in the cloud's channel `mkt:simmkt`

    def __init__(self, callback_url: str, log_path: Path) -> None:
        port, self.app_key, self.secret = free_port(), "freshmesh-demo", secrets.token_hex(16)
        self._run(port, ["marketplace", "--app-key", self.app_key, "--callback-url", callback_url,
                         "--rider-delay-ms", "800", "--step-ms", "600", "--duplicate-rate", "0.1"],
                  {**os.environ, "FRESHMESH_MARKETPLACE_APP_SECRET": self.secret}, log_path)

    @property
    def env(self) -> dict[str, str]:
        return {"FRESHMESH_MARKETPLACE_URL": self.url, "FRESHMESH_MARKETPLACE_ID": self.MARKETPLACE,
                "FRESHMESH_MARKETPLACE_APP_KEY": self.app_key, "FRESHMESH_MARKETPLACE_APP_SECRET": self.secret}


class Chain:
    def __init__(self, stores: int, max_stores: int | None = None, seed: int = 7, per_process: int = 25,
                 devices: bool = False, api_workers: int = 1, rules: int = 60, rider_pace: RiderPace | None = None,
                 reservation_ttl_s: float | None = None) -> None:
        self.stores, self.max_stores = stores, max(max_stores or stores, stores)
        self.seed, self.per_process, self.devices = seed, per_process, devices
        self.api_workers, self.rules = api_workers, rules
        self.rider_pace = rider_pace  # None: the platform's usual pace (a delivery takes some seconds)
        self.reservation_ttl_s = reservation_ttl_s  # None: the cloud's default payment window (15 min)
        self.workdir = Path(tempfile.mkdtemp(prefix="freshmesh-chain-"))
        self.admin_password = secrets.token_urlsafe(12)  # the cloud's first account, `admin` (hq_admin), this run
        self.stack: EmbeddedStack | None = None
        self.cloud: subprocess.Popen | None = None
        self.sms: SimulatedSms | None = None  # the simulated SMS provider, a service of its own
        self.wallet: SimulatedWallet | None = None  # the simulated wallet provider, a service of its own
        self.riders: SimulatedRiders | None = None  # the simulated rider platform, a service of its own
        self.marketplace: SimulatedMarketplaceService | None = None  # a simulated marketplace, a service of its own
        self.fleet: Fleet | None = None

    def start(self) -> Chain:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.world = reference_world(stores=self.max_stores, seed=self.seed, rules=self.rules)
        self.world_path = self.workdir / "world.json"
        self.world_path.write_text(json.dumps(self.world))
        self.stack = EmbeddedStack(workdir=self.workdir / "stack", store_ids=store_ids(self.max_stores)).start()
        env = {**os.environ, "NATS_URL": self.stack.nats_url, "DATABASE_URL": self.stack.database_url,
               "FRESHMESH_ADMIN_PASSWORD": self.admin_password,
               # the cloud's master secret, kept beside the stack's data; the stores' credentials key their member caches
               "FRESHMESH_SECRET_KEY": secret_key_beside(self.stack.workdir),
               "FRESHMESH_STORE_CREDENTIALS": str(self.stack.credentials.path)}
        env.pop("RAY_ADDRESS", None)  # a local Ray of our own
        port = free_port()
        self.cloud_url = f"http://127.0.0.1:{port}"
        self.sms = SimulatedSms(f"{self.cloud_url}/callbacks/sms", self.workdir / "sms.log")
        env.update(self.sms.env)
        self.wallet = SimulatedWallet(f"{self.cloud_url}/callbacks/pay", self.workdir / "pay.log")
        env.update(self.wallet.env)
        self.riders = SimulatedRiders(f"{self.cloud_url}/callbacks/rider", self.workdir / "riders.log", self.rider_pace)
        env.update(self.riders.env)
        self.marketplace = SimulatedMarketplaceService(f"{self.cloud_url}/callbacks/marketplace/"
                                                       f"{SimulatedMarketplaceService.MARKETPLACE}",
                                                       self.workdir / "marketplace.log")
        env.update(self.marketplace.env)
        # a simulated chain's group buys form within seconds or are refunded (a real chain's default: a day)
        env.setdefault("FRESHMESH_GROUP_WINDOW_S", str(GROUP_WINDOW_S))
        if self.reservation_ttl_s:
            env["FRESHMESH_RESERVATION_TTL_S"] = str(self.reservation_ttl_s)
        self.cloud = spawn_quiet([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(port),
                                  "--workers", str(self.api_workers), "--world", str(self.world_path)], env=env,
                                 log_path=self.workdir / "cloud.log")
        try:
            wait_http(f"{self.cloud_url}/health", 180, self.cloud)
        except RuntimeError as exc:
            raise RuntimeError(f"the cloud: {exc}; its log ends:\n{tail(self.workdir / 'cloud.log')}") from None
        self.fleet = Fleet(self.workdir, self.world_path, self.stack.nats_address,
                           lambda store_id: self.stack.store_credentials(store_id)[1], self.per_process, self.devices)
        self.fleet.add(store_ids(self.stores))

    def grow(self, stores: int) -> None:
        """More stores join the running chain (up to `max_stores`)."""
        if stores > self.max_stores:
            raise ValueError(f"the world has {self.max_stores} stores; cannot run {stores}")
        assert self.fleet is not None, "grow a started chain"
        self.fleet.add(store_ids(stores))
        self.stores = stores

    @property
    def console_url(self) -> str:
        return f"{self.cloud_url}/console"

    async def operator_headers(self, http) -> dict:
        """Sign in as the chain's admin (what the demo does as an operator: open a flash sale, read the figures)."""
        r = await http.post(f"{self.cloud_url}/operator/sessions",
                            json={"username": ADMIN_USERNAME, "password": self.admin_password})
        if r.status_code != 201:
            raise RuntimeError(f"the demo's admin could not sign in: {r.status_code} {r.text[:300]}")
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def stop(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        stop_process(self.cloud)
        if self.sms is not None:
            self.sms.stop()
        if self.wallet is not None:
            self.wallet.stop()
        if self.riders is not None:
            self.riders.stop()
        if self.marketplace is not None:
            self.marketplace.stop()
        if self.stack is not None:
            self.stack.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Chain:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
