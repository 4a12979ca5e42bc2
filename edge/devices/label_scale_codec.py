"""The label-scale protocol "fm-label/1", sans-I/O: framing, checksum, and the command table as data.

A text protocol in the spirit of the Aclas / Dahua / Toledo TM PLU-download protocols (records downloaded as framed
lines, each acknowledged; the scale keeps its PLU table and reports the labels it prints):

  frame  = STX seq cmd { "|" field } ETX bcc CR
  seq    = 2 ASCII digits "00".."99" chosen by the sender; an answer echoes the seq of what it answers
  cmd    = 3 ASCII capital letters (COMMANDS below)
  field  = UTF-8 text without "|", STX, ETX or CR (names with "|" are sent with "/" instead)
  bcc    = 2 ASCII hex digits: XOR of every byte from the first seq digit through ETX (inclusive)
  serial = 9600 8N1, no flow control

Bytes outside a frame, a frame with a bad BCC, an unknown command or the wrong number of fields are reported as
Garbage and the reader resyncs at the next STX; a frame longer than MAX_FRAME_BYTES is dropped the same way.
A download is CLR, then one PLU per item, then END with the count: the scale swaps its table in only when the
count matches, so a download cut short leaves the previous table printing (a real scale's behaviour too). The
host may have several frames in flight (distinct seqs, fewer than 99); the scale answers each in order.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.devices.events import Garbage
from edge.devices.traits import SerialSettings

STX, ETX, CR = 0x02, 0x03, 0x0D
SEP = "|"
MAX_FRAME_BYTES = 512
PROTOCOL = "fm-label"

# cmd -> (direction, field names): the protocol as data; both the box and the simulator read frames with it.
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CLR": ("host", ()),  # start a download: the scale stages an empty table
    "PLU": ("host", ("plu", "sku", "name", "unit", "price_fen", "prefix", "pattern", "weight_decimals",
                     "amount_decimals")),  # unit "kg" (price per kg) or "piece"; the barcode layout to print
    "END": ("host", ("count", "version")),  # end of a download: ACK when `count` PLUs were staged, else NAK
    "STA": ("host", ()),  # status request
    "ACK": ("scale", ()),  # done (echoes the seq)
    "NAK": ("scale", ("reason",)),  # refused, with why (echoes the seq)
    "STS": ("scale", ("plus", "version", "grams", "stable")),  # status answer: table size, version, platter
    "LBL": ("scale", ("plu", "grams", "amount_fen", "code")),  # a label was printed (unsolicited, seq 00)
}


@dataclass(frozen=True)
class Frame:
    seq: int
    cmd: str
    fields: tuple[str, ...]

    def get(self, name: str) -> str:
        return self.fields[COMMANDS[self.cmd][1].index(name)]


def bcc(data: bytes) -> int:
    out = 0
    for byte in data:
        out ^= byte
    return out


def encode(seq: int, cmd: str, *fields: object) -> bytes:
    names = COMMANDS[cmd][1]
    if len(fields) != len(names):
        raise ValueError(f"{cmd} takes {len(names)} fields ({', '.join(names)}), got {len(fields)}")
    text = [str(f).replace(SEP, "/").replace("\r", " ").replace("\n", " ") for f in fields]
    body = f"{seq % 100:02d}{cmd}".encode("ascii") + b"".join(SEP.encode() + t.encode("utf-8") for t in text)
    body = body.replace(bytes([STX]), b" ").replace(bytes([ETX]), b" ")
    sealed = body + bytes([ETX])
    return bytes([STX]) + sealed + f"{bcc(sealed):02X}".encode("ascii") + bytes([CR])


class FrameReader:
    """`feed(bytes) -> [Frame | Garbage]`, bounded, resyncing at the next STX after anything wrong."""
    SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="N")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.outside = bytearray()  # bytes between frames: garbage, reported once a frame starts or at a CR

    def feed(self, data: bytes) -> list:
        out: list = []
        for byte in data:
            if byte == STX:
                if self.outside:
                    out.append(Garbage(bytes(self.outside), "bytes outside a frame"))
                    self.outside = bytearray()
                if self.buffer:
                    out.append(Garbage(bytes(self.buffer), "frame cut short by a new STX"))
                self.buffer = bytearray([STX])
            elif not self.buffer:
                self.outside.append(byte)
                if byte == CR or len(self.outside) > MAX_FRAME_BYTES:
                    out.append(Garbage(bytes(self.outside), "bytes outside a frame"))
                    self.outside = bytearray()
            elif byte == CR:
                out.append(self._frame(bytes(self.buffer[1:])))
                self.buffer = bytearray()
            else:
                self.buffer.append(byte)
                if len(self.buffer) > MAX_FRAME_BYTES:
                    out.append(Garbage(bytes(self.buffer), f"no CR within {MAX_FRAME_BYTES} bytes"))
                    self.buffer = bytearray()
        return out

    @staticmethod
    def _frame(raw: bytes) -> Frame | Garbage:
        end = raw.rfind(bytes([ETX]))
        if end < 5 or len(raw) != end + 3:
            return Garbage(raw, "frame without seq, command, ETX and a 2-digit BCC")
        sealed, check = raw[:end + 1], raw[end + 1:]
        try:
            if int(check.decode("ascii"), 16) != bcc(sealed):
                return Garbage(raw, f"bad BCC {check!r}: expected {bcc(sealed):02X}")
            text = sealed[:-1].decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return Garbage(raw, "frame is not ASCII/UTF-8 with a hex BCC")
        seq, cmd, rest = text[:2], text[2:5], text[5:]
        if not seq.isdigit() or cmd not in COMMANDS:
            return Garbage(raw, f"unknown command {cmd!r}")
        fields = tuple(rest.split(SEP)[1:]) if rest else ()
        if (rest and not rest.startswith(SEP)) or len(fields) != len(COMMANDS[cmd][1]):
            return Garbage(raw, f"{cmd} needs {len(COMMANDS[cmd][1])} fields, got {len(fields)}")
        return Frame(int(seq), cmd, fields)


class LabelScaleCodec(FrameReader):
    """The box's side: frames from the scale only (a host command echoed back is garbage, not an answer)."""

    def feed(self, data: bytes) -> list:
        return [e if isinstance(e, Garbage) or COMMANDS[e.cmd][0] == "scale"
                else Garbage(repr(e).encode(), f"a host command {e.cmd} from the scale") for e in super().feed(data)]
