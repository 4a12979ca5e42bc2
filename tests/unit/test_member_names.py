"""A member's name given at the till: masked on screens (张*), carried by the registration request (optional, added
compatibly: frames without it still decode), answered only masked."""
from __future__ import annotations

import pytest

from cloud.services.member_names import masked_name
from protocol import codec
from protocol.errors import ProtocolError
from protocol.ids import make_id
from protocol.till_member_messages import MemberRegisterAnswered, MemberRegisterRequested

NOW = 1_700_000_000_000


def request(**over) -> MemberRegisterRequested:
    body = dict(event_id=make_id(NOW, 1), store_id="S061", seq=0, wall_ms=NOW, mono_ms=0,
                register_id=make_id(NOW, 2), phone="13800138000", lane="1")
    return MemberRegisterRequested(**{**body, **over})


def test_a_name_is_shown_masked():
    assert [masked_name(n) for n in ("张三", "欧阳娜娜", "李", " Li ", "")] == ["张*", "欧***", "李*", "L*", ""]


def test_the_name_travels_optionally_and_old_frames_decode_without_it():
    named = request(name="张三")
    assert codec.decode(codec.encode(named)).name == "张三"
    wire = codec.unpack(codec.encode(request()))
    del wire["name"]
    assert codec.decode(codec.pack(wire)).name == ""
    answer = MemberRegisterAnswered(event_id=make_id(NOW, 3), store_id="S061", seq=0, wall_ms=NOW, mono_ms=0,
                                    register_id=named.register_id, registered=True, created=True, member_id="M1",
                                    member_code="0000000001", phone_masked="138****8000", reason="", name_masked="张*")
    wire = codec.unpack(codec.encode(answer))
    del wire["name_masked"]
    assert codec.decode(codec.pack(wire)).name_masked == ""


def test_a_name_too_long_or_with_control_characters_is_refused():
    with pytest.raises(ProtocolError, match="name"):
        request(name="张" * 33)
    with pytest.raises(ProtocolError, match="name"):
        request(name="张\n三")
