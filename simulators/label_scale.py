"""A label scale on a pseudo-terminal speaking "fm-label/1" (edge.devices.label_scale_codec), and its command line.

The scale keeps a PLU table downloaded by the host (CLR, PLU..., END: swapped in only when END's count matches,
so a cut download leaves the old table printing), has a platter (`weigh`), and prints labels: `print_label(plu)`
weighs (or counts), prices at the PLU's price (fen per kg, or per piece) and composes the PLU's barcode layout
(protocol.label_codes.compose: prefix 2x + PLU + weight or amount + check digit). Printed labels are kept in
`labels` (for a test or the demo to carry the package to the till) and reported to the host (LBL frames).
Faults: `mute(True)` (answers nothing: a scale switched off behind a live cable), `garbage(n)`, `disconnect(s)`,
`split_frames(True)` (from PtyDevice); a frame with a bad BCC is answered NAK, like a real scale.

`python -m simulators.label_scale --dir DIR`: creates DIR/label_scale, prints the box config for it as one JSON
line, then reads commands (`help`), each answered with one line `ok ...` or `error: ...`.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from edge.devices.events import Garbage
from edge.devices.label_scale_codec import FrameReader, encode
from protocol.barcodes import VariableMeasureLayout
from protocol.label_codes import compose
from protocol.money import GRAMS_PER_KG, div_round
from simulators.devices import PtyDevice

HELP = "weigh GRAMS | label PLU [COUNT] | plus | labels | garbage N | mute on|off | disconnect SECONDS | help | quit"


@dataclass(frozen=True)
class PluEntry:
    plu: str
    sku: str
    name: str
    unit: str
    price_fen: int
    layout: VariableMeasureLayout


@dataclass(frozen=True)
class Label:
    plu: str
    sku: str
    name: str
    grams: int  # 0 for goods sold by the piece
    count: int
    price_fen: int  # per kg or per piece, as loaded
    amount_fen: int
    code: str


class LabelScaleSim(PtyDevice):
    def __init__(self, link: Path, seed: int | None = None) -> None:
        self.reader = FrameReader()
        self.plus: dict[str, PluEntry] = {}
        self.version = 0
        self.staging: dict[str, PluEntry] | None = None
        self.grams = 0
        self.muted = False
        self.labels: list[Label] = []
        self.downloads = 0  # complete downloads taken
        self.bad_frames = 0
        self.lock = threading.Lock()
        super().__init__(link, seed=seed)

    # ---- the host's side ----------------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        for item in self.reader.feed(data):
            if isinstance(item, Garbage):
                self.bad_frames += 1
                if b"BCC" in item.reason.encode() and not self.muted:
                    self.write(encode(int(item.data[:2]) if item.data[:2].isdigit() else 0, "NAK", item.reason))
                continue
            if self.muted:
                continue
            answer = self._answer(item)
            if answer is not None:
                self.write(answer)

    def _answer(self, frame) -> bytes | None:
        with self.lock:
            if frame.cmd == "CLR":
                self.staging = {}
            elif frame.cmd == "PLU":
                if self.staging is None:
                    return encode(frame.seq, "NAK", "PLU outside a download (send CLR first)")
                try:
                    entry = self._entry(frame)
                except (ValueError, KeyError) as exc:
                    return encode(frame.seq, "NAK", f"bad PLU record: {exc}")
                self.staging[entry.plu] = entry
            elif frame.cmd == "END":
                staged, self.staging = self.staging, None
                if staged is None or len(staged) != int(frame.get("count")):
                    got = "no download" if staged is None else f"{len(staged)} PLUs"
                    return encode(frame.seq, "NAK", f"END says {frame.get('count')} PLUs, got {got}; table unchanged")
                self.plus, self.version = staged, int(frame.get("version"))
                self.downloads += 1
            elif frame.cmd == "STA":
                return encode(frame.seq, "STS", len(self.plus), self.version, self.grams, 1)
            else:
                return encode(frame.seq, "NAK", f"{frame.cmd} is not a host command")
            return encode(frame.seq, "ACK")

    @staticmethod
    def _entry(frame) -> PluEntry:
        layout = VariableMeasureLayout(name=f"plu-{frame.get('plu')}", prefixes=(frame.get("prefix"),),
                                       pattern=frame.get("pattern"),
                                       weight_decimals=int(frame.get("weight_decimals")),
                                       amount_decimals=int(frame.get("amount_decimals")))
        price = int(frame.get("price_fen"))
        if price <= 0 or frame.get("unit") not in ("kg", "piece") or not frame.get("plu").isdigit():
            raise ValueError(f"plu {frame.get('plu')!r}, unit {frame.get('unit')!r}, price {price}")
        return PluEntry(frame.get("plu"), frame.get("sku"), frame.get("name"), frame.get("unit"), price, layout)

    # ---- the clerk's side -----------------------------------------------------------------------------------
    def weigh(self, grams: int) -> None:
        self.grams = grams

    def mute(self, on: bool = True) -> None:
        self.muted = on

    def print_label(self, plu: str, count: int = 1) -> Label:
        """Prints one label for what is on the platter (or `count` pieces): ValueError when it cannot."""
        with self.lock:
            entry = self.plus.get(plu) or next((e for e in self.plus.values() if e.plu.lstrip("0") == plu.lstrip("0")),
                                               None)
            if entry is None:
                raise ValueError(f"PLU {plu} is not in the scale's table ({len(self.plus)} PLUs loaded)")
            if entry.unit == "kg":
                if self.grams <= 0:
                    raise ValueError("nothing on the platter: weigh first")
                grams, count = self.grams, 1
                amount = div_round(entry.price_fen * grams, GRAMS_PER_KG)
            else:
                grams, amount = 0, entry.price_fen * count
            code = compose(entry.layout, entry.plu, weight_g=grams or None, amount_fen=amount, count=count)
            label = Label(entry.plu, entry.sku, entry.name, grams, count, entry.price_fen, amount, code)
            self.labels.append(label)
        if not self.muted:
            self.write(encode(0, "LBL", entry.plu, grams, amount, code))
        return label


# ---- the command line -----------------------------------------------------------------------------------------
def handle(scale: LabelScaleSim, line: str) -> str | None:
    words = line.split()
    if not words or words[0].startswith("#"):
        return None
    cmd, args = words[0].lower(), words[1:]
    try:
        if cmd == "weigh" and len(args) == 1:
            scale.weigh(int(args[0]))
            return f"ok platter: {scale.grams} g"
        if cmd == "label" and len(args) in (1, 2):
            label = scale.print_label(args[0], int(args[1]) if len(args) == 2 else 1)
            return f"ok label {label.code} {label.name} {label.grams} g x{label.count} {label.amount_fen} fen"
        if cmd == "plus" and not args:
            return "ok " + json.dumps({p.plu: [p.sku, p.name, p.unit, p.price_fen] for p in scale.plus.values()},
                                      ensure_ascii=False)
        if cmd == "labels" and not args:
            return "ok " + " ".join(label.code for label in scale.labels)
        if cmd == "garbage" and len(args) == 1:
            return f"ok sent {len(scale.garbage(int(args[0])))} bytes"
        if cmd == "mute" and args in (["on"], ["off"]):
            scale.mute(args[0] == "on")
            return f"ok muted {args[0]}"
        if cmd == "disconnect" and len(args) == 1:
            scale.disconnect(float(args[0]))
            return f"ok unplugged for {float(args[0]):g} s"
        if cmd == "help":
            return f"ok {HELP}"
    except ValueError as exc:
        return f"error: {exc}"
    return f"error: unknown command or arguments {line.strip()!r}; commands: {HELP}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.label_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    scale = LabelScaleSim(Path(args.dir) / "label_scale", seed=args.seed)
    try:
        print(json.dumps({"devices": {"label_scales": [{"port": scale.path, "protocol": "fm-label"}]}}), flush=True)
        print(f"# ready; commands: {HELP}", flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            answer = handle(scale, line)
            if answer is not None:
                print(answer, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        scale.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
