"""The store box's configuration: one documented schema (pydantic), checked before anything starts.

Guarantees:
- A key the schema does not know is refused at start with an error naming it and where it is
  (`stores[1].devices.scale.baudrat`): a misspelt key never silently means "use the default".
- Values are checked for type and range (a port 1..65535, a ratio 0..10000 basis points, money in integer fen).
- What the box will do is said plainly before it starts (`describe`): where its data lives, where the lanes
  listen, whether it will ever reach the cloud, where its catalogue comes from. A box with no NATS URL or no
  catalogue source starts (a store must be able to sell through an outage) but says so loudly, at start and in
  `/health`'s `warnings`.

The example file is `edge/example-config.json`; README's "Edge box configuration" lists every key. Environment
variables fill keys the file leaves out: FRESHMESH_EDGE_DATA (data_dir), NATS_URL (nats_url),
FRESHMESH_STORE_PASSWORD (nats_password), FRESHMESH_SURVEY_URL_BASE (survey_url_base).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.disk import DEFAULT_LOW_WATER_BYTES
from protocol.messages import STORE_ID_RE

DEFAULT_DATA_DIR = "./var/edge"
DEFAULT_HTTP_PORT = 9000
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 5
ENV_KEYS = (("data_dir", "FRESHMESH_EDGE_DATA"), ("nats_url", "NATS_URL"), ("nats_password", "FRESHMESH_STORE_PASSWORD"),
            ("survey_url_base", "FRESHMESH_SURVEY_URL_BASE"), ("http_host", "FRESHMESH_EDGE_HOST"))
NAME = r"^[A-Za-z0-9_-]{1,32}$"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names every key that is wrong and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialPort(_Strict):
    """A serial device: its port and, optionally, settings that differ from its protocol's defaults."""
    port: str
    baudrate: int | None = Field(None, gt=0)
    bytesize: Literal[5, 6, 7, 8] | None = None
    parity: Literal["N", "E", "O", "M", "S"] | None = None
    stopbits: Literal[1, 2] | None = None


class ScaleConfig(SerialPort):
    protocol: str | None = None  # edge.devices.scale_codecs.CODECS (checked when the box makes the device)
    capacity_g: int | None = Field(None, gt=0)


class ScannerConfig(SerialPort):
    lane: str = Field("1", pattern=NAME)  # the lane its scans go to


class LabelScaleConfig(SerialPort):
    protocol: str | None = None
    name: str | None = Field(None, pattern=NAME)
    weighed_layout: str | None = None
    counted_layout: str | None = None


class Devices(_Strict):
    scale: ScaleConfig | None = None
    scanner: ScannerConfig | None = None
    printer: SerialPort | None = None
    label_scales: list[LabelScaleConfig] = []


class Cashier(_Strict):
    pin_hash: str
    role: str = "cashier"  # edge.cashier_pins.ROLES


class StoreConfig(_Strict):
    """One store's box. Every key but store_id has a default (or is optional)."""
    store_id: str = Field(pattern=STORE_ID_RE.pattern)
    data_dir: str = DEFAULT_DATA_DIR  # the store db (<store_id>.sqlite) lives here
    http_host: str = "127.0.0.1"  # the lane API's address (tills on the store's LAN: the box's LAN address)
    http_port: int = Field(DEFAULT_HTTP_PORT, ge=1, le=65535)
    http_fd: int | None = Field(None, ge=0)  # a listening socket handed over by a launcher
    nats_url: str | None = None  # none: the box never connects to the cloud (warned)
    nats_password: str | None = None  # this store's own NATS password (`freshmesh stores credentials`)
    survey_url_base: str | None = None
    world: str | None = None  # a bootstrap world file (catalogue + rule book) until the cloud sends one
    devices: Devices = Devices()
    cashiers: dict[str, str | Cashier] = {}
    online_ratio_bp: int | None = Field(None, ge=0, le=10_000)
    offline_allowance_fen: int | None = Field(None, ge=0)
    floor_limit_fen: int | None = Field(None, ge=0)  # the older name of offline_allowance_fen
    cash_topup_day_cap_fen: int | None = Field(None, ge=0)
    show_jin: bool = False  # the till page shows weights in jin too (1 jin = 500 g) and prices per jin (edge/till)
    # lanes that take money with no cashier signed in (self-checkout kiosks; "*": every lane): edge/lane_guard.py
    self_checkout_lanes: list[str] = []
    # lanes that belong to a market stall: lane -> stall id (they sell only its products): edge/core/stall_lanes.py
    stall_lanes: dict[str, str] = {}
    disk_low_water_bytes: int = Field(DEFAULT_LOW_WATER_BYTES, ge=0)  # less free than this: an alert
    log_file: str | None = None  # rotated (log_max_bytes, log_backups); none: logs go to stderr
    log_max_bytes: int = Field(DEFAULT_LOG_MAX_BYTES, gt=0)
    log_backups: int = Field(DEFAULT_LOG_BACKUPS, ge=0)


