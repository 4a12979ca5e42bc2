"""Flash passes: a signed, self-contained, short-lived proof of who a member is, checked without any I/O.

Why not the session token on the flash path: a session token is checked against PostgreSQL (it is revocable), and
at 10,000 flash attempts a second that is 10,000 queries, more than the whole sale costs. A signed-in member asks
for a pass (`POST /auth/passes`, which does check the session) before the sale; every API worker verifies it with
an HMAC (`itsdangerous`, a few microseconds) and its age.

Guarantees:
- A pass names exactly one member and cannot be altered or forged without the pass key (HMAC-SHA256).
- It is refused once older than `PASS_TTL_MS` (by the cloud's clock, which is passed in) and when its salt
  differs (a pass is good for flash orders only).
- The price of no I/O: signing out does not recall passes already issued; they lapse within `PASS_TTL_MS`.
"""
from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from protocol.clock import Clock

PASS_TTL_MS = 15 * 60_000
SALT = b"freshmesh flash pass v1"
VERIFIED_MAX = 200_000  # passes remembered as verified per process (a flash crowd retries with the same pass)


class _ClockSigner(TimestampSigner):
    """itsdangerous' timed signer on the cloud's clock (it would read the machine's otherwise)."""

    def __init__(self, key: bytes, clock: Clock) -> None:
        super().__init__(key, salt=SALT, digest_method=hashlib.sha256)
        self.clock = clock

    def get_timestamp(self) -> int:
        return self.clock.now_ms() // 1000


class FlashPasses:
    def __init__(self, key: bytes, clock: Clock) -> None:
        self.signer, self.clock = _ClockSigner(key, clock), clock
        # pass -> (member, lapses at ms): a pass verified once is not verified again until it lapses; only valid
        # passes are kept, so a flood of forged ones costs an HMAC each and takes no memory
        self.verified: dict[str, tuple[str, int]] = {}

    def issue(self, member_id: str) -> tuple[str, int]:
        """(the pass, when it lapses in ms)."""
        signed = self.signer.sign(member_id.encode()).decode()
        return signed, (self.clock.now_ms() // 1000) * 1000 + PASS_TTL_MS

    def member(self, text: str) -> str | None:
        """The member a valid, unexpired pass names; None otherwise."""
        now = self.clock.now_ms()
        known = self.verified.get(text)
        if known is not None:
            if now <= known[1]:
                return known[0]
            del self.verified[text]
            return None
        try:
            value, signed_at = self.signer.unsign(text, max_age=PASS_TTL_MS // 1000, return_timestamp=True)
            member = value.decode()
        except (BadSignature, SignatureExpired, UnicodeDecodeError):  # SignatureExpired is a BadSignature too
            return None
        if len(self.verified) >= VERIFIED_MAX:
            self.verified.clear()
        # valid while the whole seconds since signing are at most the TTL's (as itsdangerous counts)
        self.verified[text] = (member, int(signed_at.timestamp()) * 1000 + PASS_TTL_MS + 999)
        return member
