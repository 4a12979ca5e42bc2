"""Messages of cashiers' shifts (issue 19 item 4), registered in `protocol.messages`' EDGE_EVENTS.

- `ShiftReported` (edge -> cloud, on the event path): a cashier closed their shift at a lane with a count of the
  drawer by denomination. The report carries what the box worked out (`edge.core.cash_up`): per payment method what
  the shift should hold (expected) and what was counted, the cash difference, and the numbers of sales, returns and
  voids. Committed at the store with the shift's close in one SQLite transaction (the outbox, exactly once); the
  cloud keeps one report per shift id, believed only from the store that made it (`protocol.shift_facts`).

- A shift closed without a count (the cashier signed out through the lane API, another cashier signed in over it,
  or the next day's first sign-in closed a shift a restart left open) is reported too, `uncounted`: nothing was
  counted (`counted` empty), each method's counted figure is its expected one (unknown, not claimed) and the
  difference is 0. `uncounted` was added later with a default: frames from before it decode as counted reports.

The message checks its own arithmetic, so a frame whose figures do not add up is a `ProtocolError` (dead-lettered
with the reason), never a report the cloud shows.
"""
from __future__ import annotations

import re
from typing import ClassVar

from protocol.ids import is_id
from protocol.messages import NAME_RE, Message, check_lane
from protocol.schema import record, require

# Chinese tills count notes and coins of 100, 50, 20, 10, 5 and 1 yuan, 5 jiao and 1 jiao (in fen)
DENOMINATIONS_FEN: tuple[int, ...] = (10_000, 5_000, 2_000, 1_000, 500, 100, 50, 10)
METHOD_RE = re.compile(r"^[a-z][a-z0-9_]{0,23}$")  # cash, stored_value, wallet_sim, points, and tenders to come
PIECES_MAX = 100_000  # of one denomination in one drawer: a typo guard (100,000 notes of 100 is 10 million yuan)
AMOUNT_MAX_FEN = 10_000_000_000  # what one shift may take by one method (100 million yuan)
# a drawer's opening float: 100,000.00 yuan at most (a typo guard; a float near AMOUNT_MAX_FEN left the shift's
# expected cash past what a count or a report can hold: the shift could never close)
FLOAT_MAX_FEN = 10_000_000
COUNT_MAX = 1_000_000  # sales, returns or voids of one shift


@record
class DenominationCount:
    denomination_fen: int
    pieces: int

    def __post_init__(self) -> None:
        require(self.denomination_fen in DENOMINATIONS_FEN,
                f"shift count: {self.denomination_fen} fen is not a denomination ({DENOMINATIONS_FEN})")
        require(0 <= self.pieces <= PIECES_MAX, f"shift count of {self.denomination_fen} fen: 0..{PIECES_MAX} pieces")


@record
class MethodTotal:
    method: str
    expected_fen: int  # what the shift took by this method (cash: what the drawer should hold)
    counted_fen: int  # what was counted (cash: the drawer; other methods: the totals confirmed)

    def __post_init__(self) -> None:
        require(bool(METHOD_RE.match(self.method)), f"shift method: not a payment method name: {self.method[:24]!r}")
        require(abs(self.expected_fen) <= AMOUNT_MAX_FEN and abs(self.counted_fen) <= AMOUNT_MAX_FEN,
                f"shift method {self.method}: amounts out of bounds")


@record
class ShiftReported(Message):
    KIND: ClassVar[str] = "shift.reported"
    shift_id: str
    cashier_id: str
    lane: str
    opened_ms: int
    closed_ms: int
    float_fen: int  # the opening float the cashier put in the drawer
    counted: tuple[DenominationCount, ...]  # the closing count of the drawer
    methods: tuple[MethodTotal, ...]
    difference_fen: int  # cash counted - cash expected (negative: short)
    sales: int
    returns: int
    voids: int
    uncounted: bool = False  # closed without a count: counted = expected (unknown), difference 0

    def check(self) -> None:
        require(is_id(self.shift_id), f"shift.reported: not an id: {self.shift_id[:80]!r}")
        require(bool(NAME_RE.fullmatch(self.cashier_id)), "shift.reported: cashier_id is 1-32 letters, digits, '_' or '-'")
        check_lane(self.lane, "shift.reported.lane")
        require(0 <= self.opened_ms <= self.closed_ms, "shift.reported: closed before it opened")
        require(0 <= self.float_fen <= AMOUNT_MAX_FEN, "shift.reported: float_fen out of bounds")
        denominations = [c.denomination_fen for c in self.counted]
        require(len(set(denominations)) == len(denominations), "shift.reported: a denomination counted twice")
        names = [m.method for m in self.methods]
        require(len(set(names)) == len(names) and "cash" in names, "shift.reported: each method once, cash among them")
        cash = next(m for m in self.methods if m.method == "cash")
        if self.uncounted:
            require(not self.counted and all(m.counted_fen == m.expected_fen for m in self.methods)
                    and self.difference_fen == 0,
                    "shift.reported: an uncounted report has no count, counted = expected and no difference")
            self._check_counts()
            return
        require(cash.counted_fen == counted_fen(self.counted),
                f"shift.reported: cash counted {cash.counted_fen} is not the sum of the count {counted_fen(self.counted)}")
        require(self.difference_fen == cash.counted_fen - cash.expected_fen,
                "shift.reported: difference_fen is not cash counted - cash expected")
        self._check_counts()

    def _check_counts(self) -> None:
        require(all(0 <= n <= COUNT_MAX for n in (self.sales, self.returns, self.voids)),
                f"shift.reported: sales, returns and voids 0..{COUNT_MAX}")


def counted_fen(counted: tuple[DenominationCount, ...]) -> int:
    """The value of a drawer count: `counted` as DenominationCount records."""
    return sum(c.denomination_fen * c.pieces for c in counted)
