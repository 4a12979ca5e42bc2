"""GS1 application identifiers (protocol.gs1): the spellings scanners send, the dates, the errors."""
from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.barcodes import gs1_check_digit
from protocol.errors import ProtocolError
from protocol.gs1 import GS, element_string_of, gs1_date, looks_like_gs1, parse_gs1

GTIN = "06901234567892"  # EAN-13 6901234567892 with indicator 0


def test_gs1_128_with_fnc1_as_gs_and_the_symbology_identifier():
    scan = parse_gs1(f"]C101{GTIN}10L2{GS}17261128")
    assert (scan.gtin, scan.gtin13, scan.lot, scan.use_by) == (GTIN, "6901234567892", "L2", "2026-11-28")


def test_databar_expanded_with_weight_price_and_a_leading_fnc1():
    scan = parse_gs1(f"]e0{GS}01{GTIN}3103001250{GS}17261203{GS}10LOT-7{GS}39221234")
    assert (scan.net_weight_g, scan.amount_fen, scan.use_by, scan.lot) == (1250, 1234, "2026-12-03", "LOT-7")


def test_human_readable_and_digital_link_say_the_same():
    a = parse_gs1(f"(01){GTIN}(17)261203(10)L1(3102)000125")
    b = parse_gs1(f"https://id.example/shop/01/{GTIN}/10/L1?17=261203&3102=000125&linkType=gs1:pip")
    assert (a.gtin, a.lot, a.use_by, a.net_weight_g) == (b.gtin, b.lot, b.use_by, b.net_weight_g) == (
        GTIN, "L1", "2026-12-03", 1250)
    assert b.source == "digital_link"
    assert parse_gs1(f"]Q1https://id.example/01/{GTIN}/10/L1").lot == "L1"  # a QR code's AIM id before the URI


def test_day_00_is_the_last_day_of_the_month_and_other_dates():
    assert gs1_date("260200", "17") == "2026-02-28"
    assert gs1_date("280200", "17") == "2028-02-29"
    assert parse_gs1(f"01{GTIN}15261231").best_before == "2026-12-31"
    assert parse_gs1(f"01{GTIN}11261130").produced == "2026-11-30"
    assert gs1_date("991231", "17", this_year=2026) == "1999-12-31"  # GenSpecs 7.12: > 50 years ahead -> last century
    assert gs1_date("761231", "17", this_year=2026) == "2076-12-31"


@pytest.mark.parametrize("code, words", [
    (f"01{GTIN[:-1]}3", "bad check digit in GTIN 06901234567893"),
    (f"01{GTIN}99ABC", "unknown GS1 application identifier at position 16: 99AB"),
    (f"01{GTIN}17261332", "bad date 261332: month 13"),
    (f"01{GTIN}17260231", "2026-02 has 28 days"),
    (f"01{GTIN}1726", "truncated: AI (17) USE BY needs 6 digits"),
    ("0106901234", "truncated: AI (01) GTIN needs 14 digits"),
    (f"01{GTIN}10{'X' * 21}", "at most 20"),
    (f"10L1{GS}17261203", "without a GTIN"),
    (f"01{GTIN}17261203(17)261204", "expected an application identifier"),
    (f"(01){GTIN}(17)261203(17)261204", "(17) USE BY given twice"),
    (f"(01){GTIN}(99)x", "unknown GS1 application identifier (99)"),
    (f"01{GTIN}3103001250{GS}3102000125", "given twice"),
    (f"01{GTIN}393112341234", "only CNY"),
    ("https://id.example/10/L1", "without a GTIN"),
    (f"https://id.example/01/{GTIN}?99=1", "unknown GS1 application identifier (99)"),
    (f"01{GTIN}10L 1", "characters GS1 does not allow"),
])
def test_errors_name_what_was_wrong(code, words):
    with pytest.raises(ProtocolError) as err:
        parse_gs1(code)
    assert words in str(err.value)


def test_what_counts_as_a_gs1_code():
    assert looks_like_gs1(f"]C101{GTIN}")
    assert looks_like_gs1(f"01{GTIN}17261203")
    assert looks_like_gs1(f"01{GTIN}10L1")
    assert looks_like_gs1(f"01{GTIN}10L1\u241d17261203") and parse_gs1(f"01{GTIN}10L1\u241d17261203").lot == "L1"
    assert looks_like_gs1(f"(01){GTIN}")
    assert looks_like_gs1(f"https://id.example/01/{GTIN}")
    assert not looks_like_gs1("6901234567892")
    assert not looks_like_gs1("210010101250" + "5")
    assert not looks_like_gs1("260010101250012505")  # an 18-digit in-store scale code


gtins = st.text("0123456789", min_size=13, max_size=13).map(lambda d: d + str(gs1_check_digit(d)))
lots = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-./_", min_size=1, max_size=20)
dates = st.dates(min_value=__import__("datetime").date(2000, 1, 1), max_value=__import__("datetime").date(2049, 12, 31))


@given(gtin=gtins, lot=lots, use_by=dates, grams=st.integers(0, 999_999), fen=st.integers(1, 10 ** 9),
       order=st.permutations(range(4)), spelling=st.sampled_from(["raw", "aim", "parens", "link"]))
def test_any_order_and_spelling_reads_back(gtin, lot, use_by, grams, fen, order, spelling):
    fields = [("17", use_by.strftime("%y%m%d")), ("10", lot), ("3103", f"{grams:06d}"), ("3922", str(fen))]
    pairs = [("01", gtin), *(fields[i] for i in order)]
    if spelling == "raw":
        code = element_string_of(pairs)
    elif spelling == "aim":
        code = "]C1" + element_string_of(pairs)
    elif spelling == "parens":
        code = "".join(f"({a}){v}" for a, v in pairs)
    else:
        from urllib.parse import quote
        code = (f"https://id.example/01/{gtin}/10/{quote(lot, safe='')}?"
                + "&".join(f"{a}={v}" for a, v in fields if a != "10"))
    scan = parse_gs1(code)
    assert (scan.gtin, scan.lot, scan.use_by, scan.net_weight_g, scan.amount_fen) == (
        gtin, lot, use_by.isoformat(), grams, fen)


@given(year=st.integers(2000, 2049), month=st.integers(1, 12))
def test_day_00_property(year, month):
    last = calendar.monthrange(year, month)[1]
    assert gs1_date(f"{year % 100:02d}{month:02d}00", "17") == f"{year}-{month:02d}-{last:02d}"


@given(st.text(max_size=60))
def test_any_text_is_read_or_refused_with_a_protocol_error(text):
    try:
        parse_gs1(text)
    except ProtocolError:
        pass
