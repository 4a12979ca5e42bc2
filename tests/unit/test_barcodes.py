"""Barcodes with published examples (GS1 General Specifications, Odoo's nomenclature, DEVICES.md section 4)."""
import pytest

from protocol import ProtocolError
from protocol.barcodes import (
    GtinScan,
    VariableMeasureLayout,
    gs1_check_digit,
    left13_check_digit,
    parse_scan,
    price_verifier_digit,
)


@pytest.mark.parametrize("code, symbology, gtin", [
    ("4006381333931", "ean13", "4006381333931"),
    ("96385074", "ean8", "96385074"),
    ("036000291452", "upca", "0036000291452"),
    ("]E04006381333931", "ean13", "4006381333931"),  # AIM symbology identifier stripped
    (" 6901234567892\r\n", "ean13", "6901234567892"),
])
def test_valid_gtins(code, symbology, gtin):
    assert parse_scan(code) == GtinScan(gtin=gtin, symbology=symbology)


@pytest.mark.parametrize("code, expected", [
    ("4006381333932", "bad check digit in EAN13 4006381333932: got 2, expected 1"),
    ("96385075", "bad check digit in EAN8 96385075: got 5, expected 4"),
    ("036000291453", "bad check digit in UPCA 0036000291453: got 3, expected 2"),
    ("12345", "barcode of 5 digits"),
    ("40063813339a1", "digits only"),
])
def test_invalid_gtins_say_why(code, expected):
    with pytest.raises(ProtocolError) as err:
        parse_scan(code)
    assert expected in str(err.value)


def test_price_verifier_digit_published_examples():
    assert price_verifier_digit("2875") == 9    # GS1 GenSpecs 7.9.3, 4-digit field
    assert price_verifier_digit("14685") == 6   # GS1 GenSpecs 7.9.3, 5-digit field (not 7)


def test_check_digit_conventions_differ_on_18_digits():
    assert gs1_check_digit("22000010100001250") == 4
    assert left13_check_digit("22000010100001250") == 0


def test_odoo_weight_and_price_examples_with_default_layouts():
    weight = parse_scan("2112345015002")
    assert (weight.item_code, weight.weight_g, weight.amount_fen) == ("12345", 1500, None)
    price = parse_scan("2305000123451")
    assert (price.item_code, price.amount_fen, price.weight_g) == ("05000", 12345, None)


def test_chinese_price_embedded_example_and_its_published_wrong_check_digit():
    layouts = (VariableMeasureLayout(name="cn-amount-21", prefixes=("21",), pattern="PPIIIIIAAAAAC"),)
    scan = parse_scan("2100301003507", layouts)
    assert (scan.item_code, scan.amount_fen) == ("00301", 350)
    with pytest.raises(ProtocolError, match="bad check digit in 2100301003501 .* got 1, expected 7"):
        parse_scan("2100301003501", layouts)


def test_layout_with_price_verifier_digit():
    german = VariableMeasureLayout(name="de-price", prefixes=("22",), pattern="PPIIIIVAAAAAC")
    body = "221234" + str(price_verifier_digit("14685")) + "14685"
    code = body + str(gs1_check_digit(body))
    assert parse_scan(code, (german,)).amount_fen == 14685
    wrong = "2212347" + "14685"
    wrong += str(gs1_check_digit(wrong))
    with pytest.raises(ProtocolError, match="bad verifier digit .* got 7, expected 6"):
        parse_scan(wrong, (german,))


def test_weight_in_decagrams_and_18_digit_weight_and_amount():
    deca = VariableMeasureLayout(name="se-weight", prefixes=("24",), pattern="PPIIIIIIWWWWC", weight_decimals=2)
    body = "241234560150"
    assert parse_scan(body + str(gs1_check_digit(body)), (deca,)).weight_g == 1500
    cn18 = VariableMeasureLayout(name="cn18", prefixes=("26",), pattern="PPIIIIIAAAAAWWWWWC")
    body = "26" + "00123" + "01250" + "00500"
    scan = parse_scan(body + str(gs1_check_digit(body)), (cn18,))
    assert (scan.item_code, scan.amount_fen, scan.weight_g) == ("00123", 1250, 500)


def test_unknown_layout_is_a_clear_error():
    with pytest.raises(ProtocolError, match="no layout configured for prefix 25"):
        parse_scan("2512345015004")


@pytest.mark.parametrize("kwargs, words", [
    (dict(pattern="PPIIIIIWWWWWC", prefixes=("2",)), "must be 2 digits"),
    (dict(pattern="PPIIIIIWWWWWC", prefixes=("31",)), "not in the GS1 range"),
    (dict(pattern="PPIIIIIWWWWW", prefixes=("21",)), "pattern"),
    (dict(pattern="PPIIIVWWWWWWC", prefixes=("21",)), "4- or 5-digit"),
    (dict(pattern="PPIIIIIWWWWWC", prefixes=("21",), weight_decimals=4), "weight_decimals"),
])
def test_bad_layouts_are_refused(kwargs, words):
    with pytest.raises(ProtocolError, match=words):
        VariableMeasureLayout(name="x", **kwargs)
