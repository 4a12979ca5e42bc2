"""Phone numbers: one spelling per number, so that one number is one member.

`normalise` turns what a person types (full-width or other Unicode digits, spaces, dashes, dots, brackets, a
leading +86 / 0086 / 86, or none at all for a mainland mobile) into E.164 (`+8613800138000`), or raises
ProtocolError saying what was wrong. `masked` shows a number the way receipts, logs and screens may show it.
"""
from __future__ import annotations

import hashlib
import hmac
import unicodedata

from protocol.errors import ProtocolError

CHINA_CODE = "86"
MOBILE_DIGITS = 11  # a mainland mobile: 1 and ten digits
E164_MIN_DIGITS, E164_MAX_DIGITS = 8, 15
SEPARATORS = frozenset(" -.()\u00a0\u3000")  # what people put between digit groups (incl. no-break and ideographic space)
MAX_INPUT_CHARS = 40


def normalise(text: str) -> str:
    if not isinstance(text, str) or not "".join(ch for ch in text if ch not in SEPARATORS).strip():
        raise ProtocolError("phone: a phone number is required")
    if len(text) > MAX_INPUT_CHARS:
        raise ProtocolError(f"phone: longer than {MAX_INPUT_CHARS} characters")
    text = unicodedata.normalize("NFKC", text)  # full-width digits and plus become ASCII
    text = "".join(ch for ch in text if ch not in SEPARATORS)  # "(+86) 138-0013-8000" -> "+8613800138000"
    plus = text.startswith("+")
    digits = []
    for ch in text[1:] if plus else text:
        value = unicodedata.digit(ch, None)
        if value is None:
            raise ProtocolError(f"phone: {ch!r} is not a digit")
        digits.append(str(value))
    number = "".join(digits)
    if not plus and number.startswith("00"):  # 0086...: the international prefix dialled
        plus, number = True, number[2:]
    if not plus and len(number) == MOBILE_DIGITS and number.startswith("1"):
        number = CHINA_CODE + number  # a mainland mobile without its country code
    elif not plus and len(number) == len(CHINA_CODE) + MOBILE_DIGITS and number.startswith(CHINA_CODE + "1"):
        pass  # 86 and a mobile, without the plus
    elif not plus:
        raise ProtocolError("phone: give a mainland mobile (11 digits starting with 1) or +<country code><number>")
    if number.startswith(CHINA_CODE) and not (len(number) == len(CHINA_CODE) + MOBILE_DIGITS
                                              and number[len(CHINA_CODE)] == "1"):
        raise ProtocolError("phone: a +86 number must be a mobile: 1 and ten more digits")
    if not E164_MIN_DIGITS <= len(number) <= E164_MAX_DIGITS:
        raise ProtocolError(f"phone: {E164_MIN_DIGITS}-{E164_MAX_DIGITS} digits with the country code")
    return "+" + number


def masked(e164: str) -> str:
    """+8613800138000 -> 138****8000: enough for the member to recognise, not enough to call."""
    national = e164[1 + len(CHINA_CODE):] if e164.startswith("+" + CHINA_CODE) else e164.lstrip("+")
    if len(national) <= 7:
        return "*" * len(national)
    return f"{national[:3]}****{national[-4:]}"


def lookup_hash(key: bytes, e164: str) -> bytes:
    """The keyed hash (HMAC-SHA256) a phone is found by without being stored: the same number (normalised first)
    gives the same hash under one key; without the key the hash cannot be tested against guesses."""
    return hmac.new(key, e164.encode(), hashlib.sha256).digest()