class FleetFile(_Strict):
    """Several boxes in one process: shared keys, and per store the keys that differ."""
    stores: list[dict[str, Any]]


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(exc: ValidationError, prefix: str = "") -> str:
    problems = []
    for err in exc.errors():
        where = prefix + _where(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {where!r} (not in the edge config schema: see edge/example-config.json)")
        elif err["type"] == "missing":
            problems.append(f"missing key {where!r}")
        else:
            problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


def parse_store(data: dict[str, Any], where: str = "") -> StoreConfig:
    try:
        return StoreConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None


def with_env(data: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Keys the file leaves out, from the environment (never over what the file says)."""
    env = os.environ if environ is None else environ
    out = dict(data)
    for key, name in ENV_KEYS:
        if env.get(name) and not out.get(key):
            out[key] = env[name]
    return out


def load(path: str | None, store: str | None = None, http_port: int | None = None,
         environ: dict[str, str] | None = None, host: str | None = None) -> list[StoreConfig]:
    """The boxes a config file (or none) describes; ConfigError naming what is wrong."""
    data: dict[str, Any] = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the config {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"the config {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the config {path} must be a JSON object")
    if "stores" in data:  # many boxes: each entry overrides the shared keys
        if not isinstance(data["stores"], list) or not data["stores"]:
            raise ConfigError("stores: give a non-empty list of store entries")
        shared = {k: v for k, v in data.items() if k != "stores"}
        configs = []
        for i, entry in enumerate(data["stores"]):
            if not isinstance(entry, dict):
                raise ConfigError(f"stores[{i}]: must be an object")
            configs.append(parse_store(with_env({**shared, **entry}, environ), f"stores[{i}]."))
        return configs
    if store:
        data["store_id"] = store
    if not data.get("store_id"):
        raise ConfigError("give --store ID (or store_id in the config)")
    if http_port:
        data["http_port"] = http_port
    if host:
        data["http_host"] = host
    return [parse_store(with_env(data, environ))]


def as_box_config(config: StoreConfig) -> dict[str, Any]:
    """What EdgeBox reads: the keys that are set (an unset optional key is absent, so the box's own default holds)."""
    return config.model_dump(exclude_none=True)


def warnings(config: StoreConfig, has_catalogue: bool | None = None) -> list[str]:
    """What an operator must know before trusting this box (empty: nothing)."""
    out = []
    if not config.nats_url:
        out.append("never connected to the cloud: no nats_url in the config and no NATS_URL in the environment; the "
                   "box sells offline only, and its sales reach the cloud once it is configured")
    elif not config.nats_password:
        out.append("no nats_password (nor FRESHMESH_STORE_PASSWORD): the box cannot log in to the cloud")
    if has_catalogue is False or (has_catalogue is None and not config.world):
        out.append("no catalogue: no world file and none received from the cloud yet; every scan is refused "
                   "until the cloud sends one")
    return out


def describe(config: StoreConfig, config_path: str | None) -> str:
    """What `freshmesh edge` is about to do, in a few lines (printed at start)."""
    where = f"from {config_path}" if config_path else "no config file (defaults and environment only)"
    db = Path(config.data_dir) / f"{config.store_id}.sqlite"
    lines = [f"edge {config.store_id}: {where}",
             f"  store db: {db.resolve()} (low-water alert under {config.disk_low_water_bytes // 1_000_000} MB free)",
             f"  lanes: http://{config.http_host}:{config.http_port}",
             f"  cloud: {config.nats_url or 'NONE - offline only'}",
             f"  catalogue: {config.world or 'as last received from the cloud (no world file)'}",
             f"  devices: {', '.join(k for k, v in config.devices.model_dump(exclude_none=True).items() if v) or 'none'}",
             f"  logs: {config.log_file or 'stderr'}"]
    return "\n".join(lines)
