"""GS1 application identifiers (AIs): what GS1-128, GS1 DataBar Expanded and GS1 Digital Link codes carry.

Scanners send a GS1 element string in one of these spellings, all read here:

  * raw, with FNC1 as the ASCII group separator GS (0x1D; or its printable symbol U+241D) after each
    variable-length field, optionally behind the AIM symbology identifier of the symbol (`]C1` GS1-128, `]e0`
    GS1 DataBar, `]d2` GS1 DataMatrix, `]Q3` GS1 QR) and optionally with a leading GS (some scanners send the
    symbol's first FNC1 that way);
  * human-readable, each AI in parentheses: "(01)06901234567892(17)261203(10)L1";
  * a GS1 Digital Link URI: https://id.example/01/<gtin>/10/<lot>?17=YYMMDD&3103=001250 (any host and path
    prefix; key qualifiers in the path, other AIs in the query; non-numeric query keys such as linkType ignored).

The AI table below is data (GS1 General Specifications 3.2 / the GS1 Digital Link AI table): fixed length or the
maximum of a variable one, and what the value is. Errors are ProtocolError naming what was wrong: an unknown AI,
a bad GTIN check digit, a bad date, a truncated field, an AI given twice.

Dates are YYMMDD; DD "00" means the last day of the month (GenSpecs 3.4.x). The century follows GenSpecs 7.12
(a year more than 50 years ahead is last century's, one more than 49 years back next century's) relative to
`this_year` when it is given, else 20YY. The result keeps dates as "YYYY-MM-DD" (protocol.lots' spelling).
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from protocol.barcodes import gs1_check_digit
from protocol.errors import ProtocolError
from protocol.money import div_round

GS = "\x1d"
GS_SYMBOL = "\u241d"  # "␝", the printable stand-in for FNC1 where text may not hold control characters (JSON bodies)
GS1_SYMBOLOGIES = ("]C1", "]e0", "]d2", "]Q3")  # AIM identifiers of symbols that carry AI element strings
MAX_ELEMENT_STRING = 200  # longer than any real GS1-128 symbol (48 data characters) or Digital Link we accept
CNY_ISO_NUMERIC = "156"  # AI 393n carries its currency: only yuan can be paid at our tills


@dataclass(frozen=True, slots=True)
class Ai:
    code: str
    title: str
    length: int  # the fixed length, or the maximum of a variable-length value
    variable: bool = False
    kind: str = "text"  # digits | text | date | gtin | decimal (the last digit of the AI says the decimals)


def _table() -> dict[str, Ai]:
    ais = [Ai("00", "SSCC", 18, kind="digits"), Ai("01", "GTIN", 14, kind="gtin"),
           Ai("02", "CONTENT", 14, kind="gtin"), Ai("10", "BATCH/LOT", 20, variable=True),
           Ai("11", "PROD DATE", 6, kind="date"), Ai("12", "DUE DATE", 6, kind="date"),
           Ai("13", "PACK DATE", 6, kind="date"), Ai("15", "BEST BEFORE", 6, kind="date"),
           Ai("16", "SELL BY", 6, kind="date"), Ai("17", "USE BY", 6, kind="date"),
           Ai("21", "SERIAL", 20, variable=True), Ai("22", "CPV", 20, variable=True),
           Ai("30", "VAR. COUNT", 8, variable=True, kind="digits"),
           Ai("37", "COUNT", 8, variable=True, kind="digits")]
    for n in range(6):
        ais.append(Ai(f"310{n}", "NET WEIGHT (kg)", 6, kind="decimal"))
    for n in range(4):
        ais.append(Ai(f"392{n}", "PRICE", 15, variable=True, kind="decimal"))
        ais.append(Ai(f"393{n}", "PRICE (ISO)", 18, variable=True, kind="decimal"))
    return {ai.code: ai for ai in ais}


AIS: dict[str, Ai] = _table()
_AI_LENGTHS = sorted({len(code) for code in AIS}, reverse=True)
_PREFIX_LENGTHS = {code[:2]: len(code) for code in AIS}  # the first two digits say how long the AI itself is
_TEXT_RE = re.compile(r"[!-~]+")  # GS1 AI encodable set 82 is a subset of printable ASCII without space
_DIGITS_RE = re.compile(r"[0-9]+")
_AIM_URI = re.compile(r"\][A-Za-z][0-9A-Za-z](?=https?://)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Gs1Scan:
    """What a GS1 code said. `gtin` is the 14-digit GTIN; `gtin13` drops the indicator digit when it is 0 (the
    EAN-13 the catalogue knows). Dates are "YYYY-MM-DD" or ""; weight in grams, price in fen, or None."""
    gtin: str
    lot: str = ""
    use_by: str = ""
    best_before: str = ""
    produced: str = ""
    net_weight_g: int | None = None
    amount_fen: int | None = None
    count: int | None = None
    serial: str = ""
    source: str = "element"  # element | digital_link

    @property
    def gtin13(self) -> str:
        return self.gtin[1:] if self.gtin.startswith("0") else self.gtin

    @property
    def expiry(self) -> str:
        """The date after which the goods may not be sold: use-by, else best-before (fresh food stops at either)."""
        return self.use_by or self.best_before


def _bare(raw: str) -> str:
    """Trimmed, FNC1 as GS, and without the AIM identifier of a QR or DataMatrix symbol holding a URI (]Q1...)."""
    text = raw.strip().replace(GS_SYMBOL, GS)
    return text[3:] if _AIM_URI.match(text) else text


def looks_like_gs1(raw: str) -> bool:
    """Does this scanner text carry AIs (rather than an EAN/UPC or a variable-measure in-store code)?"""
    text = _bare(raw)
    if text.startswith(GS1_SYMBOLOGIES) or text.startswith(("(", GS)) or GS in text:
        return True
    if text.lower().startswith(("http://", "https://")):
        return True
    # no separators: "01" + a GTIN-14, then more AIs ("0106901234567892" + "17261203" + "10L1"); never the length
    # of an EAN-8, UPC-A, EAN-13 or an 18-digit in-store code when it is all digits
    if text.isdigit() and len(text) in (8, 12, 13, 18):
        return False
    return len(text) >= 16 and text.startswith("01") and text[2:16].isdigit()


def parse_gs1(raw: str, this_year: int | None = None) -> Gs1Scan:
    """One scanned GS1 code -> Gs1Scan; ProtocolError saying what was wrong."""
    text = _bare(raw)
    if len(text) > MAX_ELEMENT_STRING:
        raise ProtocolError(f"GS1 code of {len(text)} characters: at most {MAX_ELEMENT_STRING}")
    if text.lower().startswith(("http://", "https://")):
        return _scan(digital_link_elements(text), "digital_link", this_year)
    if text.startswith(GS1_SYMBOLOGIES):
        text = text[3:]
    if text.startswith("("):
        return _scan(human_readable_elements(text), "element", this_year)
    return _scan(element_string(text), "element", this_year)


def _ai_at(text: str, i: int) -> Ai:
    for n in _AI_LENGTHS:
        ai = AIS.get(text[i:i + n])
        if ai is not None:
            return ai
    shown = text[i:i + 4] or "(nothing)"
    if not text[i:i + 2].isdigit():
        raise ProtocolError(f"GS1 element string: expected an application identifier at position {i}, got {shown!r}")
    raise ProtocolError(f"unknown GS1 application identifier at position {i}: {shown} "
                        f"(known: {', '.join(sorted({a.code[:2] if len(a.code) == 4 else a.code for a in AIS.values()}))})")


def element_string(text: str) -> list[tuple[str, str]]:
    """A raw element string (FNC1 = GS) -> [(ai, value)] in order."""
    out: list[tuple[str, str]] = []
    i = 1 if text.startswith(GS) else 0
    while i < len(text):
        ai = _ai_at(text, i)
        start = i + len(ai.code)
        if ai.variable:
            end = text.find(GS, start)
            end = len(text) if end < 0 else end
            value, i = text[start:end], end + 1
            if len(value) > ai.length:
                raise ProtocolError(f"GS1 AI ({ai.code}) {ai.title}: {len(value)} characters, at most {ai.length} "
                                    f"(a missing FNC1 separator after it?)")
        else:
            value, i = text[start:start + ai.length], start + ai.length
            if len(value) < ai.length:
                raise ProtocolError(f"GS1 code truncated: AI ({ai.code}) {ai.title} needs {ai.length} digits, "
                                    f"got {len(value)} ({value!r})")
            if text[i:i + 1] == GS:  # tolerated: some encoders put FNC1 after fixed-length fields too
                i += 1
        out.append((ai.code, value))
    if not out:
        raise ProtocolError("empty GS1 element string")
    return out


def human_readable_elements(text: str) -> list[tuple[str, str]]:
    """"(01)06901234567892(10)L1" -> [(ai, value)]."""
    parts = re.findall(r"\(([^()]*)\)([^()]*)", text)
    if not parts or "".join(f"({a}){v}" for a, v in parts) != text:
        raise ProtocolError(f"GS1 human-readable code must be (AI)value pairs: {text!r}")
    out = []
    for code, value in parts:
        if code not in AIS:
            raise ProtocolError(f"unknown GS1 application identifier ({code})")
        out.append((code, value))
    return out


def digital_link_elements(uri: str) -> list[tuple[str, str]]:
    """A GS1 Digital Link URI -> [(ai, value)]: the primary key and qualifiers from the path, AIs from the query."""
    parts = urlsplit(uri)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    starts = [k for k, s in enumerate(segments) if s in ("00", "01") and (len(segments) - k) % 2 == 0]
    if not starts:
        raise ProtocolError(f"GS1 Digital Link without a GTIN: no /01/<gtin> in the path of {uri!r}")
    path = segments[starts[0]:]  # whatever comes before is the resolver's own path prefix
    out: list[tuple[str, str]] = []
    for code, value in zip(path[::2], path[1::2], strict=True):
        if code not in ("00", "01", "10", "21", "22"):
            raise ProtocolError(f"GS1 Digital Link: ({code}) is not a key or key qualifier in the path")
        out.append((code, value))
    for code, value in parse_qsl(parts.query, keep_blank_values=True):
        if not code.isdigit():
            continue  # linkType, context and other non-AI attributes say how to resolve, not what the goods are
        if code not in AIS:
            raise ProtocolError(f"unknown GS1 application identifier ({code}) in the Digital Link query")
        out.append((code, value))
    return out


def gs1_date(value: str, ai: str, this_year: int | None = None) -> str:
    """YYMMDD -> "YYYY-MM-DD"; DD 00 is the month's last day."""
    if not (len(value) == 6 and value.isdigit()):
        raise ProtocolError(f"GS1 AI ({ai}) date must be YYMMDD digits, got {value!r}")
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    year = 2000 + yy
    if this_year is not None:
        diff = yy - this_year % 100
        year = this_year - this_year % 100 + yy + (-100 if diff >= 51 else 100 if diff <= -50 else 0)
    if not 1 <= mm <= 12:
        raise ProtocolError(f"GS1 AI ({ai}) bad date {value}: month {mm:02d}")
    last = calendar.monthrange(year, mm)[1]
    if dd == 0:
        dd = last
    elif dd > last:
        raise ProtocolError(f"GS1 AI ({ai}) bad date {value}: {year}-{mm:02d} has {last} days")
    return f"{year:04d}-{mm:02d}-{dd:02d}"


