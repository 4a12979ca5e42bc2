"""A SIMULATED rider platform (same-city delivery, shaped like Dada / Meituan / SF same-city), run as its own small
HTTP service. No real rider goes anywhere; everything it answers says `"platform": "simulated"` and its log lines
start "RIDERS (simulated)".

It speaks the API `cloud/services/riders.py` (HttpRiderPlatform) is written against. Every merchant request is
signed with the app secret (HMAC-SHA256 over timestamp, nonce, method, path and body: `protocol/delivery.py`; 401
otherwise); every callback it pushes is signed the same way.

- `POST /v1/deliveries/quote` `{"origin_id", "attempt", "pickup": {lat, lon, ...}, "dropoff": {lat, lon},
  "slot", "cargo": {"value_fen", "weight_g"}}` -> `{"fee_fen", "distance_m"}`.
- `POST /v1/deliveries` (the same body and `callback_url`) -> `{"platform_order_id", "status", "fee_fen"}`; the
  same (origin_id, attempt) again answers the same delivery (the merchant's idempotency key). With probability
  `fail_rate` 503 and nothing kept.
- `POST /v1/deliveries/{id}/cancel` `{"reason"}`; `GET /v1/deliveries/{id}`.
- What happens to a delivery: a rider accepts after `accept_delay_ms`, arrives at the store, picks up, moves
  towards the customer in `moves` steps (a position each), delivers - one callback each, `step_ms` apart. With
  probability `no_rider_rate` nobody accepts (`failed`, reason `no_rider`); with `rider_cancel_rate` the rider
  cancels after accepting (`cancelled`, reason `rider_cancelled`). Callbacks are resent until answered 2xx (a few
  tries), sent twice with probability `duplicate_rate`, and with `out_of_order_rate` an earlier status is sent
  again after a later one.
- `POST /sim/script` `{"origin_id", "outcomes": ["no_rider" | "rider_cancels" | "delivered" | "silent", ...],
  "duplicate": bool, "out_of_order": bool}`: forces what happens to that order's tries, in order (tests).
- `GET /sim/callbacks?origin_id=`: every callback sent, a duplicate as often as it was sent, and how the merchant
  answered each push (tests);
  `GET /health`: counters.

Start it: `freshmesh sim riders --port P --app-key K --app-secret S [--step-ms N] [--no-rider-rate R] ...`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from protocol import delivery
from simulators.partner_sim import PLATFORM, PartnerSim, Refused, now_ms
from simulators.sim_http import ServiceThread, run_in_foreground

LABEL = "RIDERS (simulated)"
BODY_MAX_BYTES = 16_384
CALLBACK_ATTEMPTS_MAX = 5
OUTCOMES = ("delivered", "no_rider", "rider_cancels", "silent")  # silent: still looking for a rider (tests)
RIDERS = (("Zhang Wei", "13912345678"), ("Li Na", "13787654321"), ("Wang Fang", "13655512345"),
          ("Liu Yang", "13598765432"))
log = logging.getLogger("freshmesh.sim.riders")


@dataclass(frozen=True)
class Settings:
    app_key: str
    app_secret: str
    accept_delay_ms: int = 1_000
    step_ms: int = 1_000
    moves: int = 3
    base_fee_fen: int = 600
    fee_per_km_fen: int = 150
    fail_rate: float = 0.0
    no_rider_rate: float = 0.0
    rider_cancel_rate: float = 0.0
    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "no_rider_rate", "rider_cancel_rate", "duplicate_rate", "out_of_order_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not self.app_key or not self.app_secret:
            raise ValueError("app_key and app_secret are required")


def distance_m(a: dict, b: dict) -> int:
    """Great-circle distance (haversine) between two {lat, lon}."""
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return int(2 * 6_371_000 * math.asin(math.sqrt(h)))


class SimulatedRiderPlatform:
    """The simulated platform's state and answers; one event loop, no locks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partner = PartnerSim(LABEL, delivery.RIDERS, settings.app_key, settings.app_secret, settings.fail_rate,
                                  settings.seed, BODY_MAX_BYTES, CALLBACK_ATTEMPTS_MAX)
        self.rng = self.partner.rng  # one seeded sequence: outages and outcomes, as before
        self.deliveries: dict[str, dict[str, Any]] = {}  # by platform order id
        self.by_origin: dict[tuple[str, int], str] = {}
        self.scripts: dict[str, dict[str, Any]] = {}  # by origin id: forced outcomes (tests)
        self.sent: list[dict] = []
        self.counts = dict.fromkeys(("created", "delivered", "no_rider", "rider_cancelled", "duplicated",
                                     "out_of_order"), 0)

    # ---- the merchant's requests ----------------------------------------------------------------------------------
    async def _signed_request(self, request: Request) -> dict:
        return await self.partner.signed_request(request)  # simulators/partner_sim.py

    def _refused(self, refused: Refused) -> JSONResponse:
        return self.partner.answer_refused(refused)

    @staticmethod
    def _order_fields(data: dict) -> tuple[str, int, dict, dict]:
        origin, attempt = data.get("origin_id"), data.get("attempt")
        pickup, dropoff = data.get("pickup"), data.get("dropoff")
        if not isinstance(origin, str) or not 1 <= len(origin) <= 64:
            raise Refused(400, "PARAM_ERROR", "origin_id: the merchant's order id, 1-64 characters")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= 10:
            raise Refused(400, "PARAM_ERROR", "attempt: 1-10")
        for name, place in (("pickup", pickup), ("dropoff", dropoff)):
            if not isinstance(place, dict) or not all(isinstance(place.get(k), int | float) for k in ("lat", "lon")):
                raise Refused(400, "PARAM_ERROR", f"{name}: lat and lon required")
        return origin, attempt, pickup, dropoff  # type: ignore[return-value]

    def _fee(self, pickup: dict, dropoff: dict) -> tuple[int, int]:
        meters = distance_m(pickup, dropoff)
        return self.settings.base_fee_fen + self.settings.fee_per_km_fen * (meters // 1000), meters

    async def quote(self, request: Request) -> JSONResponse:
        try:
            _, _, pickup, dropoff = self._order_fields(await self._signed_request(request))
        except Refused as refused:
            return self._refused(refused)
        fee, meters = self._fee(pickup, dropoff)
        return JSONResponse({"fee_fen": fee, "distance_m": meters, "platform": PLATFORM})

    async def create(self, request: Request) -> JSONResponse:
        try:
            data = await self._signed_request(request)
            origin, attempt, pickup, dropoff = self._order_fields(data)
            callback = data.get("callback_url")
            if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
                raise Refused(400, "PARAM_ERROR", "callback_url: an http(s) URL")
        except Refused as refused:
            return self._refused(refused)
        known = self.by_origin.get((origin, attempt))
        if known is not None:  # the merchant's retry: the same delivery
            return JSONResponse(self._view(self.deliveries[known]))
        fee, meters = self._fee(pickup, dropoff)
        pid = "DD" + uuid.uuid4().hex[:16].upper()
        record = {"platform_order_id": pid, "origin_id": origin, "attempt": attempt, "pickup": pickup,
                  "dropoff": dropoff, "callback_url": callback, "fee_fen": fee, "distance_m": meters,
                  "status": "created", "reason": "", "rider": None, "position": None, "created_ms": now_ms()}
        self.deliveries[pid], self.by_origin[(origin, attempt)] = record, pid
        self.counts["created"] += 1
        log.info("%s: delivery %s for %s (try %d), %d m, fee %d fen", LABEL, pid, origin, attempt, meters, fee)
        self.partner.spawn(self._run(record, self._outcome(origin)))
        return JSONResponse(self._view(record))

    async def cancel(self, request: Request) -> JSONResponse:
        try:
            data = await self._signed_request(request)
            record = self.deliveries.get(request.path_params["pid"])
            if record is None:
                raise Refused(404, "ORDER_NOT_EXIST", "no such delivery")
            if record["status"] in (delivery.PICKED_UP, delivery.DELIVERING, delivery.DELIVERED):
                raise Refused(400, "ORDER_PICKED_UP", f"the delivery is {record['status']}: too late to cancel")
        except Refused as refused:
            return self._refused(refused)
        record.update(status=delivery.CANCELLED, reason=str(data.get("reason", "cancelled_by_merchant"))[:64],
                      withdrawn=True)  # the rider is called off: nothing more happens to it
        return JSONResponse(self._view(record))

    async def query(self, request: Request) -> JSONResponse:
        try:
            await self._signed_request(request)
            record = self.deliveries.get(request.path_params["pid"])
            if record is None:
                raise Refused(404, "ORDER_NOT_EXIST", "no such delivery")
        except Refused as refused:
            return self._refused(refused)
        return JSONResponse(self._view(record))

    @staticmethod
    def _view(record: dict) -> dict:
        keys = ("platform_order_id", "origin_id", "attempt", "status", "reason", "fee_fen", "distance_m", "rider",
                "position")
        return {**{k: record[k] for k in keys}, "platform": PLATFORM}

    # ---- what happens to a delivery -------------------------------------------------------------------------------
    def _outcome(self, origin: str) -> tuple[str, bool, bool]:
        script = self.scripts.get(origin)
        if script is not None and script["outcomes"]:
            return script["outcomes"].pop(0), script["duplicate"], script["out_of_order"]
        s, roll = self.settings, self.rng.random()
        outcome = ("no_rider" if roll < s.no_rider_rate else
                   "rider_cancels" if roll < s.no_rider_rate + s.rider_cancel_rate else "delivered")
        return outcome, self.rng.random() < s.duplicate_rate, self.rng.random() < s.out_of_order_rate

    async def _run(self, record: dict, plan: tuple[str, bool, bool]) -> None:
        outcome, duplicate, out_of_order = plan
        s = self.settings
        await asyncio.sleep(s.accept_delay_ms / 1000)
        if record.get("withdrawn") or outcome == "silent":
            return  # the merchant cancelled first, or (a test's script) no word yet
        if outcome == "no_rider":
            self.counts["no_rider"] += 1
            await self._callback(record, delivery.FAILED, duplicate, reason="no_rider")
            return
        name, phone = self.rng.choice(RIDERS)
        record["rider"] = {"name": name, "phone": phone}
        store, home = record["pickup"], record["dropoff"]
        near = {"lat": store["lat"] + 0.004, "lon": store["lon"] + 0.003}  # somewhere close when accepting
        sent: list[tuple[str, dict]] = []
        for status, position in ((delivery.ACCEPTED, near), (delivery.ARRIVED, store)):
            await self._callback(record, status, duplicate, position=position)
            sent.append((status, position))
            await asyncio.sleep(s.step_ms / 1000)
        if outcome == "rider_cancels":
            self.counts["rider_cancelled"] += 1
            await self._callback(record, delivery.CANCELLED, duplicate, reason="rider_cancelled", position=store)
            return
        await self._callback(record, delivery.PICKED_UP, duplicate, position=store)
        for i in range(1, s.moves + 1):  # from the store towards the customer
            await asyncio.sleep(s.step_ms / 1000)
            f = i / (s.moves + 1)
            here = {"lat": round(store["lat"] + (home["lat"] - store["lat"]) * f, 6),
                    "lon": round(store["lon"] + (home["lon"] - store["lon"]) * f, 6)}
            await self._callback(record, delivery.DELIVERING, duplicate, position=here)
        await asyncio.sleep(s.step_ms / 1000)
        await self._callback(record, delivery.DELIVERED, duplicate, position=home)
        self.counts["delivered"] += 1
        if out_of_order:  # a late, earlier status after the end (a platform's queue reordered it)
            self.counts["out_of_order"] += 1
            status, position = sent[0]
            await self._callback(record, status, False, position=position, keep_status=True)

    async def _callback(self, record: dict, status: str, duplicate: bool, *, reason: str = "",
                        position: dict | None = None, keep_status: bool = False) -> None:
        if record.get("withdrawn"):
            return  # the merchant cancelled it: the platform says no more
        if not keep_status:
            record.update(status=status, reason=reason or record["reason"])
        if position is not None:
            record["position"] = position
        body = {"callback_id": uuid.uuid4().hex, "platform_order_id": record["platform_order_id"],
                "origin_id": record["origin_id"], "attempt": record["attempt"], "status": status, "reason": reason,
                "rider": record["rider"] or {}, "position": position or {}, "at_ms": now_ms(), "platform": PLATFORM}
        raw = json.dumps(body, separators=(",", ":")).encode()
        self.sent.append(body)
        await self.partner.push(record["callback_url"], raw, body["callback_id"])
        if duplicate:
            self.counts["duplicated"] += 1
            self.sent.append(body)
            await self.partner.push(record["callback_url"], raw, body["callback_id"])

    # ---- tests' controls ----------------------------------------------------------------------------------------
    async def script(self, request: Request) -> JSONResponse:
        data = json.loads(await request.body() or b"{}")
        outcomes = data.get("outcomes", [])
        if not isinstance(data.get("origin_id"), str) or not all(o in OUTCOMES for o in outcomes):
            return JSONResponse({"code": "PARAM_ERROR", "message": f"origin_id and outcomes of {OUTCOMES}"}, 400)
        self.scripts[data["origin_id"]] = {"outcomes": list(outcomes), "duplicate": bool(data.get("duplicate")),
                                           "out_of_order": bool(data.get("out_of_order"))}
        return JSONResponse({"ok": True, "platform": PLATFORM})

    async def callbacks(self, request: Request) -> JSONResponse:
        origin = request.query_params.get("origin_id")
        sent = [c for c in self.sent if origin in (None, c["origin_id"])]
        ids = {c["callback_id"] for c in sent}
        return JSONResponse({"callbacks": sent, "answers": [[i, s] for i, s in self.partner.answers if i in ids]})

    async def health(self, _request: Request) -> JSONResponse:
        counts = {**self.counts, "callbacks": self.partner.pushed, "callback_failed": self.partner.push_failed,
                  "refused": self.partner.refused}
        return JSONResponse({"status": "ok", "platform": PLATFORM, "counts": counts, "deliveries": len(self.deliveries)})


def build_app(settings: Settings) -> Starlette:
    platform = SimulatedRiderPlatform(settings)
    app = Starlette(routes=[
        Route("/v1/deliveries/quote", platform.quote, methods=["POST"]),
        Route("/v1/deliveries", platform.create, methods=["POST"]),
        Route("/v1/deliveries/{pid}/cancel", platform.cancel, methods=["POST"]),
        Route("/v1/deliveries/{pid}", platform.query, methods=["GET"]),
        Route("/sim/script", platform.script, methods=["POST"]),
        Route("/sim/callbacks", platform.callbacks, methods=["GET"]),
        Route("/health", platform.health, methods=["GET"]),
    ], lifespan=platform.partner.lifespan)
    app.state.platform = platform
    return app


def start_in_thread(settings: Settings, port: int = 0) -> ServiceThread:
    """The simulated platform on its own thread and event loop; `.url`, `.app.state.platform`, `.stop()`."""
    return ServiceThread(lambda: build_app(settings), port, "riders-simulated").start()


def run(settings: Settings, port: int) -> int:
    """`freshmesh sim riders`: in the foreground until SIGINT/SIGTERM; exit status 0 after a clean stop."""
    return run_in_foreground(build_app(settings), port, LABEL)
