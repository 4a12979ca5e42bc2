"""The till lock, kept by the box for every way into its money (issue 19 review, defect 5).

A box provisioned with cashiers (`box.cashier_pins.hashes`) locks its till page until a cashier signs in at the lane;
the lane API and the page's own endpoints are called directly too (a terminal, a script on the store network), so the
box refuses their money and hand-over routes itself, answered 403 problem+json naming the lane, until a cashier is
signed in there: paying, returns (cash out of the drawer), coupons applied to a cart, members registered at the till,
and pickups handed over. (A cash top-up is refused by the actor itself without a cashier on duty: `top_up`.)

A pickup (`POST /pickups/{code}`) has no lane in its path: it takes `?lane=` naming the lane it is handed over at
(that lane's cashier must be signed in); without it, a cashier signed in at any lane of the box is required.

A box without cashiers configured keeps its open lane API (older tests). A lane the box config names in
`self_checkout_lanes` (or every lane, with "*") is a self-checkout kiosk: it takes money with no cashier signed in,
and a pickup named at it (or, with "*", any pickup) needs none either; the demo's simulated tills are such kiosks.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from edge.core.outcome import Refused
from protocol.messages import check_lane

# (method, path) of the routes that take or give money or hand goods over, on a lane named in the path
ON_A_LANE = (
    ("POST", re.compile(r"^/lanes/[^/]+/(pay|returns|coupon)$")),
    ("POST", re.compile(r"^/till/[^/]+/(tender|pay|members|coupons/apply|pickup|return)$")),
)
PICKUP = ("POST", re.compile(r"^/pickups/[^/]+$"))


def check(box, method: str, path: str, path_params: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Refused(403) when the box has cashiers and the route needs one signed in that is not."""
    if not box.cashier_pins.hashes:
        return
    kiosks = set((getattr(box, "config", None) or {}).get("self_checkout_lanes") or ())
    on_duty = box.actor.on_duty
    if any(method == m and pattern.match(path) for m, pattern in ON_A_LANE):
        lane = path_params.get("lane", "")
        if lane not in on_duty and lane not in kiosks and "*" not in kiosks:
            raise Refused(403, f"no cashier is signed in at lane {lane}: sign in at the till first")
    elif method == PICKUP[0] and PICKUP[1].match(path):
        named = query.get("lane")
        if "*" in kiosks:
            return
        if named is not None:
            check_lane(named, "lane")
            if named not in on_duty and named not in kiosks:
                raise Refused(403, f"no cashier is signed in at lane {named}: sign in at the till first")
        elif not on_duty:
            raise Refused(403, "no cashier is signed in at any lane of this box: a pickup is handed over by a "
                               "signed-in cashier (sign in at the till first, or name the lane: ?lane=)")
