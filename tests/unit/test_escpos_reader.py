"""The printer-side ESC/POS decoder against what the edge box really prints (edge.devices.escpos.Ticket)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.escpos import Ticket
from simulators.escpos_reader import MAX_LINE_BYTES, MAX_QR_PARAM, EscPosReader, Line


def sale_ticket(sale_id: str = "01HZXSALE") -> bytes:
    return (Ticket().text("FreshMesh S001", bold=True, size=2, align="center").text(f"Sale {sale_id}")
            .columns("菠菜 0.500kg", "6.00").columns("猪肉 1.250kg", "32.50").columns("TOTAL", "38.50")
            .text("合计 ￥38.50", align="right").qr(f"SALE:{sale_id}").cut())


def col(left: str, right: str) -> str:
    return left + " " * (32 - len(left) - len(right)) + right  # as Ticket.columns lays them out


EXPECTED_LINES = [
    Line("FreshMesh S001", "center", bold=True, width=2, height=2),
    Line("Sale 01HZXSALE"),
    Line(col("菠菜 0.500kg", "6.00")),
    Line(col("猪肉 1.250kg", "32.50")),
    Line(col("TOTAL", "38.50")),
    Line("合计 ￥38.50", "right"),
]


def feed_all(reader: EscPosReader, chunks) -> list:
    out = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out


def check_sale(receipt) -> None:
    assert [line for line in receipt.lines if line.text] == EXPECTED_LINES
    assert receipt.qr == ["SALE:01HZXSALE"] and receipt.errors == []
    assert receipt.text.split("\n") == [
        " " * 2 + "FreshMesh S001",  # centred by its printed width: 14 characters at double width on 32 columns
        "Sale 01HZXSALE",
        col("菠菜 0.500kg", "6.00"),
        col("猪肉 1.250kg", "32.50"),
        col("TOTAL", "38.50"),
        " " * 20 + "合计 ￥38.50",  # right-aligned: 合, 计 and ￥ take two columns each, 12 in all
        "[QR] SALE:01HZXSALE",
    ]


def test_round_trip_of_a_sale_receipt_in_one_chunk():
    receipts = EscPosReader().feed(sale_ticket())
    assert len(receipts) == 1
    check_sale(receipts[0])


def test_byte_by_byte_decodes_the_same():
    raw = sale_ticket()
    reader = EscPosReader()
    out = feed_all(reader, (raw[i:i + 1] for i in range(len(raw))))
    assert len(out) == 1
    check_sale(out[0])
    assert reader.offset == len(raw)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_random_chunks_decode_the_same(rnd):
    raw = sale_ticket()
    cuts = sorted(rnd.sample(range(1, len(raw)), rnd.randint(1, 40)))
    out = feed_all(EscPosReader(), [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)])
    assert len(out) == 1
    check_sale(out[0])


def test_nothing_before_the_cut_and_partial_shows_the_receipt_in_progress():
    raw = sale_ticket()
    reader = EscPosReader()
    assert reader.feed(raw[:-4]) == []
    assert reader.partial().qr == ["SALE:01HZXSALE"]
    assert reader.partial().lines[0].text == "FreshMesh S001"
    assert len(reader.feed(raw[-4:])) == 1
    assert reader.partial().lines == []


def test_two_receipts_in_one_stream_each_with_its_own_content():
    pick = Ticket().text("PICK TICKET", bold=True, size=2, align="center").text("Order O-7").qr("PICKUP:12345678").cut()
    first, second = EscPosReader().feed(sale_ticket() + pick)
    check_sale(first)
    assert [line.text for line in second.lines if line.text] == ["PICK TICKET", "Order O-7"]
    assert second.qr == ["PICKUP:12345678"] and second.errors == []
    assert second.text == " " * 5 + "PICK TICKET\nOrder O-7\n[QR] PICKUP:12345678"  # 22 of 32 columns at 2x


def test_garbage_between_lines_is_reported_and_the_receipt_still_decodes():
    raw = sale_ticket()
    at = raw.index(b"6.00\n") + 4  # the LF ending the first item line
    noise = b"\x1d\x7a\x07"  # an unknown GS command and a bell
    reader = EscPosReader()
    (receipt,) = reader.feed(raw[:at + 1] + noise + raw[at + 1:])
    assert receipt.errors == [f"unknown command GS 0x7a at byte {at + 1}",
                              f"unexpected control byte 0x07 at byte {at + 3}"]
    assert [line for line in receipt.lines if line.text] == EXPECTED_LINES and receipt.qr == ["SALE:01HZXSALE"]


def test_undecodable_text_is_shown_replaced_and_reported():
    (receipt,) = EscPosReader().feed(b"\x1b@ok\n\xff\xffbad\n" + b"after\n\x1dV\x00")
    assert [line.text for line in receipt.lines] == ["ok", "\ufffd\ufffdbad", "after"]
    assert receipt.errors == ["text that is not printable GB18030 in the line starting at byte 5 (shown as \ufffd)"]


def test_known_commands_are_skipped_by_length_and_styles_are_kept():
    raw = (b"\x1b@" + b"\x1b-\x01" + b"\x1b!\x38" + b"big bold" + b"\n"  # underline (skipped); ESC ! 2x2 bold
           + b"\x1b*\x21\x02\x00" + b"\n" * 6  # a 2-column 24-dot bit image whose data includes LF bytes
           + b"\x1dv0\x00\x01\x00\x02\x00" + b"\x0a\x1b"  # raster image, 1 x 2 bytes of data: LF and ESC
           + b"\x1dh\x50\x1dH\x02" + b"\x1dkC\x0d2112345015002"  # barcode height, HRI, EAN-13 (function B)
           + b"\x1bd\x02" + b"\x1c(A\x02\x00\x30\x31" + b"\x10\x04\x01" + b"\x1b@" + b"plain\n" + b"\x1dVA\x03")
    (receipt,) = EscPosReader().feed(raw)
    assert receipt.errors == []
    assert receipt.lines == [Line("big bold", bold=True, width=2, height=2),
                             Line("", bold=True, width=2, height=2), Line("plain")]  # a feed in the current style
    assert receipt.barcodes == ["2112345015002"]
    assert receipt.text == "big bold\n[BARCODE] 2112345015002\n\nplain"


def test_esc_at_resets_style_and_drops_the_unprinted_line():
    (receipt,) = EscPosReader().feed(b"\x1ba\x02\x1bE\x01lost\x1b@kept\n\x1dV\x01")
    assert receipt.lines == [Line("kept")]


def test_qr_print_without_stored_data_and_bad_lengths_are_errors_not_crashes():
    qr_print = b"\x1d(k\x03\x00\x31\x51\x30"
    bad_len = b"\x1d(k\xff\xff\x31\x41"  # a model setting claiming 65535 bytes: noise, resynchronise after it
    (receipt,) = EscPosReader().feed(b"\x1b@" + qr_print + bad_len + b"next\n\x1dV\x00")
    assert receipt.qr == []
    assert receipt.errors == ["GS ( k QR print with no data stored at byte 2",
                              "GS ( k QR function 65 with parameter length 65535 at byte 10"]
    assert [line.text for line in receipt.lines] == ["\x31\x41next"]


def test_a_line_without_lf_is_broken_and_bounded():
    reader = EscPosReader()
    (receipt,) = reader.feed(b"x" * (MAX_LINE_BYTES + 10) + b"\n\x1dV\x00")
    assert [len(line.text) for line in receipt.lines] == [MAX_LINE_BYTES, 10]
    assert receipt.errors == [f"more than {MAX_LINE_BYTES} bytes of text without LF at byte {MAX_LINE_BYTES}: "
                              "line broken there"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.randoms(use_true_random=False))
def test_any_bytes_never_raise_stay_bounded_and_decode_the_same_in_any_chunks(noise, rnd):
    stream = noise + sale_ticket() + noise
    whole = EscPosReader()
    expected = whole.feed(stream)
    reader, out = EscPosReader(), []
    cuts = sorted(rnd.sample(range(1, len(stream)), rnd.randint(1, 60)))
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += reader.feed(stream[a:b])
        assert len(reader._buf) <= 5 + MAX_QR_PARAM  # at most one whole command is held
    assert out == expected and reader.partial() == whole.partial()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300).map(lambda b: bytes(x for x in b if x not in (0x10, 0x1B, 0x1C, 0x1D))))
def test_noise_without_command_bytes_never_hides_the_next_receipt(noise):
    out = EscPosReader().feed(noise + b"\x1dV\x00" + sale_ticket())
    assert len(out) == 2
    check_sale(out[1])
