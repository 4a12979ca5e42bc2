"""One spelling per phone number: what people type becomes E.164, or a ProtocolError naming what was wrong."""
from __future__ import annotations

import pytest

from protocol.errors import ProtocolError
from protocol.phones import masked, normalise

E164 = "+8613800138000"


@pytest.mark.parametrize("typed", [
    "13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "+8613800138000", "8613800138000",
    "0086 13800138000", "（+86）138.0013.8000".replace("（", "(").replace("）", ")"),
    "１３８００１３８０００",  # full-width digits
    "+８６ １３８\u3000００１３\u00a0８０００",  # full-width plus, ideographic and no-break spaces
    "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits
])
def test_every_usual_spelling_is_one_number(typed):
    assert normalise(typed) == E164


@pytest.mark.parametrize(("typed", "why"), [
    ("", "required"), ("   ", "required"), ("138-CALL-ME", "is not a digit"), ("12345", "mainland mobile"),
    ("+86 23800138000", "must be a mobile"), ("+1234", "8-15 digits"), ("+1" + "2" * 15, "8-15 digits"),
    ("1" * 41, "longer than 40"), ("138\x000138000", "is not a digit"),
])
def test_what_is_not_a_number_is_refused_saying_why(typed, why):
    with pytest.raises(ProtocolError, match=why):
        normalise(typed)


def test_other_countries_keep_their_code_and_masking_hides_the_middle():
    assert normalise("+44 20 7946 0958") == "+442079460958"
    assert masked(E164) == "138****8000" and masked("+442079460958") == "442****0958"
