"""The store's label scales: PLU tables pushed from the box, kept in step with the catalogue and markdowns.

Config (box config `devices.label_scales`, a list): `{"port", "protocol": "fm-label", "weighed_layout":
"weight-g", "counted_layout": "price-fen", "baudrate"...}`; layouts are the box's variable-measure layouts by
name, so the labels the scale prints are exactly what the till reads back (`POST /lanes/{lane}/scan`).

Guarantees:
- Every scale gets the whole PLU table (PLU, sku, name, unit, price, barcode layout) at box start, whenever the
  books change (a CatalogueUpdated or RuleBookUpdated applied: the actor calls `books_changed`), whenever the
  promotion book's markdowns change a price (checked every MARKDOWN_CHECK_S by `follow_markdowns`: 19:00 leafy
  greens -30% reach the scales' labels) and whenever `push_prices` is called (explicit prices, over the markdowns).
  An unchanged table is not downloaded again. A download is CLR, PLU..., END; each frame is acknowledged; the scale
  swaps its table only at a complete END, so it never prints from half a table.
- A scale that is unplugged, mute or refusing is retried (every `RETRY_S`, bounded by the ack timeout), and a
  scale that lost its table (power cycled: its status reports another version) is pushed again; the till and the
  other scales never wait on it. Garbage from its port is counted and skipped (edge.devices.serial_driver).
- A label a scale prints at a markdown's price (it reports each label it prints) is registered as a markdown label
  (edge/markdowns_db.py, through the actor: `record_label`), so the till sells it at its price, with the weighed
  grams, and does not mark it down again.
- `health()` reports each scale: state, PLUs loaded, the version it holds, the last push and the last error, and
  the labels it reported printing (the newest LABELS_KEPT).
"""
from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from edge.core.label_plus import (
    DEFAULT_COUNTED_LAYOUT,
    DEFAULT_WEIGHED_LAYOUT,
    Markdown,
    PluRecord,
    label_layout,
    layout_named,
    markdown_label,
    markdown_prices,
    plu_records,
)
from edge.core.markdowns import Label
from edge.devices.label_scale_codec import PROTOCOL, Frame, LabelScaleCodec, encode
from edge.devices.serial_driver import DeviceNotReady, SerialDevice
from protocol.clock import Clock, to_rfc3339

ACK_TIMEOUT_S = 1.0
WINDOW = 16  # PLU frames in flight before their acks are awaited (label_scale_codec: fewer than 99 seqs)
RETRY_S = 2.0  # how often a scale is asked its status (and pushed again when it holds another version)
LABELS_KEPT = 50
MARKDOWN_CHECK_S = 30.0  # how soon a time-of-day markdown reaches the scales (the rules are by the minute)
log = logging.getLogger("freshmesh.edge.label_scales")