def _decimal(value: str, ai: str, decimals: int, scale: int) -> int:
    """A decimal field with `decimals` implied decimals, in units of 1/`scale`, rounded half away from zero."""
    if not (value and value.isdigit()):
        raise ProtocolError(f"GS1 AI ({ai}) must be digits, got {value!r}")
    return div_round(int(value) * scale, 10 ** decimals)


def _scan(elements: list[tuple[str, str]], source: str, this_year: int | None) -> Gs1Scan:
    seen: dict[str, str] = {}
    for code, value in elements:
        ai = AIS[code]
        if code in seen or (len(code) == 4 and any(s[:3] == code[:3] for s in seen)):
            raise ProtocolError(f"GS1 AI ({code}) {ai.title} given twice")
        if not value:
            raise ProtocolError(f"GS1 AI ({code}) {ai.title} is empty")
        if ai.kind in ("digits", "gtin", "decimal", "date") and not _DIGITS_RE.fullmatch(value):
            raise ProtocolError(f"GS1 AI ({code}) {ai.title} must be digits, got {value!r}")
        if not ai.variable and len(value) != ai.length:
            raise ProtocolError(f"GS1 AI ({code}) {ai.title} must be {ai.length} digits, got {len(value)}")
        if ai.variable and len(value) > ai.length:
            raise ProtocolError(f"GS1 AI ({code}) {ai.title}: {len(value)} characters, at most {ai.length}")
        if ai.kind == "text" and not _TEXT_RE.fullmatch(value):
            raise ProtocolError(f"GS1 AI ({code}) {ai.title}: {value!r} has characters GS1 does not allow")
        if ai.kind == "gtin":
            expected = gs1_check_digit(value[:-1])
            if int(value[-1]) != expected:
                raise ProtocolError(f"bad check digit in GTIN {value} (AI {code}): got {value[-1]}, expected {expected}")
        seen[code] = value
    gtin = seen.get("01") or seen.get("02")
    if gtin is None:
        raise ProtocolError("GS1 code without a GTIN (AI 01): the till cannot tell what the goods are")
    dates = {name: gs1_date(seen[ai], ai, this_year) if ai in seen else ""
             for name, ai in (("use_by", "17"), ("best_before", "15"), ("produced", "11"))}
    weight = next(((c, v) for c, v in seen.items() if c.startswith("310")), None)
    price = next(((c, v) for c, v in seen.items() if c.startswith(("392", "393"))), None)
    amount = None
    if price is not None:
        code, value = price
        if code.startswith("393"):
            if len(value) < 4 or value[:3] != CNY_ISO_NUMERIC:
                raise ProtocolError(f"GS1 AI ({code}) price in currency {value[:3]!r}: only CNY (156) is accepted")
            value = value[3:]
        amount = _decimal(value, code, int(code[3]), 100)
    count = seen.get("30") or seen.get("37")
    return Gs1Scan(gtin=gtin, lot=seen.get("10", ""), serial=seen.get("21", ""), source=source,
                   net_weight_g=_decimal(weight[1], weight[0], int(weight[0][3]), 1000) if weight else None,
                   amount_fen=amount, count=int(count) if count else None, **dates)


def printable_fnc1(text: str) -> str:
    """Scanner text with FNC1 (GS) as GS_SYMBOL: what passes the wire's control-character check (protocol.schema)
    and still reads as the same code here."""
    return text.replace(GS, GS_SYMBOL)


def element_string_of(pairs: list[tuple[str, str]]) -> str:
    """(ai, value) pairs -> the raw element string a scanner sends (FNC1 = GS after variable fields but the last):
    the encoder the label printers and tests use."""
    out = []
    for k, (code, value) in enumerate(pairs):
        out.append(code + value)
        if AIS[code].variable and k < len(pairs) - 1:
            out.append(GS)
    return "".join(out)
