"""Device codecs with real frames (DEVICES.md), garbage, split frames and unstable readings; their traits as data."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.devices.escpos import PrinterReplies, Ticket
from edge.devices.events import Garbage, ScaleStatus, Scan, Weight
from edge.devices.scale_codecs import CODECS, ContinuousCodec, ScaleCodec, Toledo8217Codec
from edge.devices.scanner_codec import ScannerCodec
from edge.devices.traits import SerialSettings


def test_toledo_weight_frames():
    codec = Toledo8217Codec()
    assert codec.feed(bytes.fromhex("02 30 31 2E 32 35 30 0D")) == [Weight(grams=1250, stable=True, net=False)]
    assert codec.feed(bytes.fromhex("02 30 31 2E 32 35 30 4E 0D")) == [Weight(grams=1250, stable=True, net=True)]
    assert codec.feed(bytes.fromhex("02 31 35 2E 30 30 30 0D")) == [Weight(grams=15000, stable=True)]
    assert codec.feed(bytes.fromhex("02 30 30 2E 30 30 30 0D")) == [Weight(grams=0, stable=True)]


def test_toledo_status_bytes_real_and_emulator_forms():
    codec = Toledo8217Codec()
    assert codec.feed(b"\x02?A\r") == [ScaleStatus(motion=True)]
    assert codec.feed(b"\x02?B\r") == [ScaleStatus(over_capacity=True)]
    assert codec.feed(b"\x02?D\r") == [ScaleStatus(under_zero=True)]
    assert codec.feed(b"\x02?@\r") == [ScaleStatus(unchanged=True)]
    assert codec.feed(b"\x02?a\r") == [ScaleStatus(motion=True, net=True)]
    assert codec.feed(b"\x02?\x01\r") == [ScaleStatus(motion=True)]  # emupos sends raw bits without bit 6


def test_toledo_read_8n1_with_parity_bits_still_decodes():
    frame = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in bytes.fromhex("02 30 31 2E 32 35 30 0D"))
    assert Toledo8217Codec().feed(frame) == [Weight(grams=1250, stable=True)]


def test_toledo_split_frames_and_resync_after_garbage():
    codec = Toledo8217Codec()
    assert codec.feed(b"\x0201.") == []
    assert codec.feed(b"250\r") == [Weight(grams=1250, stable=True)]
    events = codec.feed(b"xx\x02zz\x0202.000\r")
    assert isinstance(events[0], Garbage) and events[-1] == Weight(grams=2000, stable=True)
    assert isinstance(codec.feed(b"\x02" + b"9" * 100)[0], Garbage)  # an endless frame is dropped, bounded
    assert codec.feed(b"\x0200.500\r") == [Weight(grams=500, stable=True)]


def test_continuous_frames():
    codec = ContinuousCodec()
    assert codec.feed(b"ST,GS,+0123.45kg\r\n") == [Weight(grams=123450, stable=True)]
    assert codec.feed(b"US,GS,+0001.234kg\r\n") == [Weight(grams=1234, stable=False)]
    assert codec.feed(b"US,NT,-0000.50kg\r\n") == [ScaleStatus(under_zero=True, motion=True, net=True)]
    assert codec.feed(b"OL,GS,+    .  kg\r\n") == [ScaleStatus(over_capacity=True)]
    assert codec.feed(b"ST,+00123.45  g\r\n") == [Weight(grams=123, stable=True)]  # A&D balance, grams
    assert isinstance(codec.feed(b"ST,GS,+0001.000lb\r\n")[0], Garbage)


def test_continuous_split_and_noise():
    codec = ContinuousCodec()
    assert codec.feed(b"ST,GS,+00") == []
    events = codec.feed(b"01.500kg\r\n\xff\xfe\r\nST,GS,+0002.000kg\r\n")
    assert events[0] == Weight(grams=1500, stable=True)
    assert isinstance(events[1], Garbage) and events[2] == Weight(grams=2000, stable=True)


@given(st.binary(max_size=300))
def test_codecs_never_raise_and_stay_bounded(data):
    for codec, bound in ((Toledo8217Codec(), 64), (ContinuousCodec(), 64), (ScannerCodec(), 128),
                         (PrinterReplies(), 64)):
        codec.feed(data)
        assert len(codec.buffer) <= bound


def test_scanner_terminators_aim_prefix_and_garbage():
    codec = ScannerCodec()
    assert codec.feed(b"4006381333931\r\n]E096385074\t") == [Scan("4006381333931"), Scan("96385074")]
    assert codec.feed(b"2112345") == [] and codec.feed(b"015002\r") == [Scan("2112345015002")]
    assert isinstance(codec.feed(b"1" * 140 + b"\r")[0], Garbage)  # longer than any code (MAX_CODE_BYTES)
    gs1 = b"]C1010690123456789210L2\x1d17261128"  # a GS1 symbology id is kept, and FNC1 as GS
    assert codec.feed(gs1 + b"\r") == [Scan(gs1.decode())]
    assert isinstance(codec.feed("蔬菜\r".encode("gb18030"))[0], Garbage)


def test_escpos_ticket_has_text_cut_and_a_well_formed_qr():
    raw = Ticket().text("FreshMesh #1", bold=True, size=2, align="center").text("菠菜 0.500kg").qr("PICKUP:12345678").cut()
    assert raw.startswith(b"\x1b@") and raw.endswith(b"\x1dV\x42\x00")
    assert "菠菜".encode("gb18030") in raw
    n = len(b"PICKUP:12345678") + 3
    assert bytes([n & 0xFF, n >> 8, 49, 80, 48]) + b"PICKUP:12345678" in raw


# ---- traits as data ---------------------------------------------------------------------------------------------

def test_each_codec_carries_its_port_settings_and_how_it_is_read():
    assert SerialSettings(baudrate=9600, bytesize=7, parity="E", stopbits=1) == Toledo8217Codec.SERIAL  # 7E1
    assert Toledo8217Codec.POLL == b"W"
    assert SerialSettings(baudrate=9600, bytesize=8, parity="N") == ContinuousCodec.SERIAL
    assert ContinuousCodec.POLL is None and ContinuousCodec.FRESH_MS > 0
    assert SerialSettings() == ScannerCodec.SERIAL == PrinterReplies.SERIAL
    assert {"toledo8217": Toledo8217Codec, "continuous": ContinuousCodec} == CODECS


def test_a_config_overrides_only_the_settings_it_names():
    settings = Toledo8217Codec.SERIAL.overridden({"port": "/dev/ttyUSB0", "baudrate": 4800, "protocol": "toledo8217"})
    assert settings == SerialSettings(baudrate=4800, bytesize=7, parity="E") and str(settings) == "4800 7E1"


def test_adding_a_scale_protocol_is_adding_one_codec_class(tmp_path):
    """A made-up protocol: `S weight CR LF`, polled with `SI CR LF` at 2400 8N1. The box opens its scale with the
    class's traits and nothing else changes."""
    from edge.box import EdgeBox

    class SicsLike(ScaleCodec):
        NAME = "sics-like"
        SERIAL = SerialSettings(baudrate=2400)
        POLL = b"SI\r\n"

        def feed(self, data: bytes) -> list:
            return []
    try:
        assert CODECS["sics-like"] is SicsLike
        box = EdgeBox({"store_id": "S001", "data_dir": str(tmp_path),
                       "devices": {"scale": {"port": "/dev/null", "protocol": "sics-like", "parity": "E"}}})
        box._make_devices()
        assert isinstance(box.scale.codec, SicsLike) and box.scale.codec.POLL == b"SI\r\n"
        assert box.scale.serial_settings == SerialSettings(baudrate=2400, parity="E")
        with pytest.raises(TypeError, match="two scale codecs"):
            type("Again", (ScaleCodec,), {"NAME": "sics-like"})
    finally:
        CODECS.pop("sics-like", None)


def test_an_unknown_scale_protocol_is_refused_by_name(tmp_path):
    from edge.box import EdgeBox
    box = EdgeBox({"store_id": "S001", "data_dir": str(tmp_path), "devices": {"scale": {"port": "/x", "protocol": "nope"}}})
    with pytest.raises(ValueError, match="scale protocol 'nope' is not known; one of continuous, toledo8217"):
        box._make_devices()
