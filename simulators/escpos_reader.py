"""ESC/POS from the printer's side: a sans-I/O decoder turning the bytes a host sends into finished receipts.

`EscPosReader().feed(chunk) -> [Receipt]` gives the receipts that chunk finished (a receipt ends at a GS V cut).

Guarantees:
- Any chunking decodes the same: a command or a multi-byte GB18030 character split across chunks is completed by
  the following chunks (nothing is decided on a partial command).
- It never raises. Commands it knows but does not render (underline, fonts, images, 1-D barcode setup, drawer
  pulse ...) are skipped by their parameter lengths; anything else it cannot make sense of (an unknown command, a
  stray control byte, text that is not GB18030, a malformed QR function) adds one message saying what and at which
  byte of the stream to the current receipt's `errors`, and decoding carries on with the next byte.
- Memory is bounded: it holds at most one whole command (the longest is a QR store, 7092 bytes), one line of text
  (broken at MAX_LINE_BYTES) and MAX_LINES lines per receipt; image data is skipped as it streams in.

Rendered: alignment (ESC a), bold (ESC E, ESC !), character size (GS !, ESC !), line feeds (LF, ESC d), QR codes
(GS ( k, cn 49: model/size/error-correction settings accepted, store-data kept, print-symbol emits the payload),
1-D barcodes (GS k, shown as "[BARCODE] data"), init (ESC @: style and stored QR reset, unprinted text dropped).
Text is GB18030, as Chinese thermal printers take it (edge.devices.escpos writes it that way).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace

ENCODING = "gb18030"
NUL, HT, LF, FF, CR, DLE, CAN, ESC, FS, GS = 0x00, 0x09, 0x0A, 0x0C, 0x0D, 0x10, 0x18, 0x1B, 0x1C, 0x1D
COLUMNS = 32  # a 58 mm printer's Font A line; the edge lays receipts out for it (Ticket.columns)
MAX_LINE_BYTES = 4096  # far beyond any paper width: a longer run without LF is noise, broken into lines
MAX_LINES = 5000
MAX_ERRORS = 100  # per receipt; later ones are counted in the last message
MAX_SKIP_BYTES = 1 << 20  # a full-width raster logo is ~150 KB; a bigger length is noise, not an image
MAX_QR_PARAM = 7092  # pL + 256 pH of a QR store-data function (Epson's limit)
ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}

# Parameter bytes after the command byte, for commands that are skipped without effect on the rendering.
ESC_SKIP = {b" ": 1, b"$": 2, b"%": 1, b"-": 1, b"2": 0, b"3": 1, b"<": 0, b"=": 1, b"?": 1, b"B": 2, b"G": 1,
            b"J": 1, b"K": 1, b"L": 0, b"M": 1, b"R": 1, b"S": 0, b"T": 1, b"U": 1, b"V": 1, b"W": 8, b"\\": 2,
            b"c": 2, b"e": 1, b"i": 0, b"m": 0, b"p": 3, b"r": 1, b"t": 1, b"u": 1, b"v": 0, b"{": 1}
GS_SKIP = {b"$": 2, b"/": 1, b":": 0, b"B": 1, b"H": 1, b"I": 1, b"L": 2, b"P": 2, b"T": 1, b"W": 2, b"Z": 1,
           b"\\": 2, b"^": 3, b"a": 1, b"b": 1, b"f": 1, b"h": 1, b"j": 1, b"r": 1, b"w": 1}
FS_SKIP = {b"&": 0, b".": 0, b"!": 1, b"-": 1, b"C": 1, b"S": 2, b"W": 1, b"p": 2, b"2": 74}
DLE_SKIP = {0x04: 1, 0x05: 1}  # DLE EOT n, DLE ENQ n: real-time status requests (no reply from this reader)
SILENT_CONTROLS = {NUL, CR, FF, CAN}  # padding, CR (auto line feed off), page-mode controls: no effect in a receipt
QR_FIXED = {65: 4, 67: 3, 69: 3, 81: 3, 82: 3}  # pL + 256 pH of each QR function with a fixed length


@dataclass(frozen=True)
class Line:
    """One printed text line and the style it was printed in (width/height are the character-size multipliers)."""
    text: str
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1


@dataclass
class Receipt:
    """What was printed between two cuts; `errors` says what could not be decoded and where."""
    lines: list[Line] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)  # payloads of the QR codes printed, in order
    barcodes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    text: str = ""  # readable rendering: aligned lines, "[QR] payload" / "[BARCODE] data" where one was printed


@dataclass
class _Style:
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1


class EscPosReader:
    def __init__(self, columns: int = COLUMNS) -> None:
        self.columns = columns
        self.offset = 0  # stream offset of self._buf[0]: error messages count bytes from the start of the stream
        self._buf = bytearray()
        self._skip = 0  # bytes of a known command's data still to be dropped as they arrive (images)
        self._style = _Style()
        self._qr_stored: str | None = None
        self._finished: list[Receipt] = []
        self._new_receipt()

    # ---- public ---------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Receipt]:
        """Decode `data`; returns the receipts it finished (cut), oldest first. Never raises."""
        self._buf += data
        buf, pos = self._buf, 0
        while pos < len(buf):
            if self._skip:
                n = min(self._skip, len(buf) - pos)
                pos, self._skip = pos + n, self._skip - n
                continue
            if buf[pos] >= 0x20 or buf[pos] == HT:
                end = pos + 1
                while end < len(buf) and (buf[end] >= 0x20 or buf[end] == HT):
                    end += 1
                self._text(bytes(buf[pos:end]), self.offset + pos)
                pos = end
                continue
            used = self._control(buf, pos)
            if used == 0:  # an incomplete command: wait for the next chunk
                break
            pos += used
        del buf[:pos]
        self.offset += pos
        done, self._finished = self._finished, []
        return done

    def partial(self) -> Receipt:
        """The receipt being printed (not cut yet), including an unterminated last line; the state is unchanged."""
        items = list(self._items)
        if self._line:
            items.append(("line", self._make_line(bytes(self._line), self._line_start, record=False)))
        return self._receipt(items, list(self._errors))

    # ---- text -----------------------------------------------------------------------------------------------
    def _new_receipt(self) -> None:
        self._items: list[tuple[str, object]] = []
        self._errors: list[str] = []
        self._n_errors = 0
        self._truncated = False
        self._line = bytearray()
        self._line_start = self.offset
        self._line_style = _Style()
        self._after_symbol = False  # a QR/barcode fills the current line: the LF after it adds no blank line

    def _text(self, data: bytes, at: int) -> None:
        self._after_symbol = False
        while data:
            if not self._line:
                self._line_start, self._line_style = at, replace(self._style)
            room = MAX_LINE_BYTES - len(self._line)
            self._line += data[:room]
            if len(data) <= room:
                return
            self._error(f"more than {MAX_LINE_BYTES} bytes of text without LF at byte {at + room}: line broken there")
            self._print_line()
            data, at = data[room:], at + room

    def _print_line(self) -> None:
        if not self._line and self._after_symbol:
            self._after_symbol = False
            return
        if not self._line:
            self._line_style = replace(self._style)
        self._add(("line", self._make_line(bytes(self._line), self._line_start, record=True)))
        self._line = bytearray()

    def _make_line(self, raw: bytes, at: int, record: bool) -> Line:
        try:
            text, bad = raw.decode(ENCODING), False
        except UnicodeDecodeError:
            text, bad = raw.decode(ENCODING, errors="replace"), True
        clean = "".join(c if c.isprintable() or c == "\t" else "\ufffd" for c in text)
        if record and (bad or clean != text):
            self._error(f"text that is not printable GB18030 in the line starting at byte {at} (shown as \ufffd)")
        s = self._line_style
        return Line(clean, s.align, s.bold, s.width, s.height)

    def _add(self, item: tuple[str, object]) -> None:
        if len(self._items) < MAX_LINES:
            self._items.append(item)
        elif not self._truncated:
            self._truncated = True
            self._error(f"receipt longer than {MAX_LINES} lines: the rest is dropped")

    def _error(self, message: str) -> None:
        self._n_errors += 1
        if len(self._errors) < MAX_ERRORS:
            self._errors.append(message)
        else:
            self._errors[-1] = f"... and {self._n_errors - MAX_ERRORS + 1} more errors (last: {message})"

    def _cut(self) -> None:
        if self._line:
            self._print_line()
        self._finished.append(self._receipt(self._items, self._errors))
        self._new_receipt()

    def _receipt(self, items: list, errors: list[str]) -> Receipt:
        r = Receipt(errors=errors)
        rendered = []
        for kind, value in items:
            if kind == "line":
                r.lines.append(value)
                rendered.append(self._render(value))
            elif kind == "qr":
                r.qr.append(value)
                rendered.append(f"[QR] {value}")
            else:
                r.barcodes.append(value)
                rendered.append(f"[BARCODE] {value}")
        while rendered and not rendered[-1].strip():
            rendered.pop()
        r.text = "\n".join(rendered)
        return r

    def _render(self, line: Line) -> str:
        """Pads for alignment by the width the line takes on paper (wide CJK characters and GS ! width count)."""
        used = line.width * sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line.text)
        room = max(self.columns - used, 0)
        pad = {"left": 0, "center": room // 2, "right": room}[line.align]
        return (" " * pad + line.text).rstrip()

    # ---- commands -------------------------------------------------------------------------------------------
    def _control(self, buf: bytearray, pos: int) -> int:
        """Handles the command at `pos`; returns the bytes it used, or 0 if it is not complete yet."""
        b, at = buf[pos], self.offset + pos
        if b == LF:
            self._print_line()
            return 1
        if b in SILENT_CONTROLS:
            return 1
        if b not in (ESC, GS, FS, DLE):
            self._error(f"unexpected control byte 0x{b:02x} at byte {at}")
            return 1
        if pos + 1 >= len(buf):
            return 0
        cmd = buf[pos + 1]
        name = {ESC: "ESC", GS: "GS", FS: "FS", DLE: "DLE"}[b]
        if cmd < 0x20 and b != DLE:
            self._error(f"{name} followed by control byte 0x{cmd:02x} at byte {at}")
            return 1  # the control byte is handled on its own
        if b == DLE:
            return self._dle(buf, pos, cmd, at)
        handler = {ESC: self._esc, GS: self._gs, FS: self._fs}[b]
        return handler(buf, pos, bytes([cmd]), at)

    def _need(self, buf: bytearray, pos: int, n: int) -> bytes | None:
        """The n parameter bytes after a two-byte command, or None if they have not all arrived."""
        if len(buf) - pos < 2 + n:
            return None
        return bytes(buf[pos + 2:pos + 2 + n])

    def _fixed(self, buf, pos, n) -> int:
        return 2 + n if len(buf) - pos >= 2 + n else 0

    def _unknown(self, name: str, cmd: bytes, at: int) -> int:
        self._error(f"unknown command {name} 0x{cmd[0]:02x} at byte {at}")
        return 2

    def _esc(self, buf: bytearray, pos: int, cmd: bytes, at: int) -> int:
        st = self._style
        if cmd == b"@":  # initialise: style, stored QR and the unprinted line are reset; printed lines stay
            self._style, self._qr_stored, self._line, self._after_symbol = _Style(), None, bytearray(), False
            return 2
        if cmd in (b"a", b"E", b"!", b"d"):
            p = self._need(buf, pos, 1)
            if p is None:
                return 0
            n = p[0]
            if cmd == b"a":
                if n in ALIGN:
                    st.align = ALIGN[n]
                else:
                    self._error(f"ESC a with invalid alignment {n} at byte {at}")
            elif cmd == b"E":
                st.bold = bool(n & 1)
            elif cmd == b"!":
                st.bold, st.height, st.width = bool(n & 0x08), 2 if n & 0x10 else 1, 2 if n & 0x20 else 1
            else:  # ESC d n: print the buffer and feed n lines (the printed line is the first of them)
                if self._line:
                    self._print_line()
                    n -= 1
                for _ in range(max(n, 0)):
                    self._print_line()
            return 3
        if cmd == b"*":  # bit image: m nL nH, then (nL + 256 nH) columns of 1 or 3 bytes
            p = self._need(buf, pos, 3)
            if p is None:
                return 0
            per = {0: 1, 1: 1, 32: 3, 33: 3}.get(p[0])
            if per is None:
                self._error(f"ESC * with unknown bit-image mode {p[0]} at byte {at}")
                return 2
            return self._skip_data((p[1] | p[2] << 8) * per, 5, "ESC * bit image", at)
        if cmd == b"D":  # tab positions: up to 32 bytes, NUL-terminated
            end = buf.find(b"\x00", pos + 2, pos + 2 + 33)
            if end >= 0:
                return end - pos + 1
            if len(buf) - pos < 2 + 33:
                return 0
            self._error(f"ESC D without its NUL terminator at byte {at}")
            return 2
        if cmd == b"(":
            return self._length_prefixed(buf, pos)
        if cmd in ESC_SKIP:
            return self._fixed(buf, pos, ESC_SKIP[cmd])
        return self._unknown("ESC", cmd, at)

    def _gs(self, buf: bytearray, pos: int, cmd: bytes, at: int) -> int:
        st = self._style
        if cmd == b"!":
            p = self._need(buf, pos, 1)
            if p is None:
                return 0
            if p[0] & 0x88:
                self._error(f"GS ! with invalid character size 0x{p[0]:02x} at byte {at}")
            else:
                st.width, st.height = (p[0] >> 4) + 1, (p[0] & 0x0F) + 1
            return 3
        if cmd == b"V":
            p = self._need(buf, pos, 1)
            if p is None:
                return 0
            if p[0] in (0, 1, 48, 49):
                self._cut()
                return 3
            if p[0] in (65, 66, 97, 98, 103, 104):  # these take a feed amount n
                if self._need(buf, pos, 2) is None:
                    return 0
                self._cut()
                return 4
            self._error(f"GS V with unknown cut mode {p[0]} at byte {at}: not cut")
            return 3
        if cmd == b"(":
            return self._gs_paren(buf, pos, at)
        if cmd == b"k":
            return self._barcode(buf, pos, at)
        if cmd == b"v":  # raster image: GS v 0 m xL xH yL yH, then (xL + 256 xH) * (yL + 256 yH) bytes
            p = self._need(buf, pos, 6)
            if p is None:
                return 0
            if p[0] != ord("0"):
                return self._unknown("GS v", p[:1], at)
            return self._skip_data((p[2] | p[3] << 8) * (p[4] | p[5] << 8), 8, "GS v 0 raster image", at)
        if cmd == b"*":  # downloaded bit image: x y, then x * y * 8 bytes
            p = self._need(buf, pos, 2)
            if p is None:
                return 0
            return self._skip_data(p[0] * p[1] * 8, 4, "GS * bit image", at)
        if cmd == b"8":  # GS 8 L p1 p2 p3 p4: graphics with a 4-byte length
            p = self._need(buf, pos, 5)
            if p is None:
                return 0
            if p[0] != ord("L"):
                return self._unknown("GS 8", p[:1], at)
            return self._skip_data(int.from_bytes(p[1:5], "little"), 7, "GS 8 L graphics", at)
        if cmd in GS_SKIP:
            return self._fixed(buf, pos, GS_SKIP[cmd])
        return self._unknown("GS", cmd, at)

    def _fs(self, buf: bytearray, pos: int, cmd: bytes, at: int) -> int:
        if cmd == b"(":
            return self._length_prefixed(buf, pos)
        if cmd in FS_SKIP:
            return self._fixed(buf, pos, FS_SKIP[cmd])
        return self._unknown("FS", cmd, at)

    def _dle(self, buf: bytearray, pos: int, cmd: int, at: int) -> int:
        if cmd in DLE_SKIP:
            return self._fixed(buf, pos, DLE_SKIP[cmd])
        if cmd == 0x14:  # DLE DC4 fn ...: real-time requests (drawer pulse, power off, clear buffer)
            p = self._need(buf, pos, 1)
            if p is None:
                return 0
            size = {1: 2, 2: 2, 7: 1, 8: 7}.get(p[0])
            if size is None:
                self._error(f"DLE DC4 with unknown function {p[0]} at byte {at}")
                return 2
            return self._fixed(buf, pos, 1 + size)
        self._error(f"unknown command DLE 0x{cmd:02x} at byte {at}")
        return 1  # DLE alone: the next byte is decoded on its own

    def _length_prefixed(self, buf: bytearray, pos: int) -> int:
        """ESC ( x / FS ( x / GS ( x pL pH, then pL + 256 pH bytes: skipped (beeper, NV graphics, settings)."""
        if len(buf) - pos < 5:
            return 0
        what = f"{ {ESC: 'ESC', GS: 'GS', FS: 'FS'}[buf[pos]]} ( {chr(buf[pos + 2])!r}"
        return self._skip_data(buf[pos + 3] | buf[pos + 4] << 8, 5, what, self.offset + pos)

    def _skip_data(self, size: int, header: int, what: str, at: int) -> int:
        """Drops `size` data bytes after a `header`-byte command as they stream in; an absurd size is noise."""
        if size > MAX_SKIP_BYTES:
            self._error(f"{what} of {size} bytes at byte {at}: more than {MAX_SKIP_BYTES}, taken as noise")
            return 2  # resynchronise right after the command bytes
        self._skip = size
        return header

    def _gs_paren(self, buf: bytearray, pos: int, at: int) -> int:
        if len(buf) - pos < 3:
            return 0
        if buf[pos + 2] != ord("k"):
            return self._length_prefixed(buf, pos)
        if len(buf) - pos < 7:
            return 0
        size, cn, fn = buf[pos + 3] | buf[pos + 4] << 8, buf[pos + 5], buf[pos + 6]
        if cn != 49:  # another 2-D symbology (PDF417, MaxiCode ...): its length is known, skip it
            if size < 2:
                self._error(f"GS ( k with parameter length {size} at byte {at}")
                return 5
            return self._skip_data(size, 5, f"GS ( k symbology {cn}", at)
        ok = 4 <= size <= MAX_QR_PARAM if fn == 80 else size == QR_FIXED.get(fn, size if size <= 16 else -1)
        if not ok:  # likely noise: resynchronise right after the header instead of swallowing what follows
            self._error(f"GS ( k QR function {fn} with parameter length {size} at byte {at}")
            return 5
        if len(buf) - pos < 5 + size:
            return 0
        body = bytes(buf[pos + 7:pos + 5 + size])
        if fn == 80:
            if body[0] != 48:
                self._error(f"GS ( k QR store with m={body[0]} (not 48) at byte {at}")
            else:
                self._qr_stored = self._decode_payload(body[1:], at)
        elif fn == 81:
            if self._qr_stored is None:
                self._error(f"GS ( k QR print with no data stored at byte {at}")
            else:
                self._symbol("qr", self._qr_stored)
        elif fn in (65, 67, 69) and not _qr_setting_ok(fn, body):
            self._error(f"GS ( k QR function {fn} with invalid parameter {body.hex(' ')} at byte {at}")
        return 5 + size

    def _decode_payload(self, data: bytes, at: int) -> str:
        try:
            return data.decode("utf-8")  # what the edge stores (and what phone QR readers assume)
        except UnicodeDecodeError:
            try:
                return data.decode(ENCODING)
            except UnicodeDecodeError:
                self._error(f"QR data that is neither UTF-8 nor GB18030 at byte {at}")
                return data.decode("utf-8", errors="replace")

    def _barcode(self, buf: bytearray, pos: int, at: int) -> int:
        """GS k m: m 0-6 data NUL-terminated (at most 255 bytes); m 65-79: n, then n bytes."""
        p = self._need(buf, pos, 1)
        if p is None:
            return 0
        m = p[0]
        if m <= 6:
            end = buf.find(b"\x00", pos + 3, pos + 3 + 256)
            if end < 0:
                if len(buf) - pos < 3 + 256:
                    return 0
                self._error(f"GS k barcode without its NUL terminator at byte {at}")
                return 3
            data, used = bytes(buf[pos + 3:end]), end - pos + 1
        elif 65 <= m <= 79:
            n = self._need(buf, pos, 2)
            if n is None:
                return 0
            if len(buf) - pos < 4 + n[1]:
                return 0
            data, used = bytes(buf[pos + 4:pos + 4 + n[1]]), 4 + n[1]
        else:
            self._error(f"GS k with unknown barcode system {m} at byte {at}")
            return 3
        self._symbol("barcode", data.decode("ascii", errors="replace"))
        return used

    def _symbol(self, kind: str, payload: str) -> None:
        if self._line:
            self._print_line()
        self._add((kind, payload))
        self._after_symbol = True


def _qr_setting_ok(fn: int, body: bytes) -> bool:
    n = body[0]
    if fn == 65:
        return n in (49, 50, 51)
    if fn == 67:
        return 1 <= n <= 16
    return 48 <= n <= 51  # 69: error correction L, M, Q, H
