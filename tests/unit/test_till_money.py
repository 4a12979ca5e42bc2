"""Members and money at the till, the pure parts (issue 19.2): a split sale's tenders (edge.core.split_tender via
edge.core.selling), and the printed receipt's ESC/POS bytes (edge.core.receipt_ticket), the QR checked byte by byte
against ESC/POS `GS ( k` functions 165, 167, 169, 180 and 181."""
from __future__ import annotations

import pytest

from edge.core import selling
from edge.core.outcome import AddUnsettled, InsertSale, PrintTicket, Publish, Refused
from edge.core.receipt_ticket import receipt_bytes
from edge.core.split_tender import Tender, split_refusal
from edge.core.state import Member
from edge.till.money_routes import points_offer
from protocol import codec
from protocol.ids import make_id
from protocol.messages import SaleCommitted
from tests.unit.test_edge_core import BOOKS, NOW, cart_of, label, stamp, till

SALE = make_id(NOW.wall_ms, 999)
MILK, BOKCHOY_1KG = "6901234567892", label("21", "00101", "01000")  # 3.50 + 9.63 = 13.13


def member(balance: int = 10_000) -> Member:
    return Member("M1", "138****8000", "0012345678", "gold", balance, 500, 0)


def split_pay(first: Tender, method: str = "cash", tendered: int = 0, online: bool = True,
              auth: selling.Authorisation | None = None, cashier: str = "c7"):
    cart = cart_of(MILK, BOKCHOY_1KG, member=member())
    request = selling.PayRequest("3", method, tendered, auth, None, first, cashier)
    return selling.pay(cart, BOOKS, request, till(online), SALE, {}, stamp(0))


def sale_of(outcome) -> SaleCommitted:
    return next(e.event for e in outcome.effects if isinstance(e, Publish) and isinstance(e.event, SaleCommitted))


def test_stored_value_part_and_cash_rest_are_one_sale_with_two_tenders():
    hold = selling.Authorisation("hold:01KDVDNA000000000000000H01", "M1", 1_000, granted=True)
    out = split_pay(Tender("stored_value", 1_000), tendered=500, auth=hold)
    sale = sale_of(out)
    # 13.13: 10.00 of stored value against the hold, 3.13 in cash from 5.00 tendered: 1.87 change
    assert [(p.method, p.amount_fen, p.reference) for p in sale.payments] == [
        ("stored_value", 1_000, hold.hold_id), ("cash", 313, "")]
    assert sale.total_fen == 1_313 and not sale.offline
    assert out.reply["change_fen"] == 187 and out.reply["tenders"] == [
        {"method": "stored_value", "amount_fen": 1_000}, {"method": "cash", "amount_fen": 313}]
    assert [(e.amount_fen, e.reference) for e in out.effects if isinstance(e, AddUnsettled)] == [(1_000, hold.hold_id)]
    row = next(e for e in out.effects if isinstance(e, InsertSale))
    assert [p.method for p in row.payments] == ["stored_value", "cash"]  # the sales table keeps the tenders
    assert codec.decode(codec.encode(sale)) == sale  # the sale frame carries its tenders as before


def test_the_hold_must_be_for_the_part_and_a_short_cash_rest_refuses_the_whole_sale():
    with pytest.raises(Refused, match="less than the total 3.13"):
        split_pay(Tender("stored_value", 1_000), tendered=300,
                  auth=selling.Authorisation("hold:01KDVDNA000000000000000H02", "M1", 1_000, granted=True))
    with pytest.raises(Refused, match="while the cloud held"):  # a hold of another amount is not this tender
        split_pay(Tender("stored_value", 1_000), tendered=10_000,
                  auth=selling.Authorisation("hold:01KDVDNA000000000000000H03", "M1", 1_313, granted=True))
    with pytest.raises(Refused, match="insufficient stored value"):
        split_pay(Tender("stored_value", 1_000), tendered=10_000,
                  auth=selling.Authorisation("hold:01KDVDNA000000000000000H04", "M1", 1_000, granted=False))


def test_offline_the_stored_value_part_is_bounded_by_the_allowance_and_the_sale_says_offline():
    out = split_pay(Tender("stored_value", 1_000), tendered=313, online=False)
    sale = sale_of(out)
    assert sale.offline and [(p.method, p.amount_fen) for p in sale.payments] == [("stored_value", 1_000),
                                                                                    ("cash", 313)]
    # the test till's offline allowance is 50.00; a total of 13.13 cannot split 60.00 anyway, so ask over the allowance
    # through a bigger first part of a bigger basket
    cart = cart_of(*([MILK] * 20), member=member(100_000))  # 70.00
    with pytest.raises(Refused, match="stored value offline limit"):
        selling.pay(cart, BOOKS, selling.PayRequest("3", "cash", 10_000, None, None, Tender("stored_value", 6_000)),
                    till(False), SALE, {}, stamp(0))


def test_wallet_part_and_cash_rest():
    sale = sale_of(split_pay(Tender("wallet_sim", 1_300), tendered=13))
    assert [(p.method, p.amount_fen, p.reference) for p in sale.payments] == [
        ("wallet_sim", 1_300, f"sim-{SALE}"), ("cash", 13, "")]


