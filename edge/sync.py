"""Sync between the store and the cloud over NATS, as the store's own user.

- Relay: outbox rows go out in order with Nats-Msg-Id = event id, many in flight at once, and **stay** until the
  cloud's business ack (a cloud message) names them; after a reconnect everything unacked is sent again (the stream
  and the cloud's event table drop what they already have).
- Cloud messages: pulled from the store's own durable consumer, applied by the StoreActor (exactly once, by event id),
  then acked to JetStream.
- Escrow borrows: the cloud's requests on the store's own borrow subject are answered by `LendingDesk`.
- Heartbeats: outbox depth, last sequence produced and acked, device health, every second.
- The connection is retried with exponential backoff and jitter; the till keeps selling meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import random

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from edge import appliance
from edge.cloud_ask import ask_cloud
from edge.core.clock_watch import unacked_age_ms
from edge.lending_desk import LendingDesk
from protocol import codec, subjects
from protocol.errors import ProtocolError
from protocol.messages import BusinessAck, DeviceHealth, Heartbeat, HoldAnswered, HoldReleased, HoldRequested
from protocol.policy import HOLD_TIMEOUT_MS
from protocol.pull import fetch_ready

RELAY_BATCH = 2_000  # outbox rows in flight at once
PUBLISH_TIMEOUT_S = 5.0
CLOUD_MESSAGE_BATCH = 200  # cloud messages pulled at once
PAUSE_S = 0.5  # after a failed publish or pull, before trying again
# A cloud message the store cannot apply (its mailbox full, a fault) is tried again, backing off; past this many
# tries it is logged, counted and skipped, so one bad message never stops the ones behind it.
CLOUD_MESSAGE_TRIES_MAX = 6
HEARTBEAT_S = 1.0
CONNECT_TIMEOUT_S = 3
RECONNECT_WAIT_S = 1
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 10.0
log = logging.getLogger("freshmesh.edge.sync")


class StuckHead:
    """When to send unacked events again, and under which message id.

    Every event JetStream acked is stored and will be applied, so a re-send is only for a business ack that never
    came (lost on its way back, or the cloud died between applying and acking). JetStream drops a copy with the
    same `Nats-Msg-Id` inside its duplicate window, so a re-send goes out under a new id (`<event_id>~<round>`):
    the bridge sees it, finds the event already applied (by event id) and acks it again. It happens only when the
    oldest unacked event has waited `AFTER_S`, and waits twice as long each round while nothing moves, so a cloud
    that is down for hours is not flooded with copies. Pure: time is passed in.
    """

    CHECK_S = 5.0
    AFTER_S = 30.0
    MAX_AFTER_S = 900.0

    def __init__(self) -> None:
        self.head: int | None = None
        self.since = 0.0
        self.after_s = self.AFTER_S
        self.round = 0
        self.next_check = 0.0
        self.waited_s = 0.0

    def due(self, now: float) -> bool:
        if now < self.next_check:
            return False
        self.next_check = now + self.CHECK_S
        return True

    def stuck(self, head_seq: int | None, sent_upto: int, now: float) -> bool:
        if head_seq != self.head:  # acks are flowing (or a new head): all is well, start afresh
            self.head, self.since, self.after_s = head_seq, now, self.AFTER_S
            return False
        if head_seq is None or head_seq > sent_upto:  # nothing unacked, or not even sent yet
            return False
        self.waited_s = now - self.since
        if self.waited_s < self.after_s:
            return False
        self.round += 1
        self.since, self.after_s = now, min(self.after_s * 2, self.MAX_AFTER_S)
        return True

    def msg_id(self, event_id: str) -> str:
        return event_id if self.round == 0 else f"{event_id}~{self.round}"


class Sync:
    def __init__(self, box, nats_url: str, user: str, password: str) -> None:
        self.box, self.nats_url, self.user, self.password = box, nats_url, user, password
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.connected = asyncio.Event()
        self.last_acked_seq = 0
        self.last_cloud_message_seq = 0
        self.stats = {"published": 0, "cloud_messages": 0, "reconnects": 0, "bad_cloud_messages": 0,
                      "skipped_cloud_messages": 0}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()  # hold releases under way
        self.lending = LendingDesk(box)

    @property
    def store_id(self) -> str:
        return self.box.store_id

    async def start(self) -> Sync:
        self._tasks = [asyncio.create_task(self._connect_loop(), name="sync-connect")]
        return self

    async def stop(self) -> None:
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        await self.lending.stop()
        if self.nc is not None:
            await self.nc.close()

    async def _connect_loop(self) -> None:
        delay = BACKOFF_MIN_S
        while True:
            try:
                nc = await nats.connect(
                    self.nats_url, user=self.user, password=self.password, connect_timeout=CONNECT_TIMEOUT_S,
                    inbox_prefix=subjects.store_inbox_prefix(self.store_id), max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT_S, disconnected_cb=self._down, reconnected_cb=self._up,
                    error_cb=self._error, name=f"freshmesh-edge-{self.store_id}")
                break
            except Exception as exc:  # noqa: BLE001 - keep trying: the till does not need us to sell
                log.info("store %s: cannot reach NATS (%s); retrying in %.1fs", self.store_id, exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
                delay = min(delay * 2, BACKOFF_MAX_S)
        self.nc, self.js = nc, nc.jetstream()
        await self.lending.subscribe(nc)
        await self._up()
        self._tasks += [asyncio.create_task(self._relay_loop(), name="sync-relay"),
                        asyncio.create_task(self._cloud_messages_loop(), name="sync-cloud-messages"),
                        asyncio.create_task(self._heartbeat_loop(), name="sync-heartbeat")]

    def _js(self) -> JetStreamContext:
        if self.js is None:
            raise RuntimeError("not connected to NATS yet")
        return self.js

    async def _down(self) -> None:
        self.connected.clear()
        self.box.actor.online = False

    async def _up(self) -> None:
        self.stats["reconnects"] += 1
        self.connected.set()
        self.box.actor.online = True
        self.box.actor.on_outbox.set()  # resend what is unacked

    async def _error(self, exc) -> None:
        log.warning("store %s: NATS error: %s", self.store_id, exc)

    # ---- relay -----------------------------------------------------------------------------------------
    def _now_s(self) -> float:
        return self.box.clock.monotonic_ms() / 1000

    async def _relay_loop(self) -> None:
        sent_upto = 0
        actor = self.box.actor
        watch = StuckHead()
        while True:
            await self.connected.wait()
            if watch.due(self._now_s()):
                head = await self.box.store_db.outbox(0, 1)
                if watch.stuck(head[0][0] if head else None, sent_upto, self._now_s()):
                    log.warning("store %s: event %s unacked for %.0f s; sending the unacked events again (round %d)",
                                self.store_id, head[0][1], watch.waited_s, watch.round)
                    sent_upto = 0
            # Clear before reading, never after: a sale committed while the read is under way sets the flag
            # again and the wait below returns at once. (Clearing after an empty read lost that wake-up, and the
            # sale waited for the next one - seconds at a quiet store; the consistency load suite found it.)
            actor.on_outbox.clear()
            rows = await self.box.store_db.outbox(sent_upto, RELAY_BATCH)
            if not rows:
                try:
                    await asyncio.wait_for(actor.on_outbox.wait(), StuckHead.CHECK_S)
                except TimeoutError:
                    pass
                continue
            try:
                acks = [await self._js().publish_async(subjects.store_event(self.store_id, kind), frame,
                                                    headers={subjects.MSG_ID_HEADER: watch.msg_id(event_id)})
                        for _, event_id, frame, kind in rows]
                await asyncio.wait_for(asyncio.gather(*acks), PUBLISH_TIMEOUT_S)
                sent_upto = rows[-1][0]
                self.stats["published"] += len(rows)
            except Exception as exc:  # noqa: BLE001 - disconnected or slow: start again from the oldest unacked
                log.info("store %s: relay paused (%s)", self.store_id, exc)
                sent_upto = 0
                await asyncio.sleep(PAUSE_S)

    # ---- cloud messages -----------------------------------------------------------------------------------
    async def _cloud_messages_loop(self) -> None:
        sub = None
        while True:
            await self.connected.wait()
            try:
                if sub is None:
                    sub = await self._js().pull_subscribe_bind(durable=subjects.cloud_messages_consumer(self.store_id),
                                                            stream=subjects.CLOUD_MESSAGES_STREAM)
                msgs = await fetch_ready(sub.fetch, CLOUD_MESSAGE_BATCH)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # noqa: BLE001
                log.info("store %s: cloud-message pull paused (%s)", self.store_id, exc)
                sub = None
                await asyncio.sleep(PAUSE_S)
                continue
            for msg in msgs:
                try:
                    message = codec.decode(msg.data)
                except ProtocolError as exc:
                    self.stats["bad_cloud_messages"] += 1
                    log.error("store %s: refused a malformed cloud message (%s); acking it so the rest flow",
                              self.store_id, exc)
                    await msg.ack()
                    continue
                await self._apply(message)
                self.last_cloud_message_seq = max(self.last_cloud_message_seq, message.seq)
                if isinstance(message, BusinessAck):
                    self.last_acked_seq = max([self.last_acked_seq, *(a.seq for a in message.acks)])
                self.stats["cloud_messages"] += 1
                await msg.ack()

    async def _apply(self, message) -> None:
        delay = PAUSE_S
        for attempt in range(1, CLOUD_MESSAGE_TRIES_MAX + 1):
            try:
                await self.box.actor.ask("cloud_message", message=message)
                return
            except Exception as exc:  # noqa: BLE001 - Busy, or a fault applying it: try again, then skip it
                failure = f"{type(exc).__name__}: {exc}"
            if attempt < CLOUD_MESSAGE_TRIES_MAX:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        self.stats["skipped_cloud_messages"] += 1
        log.error("store %s: skipped %s %s after %d tries (%s) so the messages behind it flow", self.store_id,
                  message.KIND, message.event_id, CLOUD_MESSAGE_TRIES_MAX, failure)

    # ---- stored-value holds (request/reply) ---------------------------------------------------------------
    def _envelope(self) -> dict:
        return {"event_id": self.box.actor.ids.new(), "store_id": self.store_id, "seq": 0,
                "wall_ms": self.box.clock.now_ms(), "mono_ms": self.box.clock.monotonic_ms()}

    async def _ask(self, what: str, request, timeout_s: float) -> HoldAnswered | None:
        """The cloud's answer, or None: not connected, no answer in time, or an answer that is not one."""
        return await ask_cloud(self, subjects.store_stored_value(self.store_id, what), request, HoldAnswered,
                               lambda answer: answer.hold_id == request.hold_id, timeout_s=timeout_s,
                               desk="stored-value", what=what, reference=request.hold_id, log=log)

    async def hold(self, hold_id: str, member_id: str, amount_fen: int, lane: str,
                   timeout_s: float = HOLD_TIMEOUT_MS / 1000) -> HoldAnswered | None:
        """Ask the cloud to hold the member's stored value for a sale; None when it did not answer in time (the
        hold, if granted after all, is given back at once: the till sells without it)."""
        request = HoldRequested(**self._envelope(), hold_id=hold_id, member_id=member_id, amount_fen=amount_fen,
                                lane=lane)
        answer = await self._ask("hold", request, timeout_s)
        if answer is None:
            self._spawn(self.release(hold_id, member_id))
        return answer

    async def release(self, hold_id: str, member_id: str) -> None:
        """Give a hold back (best effort: a hold nobody captures lapses anyway)."""
        await self._ask("release", HoldReleased(**self._envelope(), hold_id=hold_id, member_id=member_id),
                        HOLD_TIMEOUT_MS / 1000)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- heartbeats -------------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if not self.connected.is_set():
                continue
            try:
                now_ms = self.box.clock.now_ms()
                extras = appliance.heartbeat_extras(self.box)  # disk and version (edge/appliance.py)
                head = await self.box.store_db.outbox(0, 1)
                unacked_age = 0
                if head:  # on the monotonic clock when it can be: a wall clock jump is no lag (edge/core/clock_watch.py)
                    oldest = codec.decode(head[0][2])
                    unacked_age = unacked_age_ms(now_ms, self.box.clock.monotonic_ms(), oldest.wall_ms, oldest.mono_ms,
                                                 same_run=head[0][0] > self.box.started_seq)
                hb = Heartbeat(event_id=self.box.actor.ids.new(), store_id=self.store_id, seq=0,
                               wall_ms=now_ms, mono_ms=self.box.clock.monotonic_ms(), unacked_age_ms=unacked_age,
                               outbox_depth=await self.box.store_db.outbox_depth(),
                               last_event_seq=self.box.actor.last_seq,
                               last_acked_seq=self.last_acked_seq, last_cloud_message_seq=self.last_cloud_message_seq,
                               devices=(*(DeviceHealth(device=d, state=s, detail=detail)
                                          for d, (s, detail) in self.box.device_health().items()),
                                        extras["disk_device"]),
                               disk_free_bytes=extras["disk_free_bytes"], software_version=extras["software_version"],
                               rule_book_version=self.box.actor.rule_book.version if self.box.actor.rule_book else 0)
                assert self.nc is not None  # the loops start once connected
                await self.nc.publish(subjects.store_heartbeat(self.store_id), codec.encode(hb))
            except Exception as exc:  # noqa: BLE001 - the next one will do
                log.debug("heartbeat skipped: %s", exc)

