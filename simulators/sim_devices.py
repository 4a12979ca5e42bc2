"""`freshmesh sim devices`: a scale, a scanner and a receipt printer on pseudo-terminals, driven from stdin.

It creates DIR/scale, DIR/scanner and DIR/printer (links to the ptys), prints them and the edge box's `devices`
config as one JSON line, then reads one command per line (`help` lists them). Every command answers exactly one
line starting with `ok` or `error:` (a bad command is explained and the simulator carries on); `receipts` first
lists the receipts, each line after "| ". Receipts the box prints are echoed as they arrive, their lines after
"| " too, so a script can tell answers from echoes. Lines starting with "#" are notes (blank and "#" input lines
are ignored). EOF, `quit`, Ctrl-C or SIGTERM stop it cleanly: devices closed, links removed.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import signal
import sys
import threading
from pathlib import Path

from simulators.devices import ContinuousScale, PtyDevice, ReceiptPrinter, Scanner, Toledo8217Scale, describe

PROTOCOLS: dict[str, tuple[type[Toledo8217Scale] | type[ContinuousScale], str]] = {
    "toledo8217": (Toledo8217Scale, "polled: answers W; 9600 7E1"),
    "continuous": (ContinuousScale, "streams 10 frames/s; 9600 8N1")}
NAMES = ("scale", "scanner", "printer")
MAX_GARBAGE = 100_000
MAX_SECONDS = 3600.0
HELP = ("weigh GRAMS | drift GRAMS_PER_S | unstable SECONDS | overload | scan CODE | garbage DEVICE N | "
        "split DEVICE on|off | disconnect DEVICE SECONDS | receipts | status | help | quit  (DEVICE: scale, scanner, "
        "printer)")
COMMANDS = [part.split()[0] for part in HELP.split(" | ")]


class CommandError(ValueError):
    """A command that cannot be carried out; the message says exactly what was wrong."""


class Bench:
    """The three devices and the command interpreter. `handle(line)` returns the answer line (None for blank or
    comment lines) and never raises; longer output (receipt listings) goes through `say` before the answer."""

    def __init__(self, directory: Path, protocol: str = "toledo8217", receipts_file: str | None = None,
                 seed: int | None = None, say=print) -> None:
        self.directory, self.protocol, self.say = Path(directory), protocol, say
        self.directory.mkdir(parents=True, exist_ok=True)
        self.done = False
        seeds = [None if seed is None else seed + i for i in range(3)]  # different noise per device, reproducible
        self.devices: dict[str, PtyDevice] = {}
        try:
            self.scale = PROTOCOLS[protocol][0](self.directory / "scale", seed=seeds[0])
            self.devices["scale"] = self.scale
            self.scanner = self.devices["scanner"] = Scanner(self.directory / "scanner", seed=seeds[1])
            self.printer = self.devices["printer"] = ReceiptPrinter(
                self.directory / "printer", receipts_file=receipts_file, seed=seeds[2],
                on_receipt=lambda r, n: self.say(describe(r, n, indent="| ")))
        except BaseException:
            self.close()
            raise

    def edge_config(self) -> dict:
        """The `devices` part of an edge box config (edge.box.EdgeBox._make_devices reads these keys)."""
        return {"devices": {"scale": {"port": self.scale.path, "protocol": self.protocol},
                            "scanner": {"port": self.scanner.path},
                            "printer": {"port": self.printer.path}}}

    def close(self) -> None:
        for device in self.devices.values():
            device.close()

    # ---- commands -------------------------------------------------------------------------------------------
    def handle(self, line: str) -> str | None:
        words = line.split()
        if not words or words[0].startswith("#"):
            return None
        name, args = words[0].lower(), words[1:]
        command = getattr(self, f"cmd_{name}", None)
        if command is None:
            return f"error: unknown command {words[0]!r}; commands: {', '.join(COMMANDS)} (help shows their arguments)"
        try:
            return "ok " + command(args)
        except CommandError as exc:
            return f"error: {exc}"
        except Exception as exc:  # noqa: BLE001 - a simulator bug must not end the session; say what it was
            return f"error: {name} failed: {type(exc).__name__}: {exc}"

    def cmd_weigh(self, args) -> str:
        (grams,) = _args(args, "weigh GRAMS")
        self.scale.set_grams(_int(grams, "weigh", "grams, a whole number like 1234"))
        return f"scale: {self.scale.grams} g on the platter{self._scale_note()}"

    def cmd_drift(self, args) -> str:
        (text,) = _args(args, "drift GRAMS_PER_S")
        rate = _number(text, "drift", "grams per second, like 5 or -2.5", low=-100_000, high=100_000)
        self.scale.drift(rate)
        return f"scale: drifting {rate:+g} g/s" if rate else "scale: drift stopped"

    def cmd_unstable(self, args) -> str:
        (text,) = _args(args, "unstable SECONDS")
        seconds = _number(text, "unstable", "seconds, like 2", low=0.001, high=MAX_SECONDS)
        self.scale.unstable(seconds)
        return f"scale: in motion for {seconds:g} s, then stable"

    def cmd_overload(self, args) -> str:
        _args(args, "overload")
        grams = self.scale.overload()
        return f"scale: {grams} g on a {self.scale.capacity_g} g scale (overload until the next weigh)"

    def cmd_scan(self, args) -> str:
        (code,) = _args(args, "scan CODE")
        if not (code.isascii() and code.isprintable()):
            raise CommandError(f"scan: {code!r} is not printable ASCII (what a barcode scanner sends)")
        self.scanner.scan(code)
        return f"scanner: sent {code}"

    def cmd_garbage(self, args) -> str:
        device, text = _args(args, "garbage DEVICE N")
        n = _int(text, "garbage", f"a byte count from 1 to {MAX_GARBAGE}")
        if not 1 <= n <= MAX_GARBAGE:
            raise CommandError(f"garbage: {n} bytes is out of range (1 to {MAX_GARBAGE})")
        self._device(device).garbage(n)
        return f"{device}: sent {n} noise bytes"

    def cmd_split(self, args) -> str:
        device, mode = _args(args, "split DEVICE on|off")
        if mode.lower() not in ("on", "off"):
            raise CommandError(f"split: expected 'on' or 'off', got {mode!r}")
        self._device(device).split_frames(mode.lower() == "on")
        return f"{device}: frames {'split into pieces' if mode.lower() == 'on' else 'sent whole'}"

    def cmd_disconnect(self, args) -> str:
        device, text = _args(args, "disconnect DEVICE SECONDS")
        seconds = _number(text, "disconnect", "seconds, like 3", low=0.001, high=MAX_SECONDS)
        self._device(device).disconnect(seconds)
        return f"{device}: unplugged, back at {self.devices[device].path} in {seconds:g} s"

    def cmd_receipts(self, args) -> str:
        _args(args, "receipts")
        receipts = list(self.printer.receipts)
        for n, receipt in enumerate(receipts, 1):
            self.say(describe(receipt, n, indent="| "))
        pending = self.printer.reader.partial()
        note = f", and one being printed ({len(pending.lines)} lines, not cut yet)" if pending.lines else ""
        return f"{len(receipts)} receipts{note}"

    def cmd_status(self, args) -> str:
        _args(args, "status")
        s = self.scale
        extra = {"scale": f" {s.grams} g{self._scale_note()}, {'in motion' if s.in_motion else 'stable'}, drift "
                          f"{s.drift_g_per_s:+g} g/s,", "printer": f" {len(self.printer.receipts)} receipts,"}
        return "; ".join(f"{name}{extra.get(name, '')} {'plugged' if d.plugged else 'unplugged'}"
                         f"{', frames split' if d.split else ''}" for name, d in self.devices.items())

    def cmd_help(self, args) -> str:
        return f"commands: {HELP}"

    def cmd_quit(self, args) -> str:
        self.done = True
        return "bye"

    cmd_exit = cmd_quit

    def _device(self, name: str) -> PtyDevice:
        if name.lower() not in self.devices:
            raise CommandError(f"no device {name!r}; devices: {', '.join(NAMES)}")
        return self.devices[name.lower()]

    def _scale_note(self) -> str:
        if self.scale.grams > self.scale.capacity_g:
            return f" (over the {self.scale.capacity_g} g capacity: overload)"
        return " (under zero)" if self.scale.grams < 0 else ""


def _args(args: list[str], usage: str) -> list[str]:
    want = len(usage.split()) - 1
    if len(args) != want:
        raise CommandError(f"usage: {usage} ({want} argument{'s' if want != 1 else ''}, got {len(args)})")
    return args


def _int(text: str, command: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"{command}: {text!r} is not {what}") from None


def _number(text: str, command: str, what: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"{command}: {text!r} is not {what}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise CommandError(f"{command}: {text} is out of range ({low:g} to {high:g})")
    return value


# ---- the command line -----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--dir", required=True, help="where to create the scale, scanner and printer links")
    parser.add_argument("--scale-protocol", choices=sorted(PROTOCOLS), default="toledo8217")
    parser.add_argument("--receipts", default=None, metavar="FILE", help="append each printed receipt here as text")
    parser.add_argument("--seed", type=int, default=None, help="makes noise and frame splits reproducible")
    return parser


def run(args) -> int:
    directory = Path(args.dir)
    for name in NAMES:
        if (directory / name).exists() and not (directory / name).is_symlink():
            print(f"error: {directory / name} exists and is not a device link; choose another --dir", file=sys.stderr)
            return 2
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:  # receipts are echoed from the printer's thread: whole blocks, never interleaved lines
            try:
                print(text, flush=True)
            except (BrokenPipeError, ValueError):  # nobody reads our output any more; keep serving the devices
                pass

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    if isinstance(sys.stdin, io.TextIOWrapper):  # not when stdin was replaced by some other stream
        sys.stdin.reconfigure(errors="replace")  # a stray byte is a bad command, not a crash
    bench = Bench(directory, args.scale_protocol, args.receipts, args.seed, say)
    try:
        for name in NAMES:
            detail = {"scale": f" ({args.scale_protocol}, {PROTOCOLS[args.scale_protocol][1]})",
                      "printer": f" (receipts also to {args.receipts})" if args.receipts else ""}.get(name, "")
            say(f"# {name}: {bench.devices[name].path} -> {Path(bench.devices[name].path).resolve()}{detail}")
        say("# edge box config (devices):")
        say(json.dumps(bench.edge_config()))
        say(f"# ready; commands: {HELP}")
        while not bench.done:
            line = sys.stdin.readline()
            if not line:
                break
            answer = bench.handle(line)
            if answer is not None:
                say(answer)
    except KeyboardInterrupt:
        pass
    finally:
        bench.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        say("# stopped: devices closed, links removed")
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="freshmesh sim devices", description=__doc__.splitlines()[0])
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