@pytest.mark.parametrize(("first", "rest", "total", "points", "why"), [
    (Tender("cash", 100), "wallet_sim", 1_000, False, "first tender must be one of"),
    (Tender("stored_value", 100), "stored_value", 1_000, False, "the rest must be paid by one of"),
    (Tender("wallet_sim", 100), "wallet_sim", 1_000, False, "two different methods"),
    (Tender("stored_value", 0), "cash", 1_000, False, "must be positive"),
    (Tender("stored_value", 1_000), "cash", 1_000, False, "must be less than the total 10.00"),
    (Tender("stored_value", 100), "cash", 1_000, True, "cannot also take points"),
])
def test_what_is_not_a_split(first, rest, total, points, why):
    assert why in (split_refusal(first, rest, total, points) or "")
    assert split_refusal(Tender("stored_value", 100), "cash", 1_000) is None


def test_points_offer_is_the_share_points_may_pay_in_whole_steps():
    offer = points_offer({"points": 5_000}, 1_313)
    assert offer["have"] == 5_000 and 0 < offer["max"] <= 5_000
    assert offer["max_value_fen"] <= 1_313 // 2 + 1  # never more than the share points may pay
    assert points_offer(None, 1_313)["max"] == 0


# ---- the printed receipt --------------------------------------------------------------------------------------

def gs_k(fn: int, params: bytes) -> bytes:
    """GS ( k pL pH cn=49 fn params: pL/pH count the bytes after pH."""
    body = bytes([49, fn]) + params
    return b"\x1d(k" + len(body).to_bytes(2, "little") + body


def test_the_printed_receipt_names_everything_and_carries_its_qr_as_gs_k():
    hold = selling.Authorisation("hold:01KDVDNA000000000000000H05", "M1", 1_000, granted=True)
    out = split_pay(Tender("stored_value", 1_000), tendered=500, auth=hold)
    printed = next(a.ticket for a in out.after if isinstance(a, PrintTicket))
    text = printed.decode("gb18030", errors="replace")
    for words in ("FreshMesh S001", f"Receipt {SALE}", "Lane 3", "Cashier c7", "Member 138****8000",
                  "Milk 1L", "Bok choy", "1.000 kg x 9.63/kg", "TOTAL", "13.13", "Paid by stored value", "10.00",
                  "Paid by cash", "3.13", "Tendered", "5.00", "Change", "1.87"):
        assert words in text, words
    payload = f"SALE:{SALE}".encode()
    qr = (gs_k(65, b"\x32\x00")  # function 165: model 2
          + gs_k(67, b"\x06")  # 167: module size 6 dots
          + gs_k(69, b"\x31")  # 169: error correction level M
          + gs_k(80, b"\x30" + payload)  # 180: store the data (m = 48)
          + gs_k(81, b"\x30"))  # 181: print the stored symbol
    assert qr in printed
    assert len(payload) + 3 == int.from_bytes(gs_k(80, b"\x30" + payload)[3:5], "little")
    assert "REPRINT" not in text
    again = receipt_bytes(out.reply["receipt"], reprint=True)
    assert "REPRINT" in again.decode("gb18030", errors="replace") and qr in again


def test_a_receipt_of_a_sale_made_offline_says_so():
    out = split_pay(Tender("wallet_sim", 1_000), tendered=313, online=False)
    assert b"(completed offline)" in next(a.ticket for a in out.after if isinstance(a, PrintTicket))


# ---- registering at the till: the messages and the desk's bound ------------------------------------------------

def test_a_registration_request_with_no_phone_is_refused_at_decode():
    from protocol.errors import ProtocolError
    from protocol.till_member_messages import MemberRegisterRequested
    envelope = {"event_id": make_id(NOW.wall_ms, 1), "store_id": "S050", "seq": 0, "wall_ms": NOW.wall_ms, "mono_ms": 0}
    ok = MemberRegisterRequested(**envelope, register_id=make_id(NOW.wall_ms, 2), phone="138 0013 8000", lane="5")
    assert codec.decode(codec.encode(ok)) == ok
    with pytest.raises(ProtocolError, match="member.register.phone"):
        MemberRegisterRequested(**envelope, register_id=make_id(NOW.wall_ms, 3), phone="call me", lane="5")


def test_a_store_registers_at_most_its_rate_and_other_stores_are_not_held_up():
    from cloud.messaging.till_registrations import REGISTRATIONS_BURST, RegistrationDesk

    class Cloud:  # the desk's clock, no servers: the bucket is all that is tested here
        now = NOW.wall_ms

        def now_ms(self) -> int:
            return self.now
    cloud = Cloud()
    desk = RegistrationDesk.__new__(RegistrationDesk)
    desk.cloud, desk.buckets = cloud, {}
    assert all(desk._rate_ok("S050") for _ in range(REGISTRATIONS_BURST))  # noqa: SLF001
    assert not desk._rate_ok("S050")  # noqa: SLF001 - a flood is refused
    assert desk._rate_ok("S051")  # noqa: SLF001 - another store is not
    cloud.now += 2_000  # 30 a minute: one more after two seconds
    assert desk._rate_ok("S050") and not desk._rate_ok("S050")  # noqa: SLF001
