"""Registering a member at a till (issue 19.2): the till asks the cloud to create the member's online account (core
NATS request/reply on `fm.store.<id>.reg.member`, beside the stored-value and points holds); the cloud registers the
phone exactly as the mall does (`cloud.services.members.Members.register`: the same account the customer signs in
to, new-member coupons issued) and answers with the member's id and code - never the phone in clear.

Idempotent by the phone: asking again for a registered phone answers that member (`created` False), so a retried
request after a lost answer makes no second account. Registered in `protocol.messages` (REQUESTS).
"""
from __future__ import annotations

from typing import ClassVar

from protocol import phones
from protocol.errors import ProtocolError
from protocol.ids import is_id
from protocol.messages import MEMBER_ID_MAX, Message, check_lane
from protocol.schema import record, require
from protocol.subjects import ROOT, store_root

REGISTER_ALL = f"{ROOT}.store.*.reg.>"
REGISTER_QUEUE = "till_registrations"  # the cloud's queue group: any one cloud process answers each request
REASON_MAX = 300
NAME_MAX = 32  # a name given at the till (optional): a person's name, not an essay


def store_register_subject(store_id: str) -> str:
    """Where a till asks to register a member: under the store's own root, which only that store may publish on."""
    return f"{store_root(store_id)}.reg.member"


@record
class MemberRegisterRequested(Message):
    """Register `phone` (as typed at the till; the cloud normalises it) as a member. `register_id`: made by the till,
    named by the answer."""
    KIND: ClassVar[str] = "member.register"
    register_id: str
    phone: str
    lane: str
    name: str = ""  # optional, as the customer gave it (added later: old frames decode without it)

    def check(self) -> None:
        require(is_id(self.register_id), f"member.register: not an id: {self.register_id[:80]!r}")
        require(len(self.name) <= NAME_MAX and self.name.isprintable(),
                f"member.register.name: at most {NAME_MAX} printable characters")
        check_lane(self.lane, "member.register.lane")
        try:
            phones.normalise(self.phone)
        except ProtocolError as exc:
            raise ProtocolError(f"member.register.{exc}") from None


@record
class MemberRegisterAnswered(Message):
    """`registered`: the member exists now (`created`: made by this request; False: the phone was registered
    already); otherwise `reason` says why not. The phone only masked."""
    KIND: ClassVar[str] = "member.register_answer"
    register_id: str
    registered: bool
    created: bool
    member_id: str
    member_code: str
    phone_masked: str
    reason: str
    name_masked: str = ""  # the name given at registration, masked (张*); added later, with a default

    def check(self) -> None:
        require(len(self.member_id) <= MEMBER_ID_MAX, "member.register_answer.member_id: too long")
        require(len(self.reason) <= REASON_MAX, f"member.register_answer.reason: at most {REASON_MAX} characters")
        require(not self.registered or bool(self.member_id), "member.register_answer: registered without a member id")


TILL_MEMBER_REQUESTS: tuple[type[Message], ...] = (MemberRegisterRequested, MemberRegisterAnswered)