class LabelScale(SerialDevice):
    def __init__(self, name: str, port: str, clock: Clock, config: dict, on_label=None) -> None:
        codec = LabelScaleCodec()
        self.on_label = on_label  # async (scale, plu, grams, amount_fen, code): what the box does with a label
        super().__init__(name, port, codec, clock, codec.SERIAL.overridden(config))
        self.weighed = layout_named(config.get("weighed_layout", DEFAULT_WEIGHED_LAYOUT))
        self.counted = layout_named(config.get("counted_layout", DEFAULT_COUNTED_LAYOUT))
        self.wanted: tuple[PluRecord, ...] = ()
        self.wanted_version = 0  # 0: nothing to push yet (no catalogue)
        self.loaded_version = 0
        self.plus_loaded = 0
        self.pushes = 0
        self.last_push_ms: int | None = None
        self.last_error = ""
        self.labels: collections.deque[dict] = collections.deque(maxlen=LABELS_KEPT)
        self._seq = 0
        self._answers: dict[int, asyncio.Future] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def want(self, records: tuple[PluRecord, ...], version: int) -> None:
        self.wanted, self.wanted_version = records, version
        self._wake.set()

    async def _run(self) -> None:
        """The port reader and the pusher share the device's one task (the one the box's watchdog restarts): if
        either fails, both stop and the port is closed, so a restart never leaves two readers on one port."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(super()._run())
                group.create_task(self._pusher())
        finally:
            self._close()

    async def handle(self, event) -> None:
        if not isinstance(event, Frame):
            return
        if event.cmd == "LBL":
            try:
                grams, amount = int(event.get("grams") or 0), int(event.get("amount_fen") or 0)
            except ValueError:
                self.garbage += 1
                return
            self.labels.append({"plu": event.get("plu"), "grams": grams, "amount_fen": amount,
                                "code": event.get("code"), "at_ms": self.clock.now_ms()})
            if self.on_label is not None:
                try:
                    await self.on_label(self, event.get("plu"), grams, amount, event.get("code"))
                except Exception:  # noqa: BLE001 - one label the box cannot register never stops the scale
                    log.exception("%s: label %s not registered", self.name, event.get("code"))
            return
        fut = self._answers.pop(event.seq, None)
        if fut is not None and not fut.done():
            fut.set_result(event)

    async def _ask(self, cmd: str, *fields: object) -> Frame:
        """One command, its answer (ACK / STS); DeviceNotReady when refused or unanswered."""
        return (await self._ask_window([(cmd, fields)]))[0]

    async def _ask_window(self, commands: list[tuple[str, tuple[object, ...]]]) -> list[Frame]:
        """Up to WINDOW commands written at once, then all their answers awaited (a download is mostly PLU frames:
        one round trip each would take minutes on a real 9600-baud line)."""
        futs, data = [], b""
        loop = asyncio.get_running_loop()
        for cmd, fields in commands:
            self._seq = self._seq % 99 + 1  # 01..99; 00 is the scale's own (unsolicited labels)
            fut = loop.create_future()
            self._answers[self._seq] = fut
            futs.append((self._seq, cmd, fut))
            data += encode(self._seq, cmd, *fields)
        try:
            await self.write(data)
            answers: list[Frame] = []
            for _, cmd, fut in futs:
                try:
                    async with asyncio.timeout(ACK_TIMEOUT_S):
                        answers.append(await fut)
                except TimeoutError:
                    raise DeviceNotReady(f"the label scale did not answer {cmd}") from None
        finally:
            for seq, _, _ in futs:
                self._answers.pop(seq, None)
        for answer, (_, cmd, _) in zip(answers, futs, strict=True):
            if answer.cmd == "NAK":
                raise DeviceNotReady(f"the label scale refused {cmd}: {answer.get('reason')}")
        return answers

    async def _pusher(self) -> None:
        while True:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # asked to stop (a swallowed cancel must not keep us going)
                raise asyncio.CancelledError
            try:
                async with asyncio.timeout(RETRY_S):  # not wait_for: in 3.11 it can swallow a cancel that races it
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self.wanted_version == 0 or self.serial is None:
                continue
            try:
                async with self._lock:
                    status = await self._ask("STA")
                    if int(status.get("version") or 0) != self.wanted_version:
                        await self._push(self.wanted, self.wanted_version)
                self.last_error = ""
                if self.state == "degraded" and self.serial is not None:
                    self.state, self.detail = "ok", "answering"
            except (DeviceNotReady, OSError, ValueError) as exc:  # retried at the next round; the box goes on
                self.last_error = str(exc)
                if self.state == "ok":  # the port is open but the scale is not doing its job: the console shows it
                    self.state, self.detail = "degraded", str(exc)
                log.warning("%s: %s; retrying in %gs", self.name, exc, RETRY_S)

    async def _push(self, records: tuple[PluRecord, ...], version: int) -> None:
        await self._ask("CLR")
        for start in range(0, len(records), WINDOW):
            await self._ask_window([("PLU", r.fields()) for r in records[start:start + WINDOW]])
        await self._ask("END", len(records), version)
        self.loaded_version, self.plus_loaded = version, len(records)
        self.pushes += 1
        self.last_push_ms = self.clock.now_ms()
        log.info("%s: %d PLUs loaded (version %d)", self.name, len(records), version)

    def report(self) -> dict:
        return {"state": self.state, "detail": self.last_error or self.detail, "protocol": PROTOCOL,
                "plus_loaded": self.plus_loaded, "version_loaded": self.loaded_version,
                "version_wanted": self.wanted_version, "up_to_date": self.loaded_version == self.wanted_version,
                "pushes": self.pushes, "last_push_ms": self.last_push_ms, "last_push": to_rfc3339(self.last_push_ms),
                "garbage": self.garbage,
                "labels": list(self.labels)[-5:]}


class LabelScales:
    """All the box's label scales; `books_changed` and `push_prices` make every one of them want the new table."""

    def __init__(self, configs: list[dict], clock: Clock, now_ms: Callable[[], int]) -> None:
        self.scales: list[LabelScale] = []
        for i, config in enumerate(configs, start=1):
            if config.get("protocol", PROTOCOL) != PROTOCOL:
                raise ValueError(f"label scale protocol {config.get('protocol')!r} is not known; one of {PROTOCOL}")
            self.scales.append(LabelScale(config.get("name", f"label_scale_{i}"), config["port"], clock, config,
                                          on_label=self._label_printed))
        self.books = None
        self.store_id = ""
        self.overrides: dict[str, int] = {}  # push_prices: explicit prices, over the markdowns
        self.markdowns: dict[str, Markdown] = {}  # what the promotion book's markdowns make the prices now
        self.record_label: Callable[[Label], Awaitable[object]] | None = None  # the box: into markdown_labels
        self.skipped: tuple[str, ...] = ()
        self._version = 0
        self._now_ms = now_ms

    def books_changed(self, books) -> None:
        self.books = books
        if self.scales:  # no scale: nothing to price for
            self._follow()

    def _follow(self) -> None:
        catalogue, rule_book = getattr(self.books, "catalogue", None), getattr(self.books, "rule_book", None)
        self.markdowns = markdown_prices(catalogue, rule_book, self.store_id, self._now_ms())
        self._want()

    async def follow_markdowns(self, store_id: str) -> None:
        """The box's task: markdowns that start (or end) with the time of day reach the scales."""
        self.store_id = store_id
        while self.scales:
            try:
                if self.scales:
                    self._follow()
            except Exception:  # noqa: BLE001 - a rule the evaluator cannot price must not end the following
                log.exception("label scales: following the markdowns failed; trying again")
            await asyncio.sleep(MARKDOWN_CHECK_S)

    def push_prices(self, overrides: dict[str, int]) -> None:
        """The markdown prices of the moment (sku -> fen per kg or per piece): the complete set; a sku not in it
        goes back to its list price. Every scale is pushed the new table (retried while one is down)."""
        bad = {sku: fen for sku, fen in overrides.items() if not isinstance(fen, int) or fen <= 0}
        if bad:
            raise ValueError(f"label-scale prices must be positive fen: {bad}")
        self.overrides = dict(overrides)
        self._want()

    def _want(self) -> None:
        catalogue = getattr(self.books, "catalogue", None)
        if catalogue is not None:  # the store's own and scheduled prices in force now (protocol.pricing.price_book)
            catalogue = catalogue.at(self._now_ms(), self.store_id or None)
        # a version that only grows, unique per table (wall ms): a scale restarted with an old table never matches
        self._version = max(self._version + 1, self._now_ms())
        for scale in self.scales:
            prices = {**{sku: m.price_fen for sku, m in self.markdowns.items()}, **self.overrides}
            records, self.skipped = plu_records(catalogue, prices, scale.weighed, scale.counted)
            if catalogue is not None and (records != scale.wanted or not scale.wanted_version):
                scale.want(records, self._version)  # a new rule book alone changes no PLU: no download

    async def _label_printed(self, scale: LabelScale, plu: str, grams: int, amount_fen: int, code: str) -> None:
        catalogue = getattr(self.books, "catalogue", None)
        if catalogue is not None:  # the "was" price on a markdown label is this store's price in force now
            catalogue = catalogue.at(self._now_ms(), self.store_id or None)
        product = catalogue.by_item_code(plu) if catalogue is not None else None
        if product is None or self.record_label is None or product.sku in self.overrides:
            return
        markdown = self.markdowns.get(product.sku)
        if markdown is None:
            return
        layout = label_layout(product.weighed, scale.weighed, scale.counted)  # as plu_records gave it the scale
        label = markdown_label(markdown, product.price_fen, product.sku, code, grams, amount_fen, product.weighed,
                               layout)
        if label is not None:
            await self.record_label(label)

    def health(self) -> dict[str, dict]:
        return {scale.name: scale.report() for scale in self.scales}
