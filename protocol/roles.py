"""Operator roles and what each may do: the one decision every operator endpoint asks, pure and unit-tested.

- `hq_admin`: everything, including managing operator accounts, reading the audit log and setting each store's
  allocation ratio (the online share of its stock).
- `store_manager` (of one store): reads the operator views (console, invariant audit) and changes its own store,
  and sees its own store's figures; never another store, the catalogue, the rule book or flash sales.
- `viewer`: reads the operator views and store figures; changes nothing.
- `stall_owner` (of one store's one market stall): sees only their stall's sales and settlement and changes only
  their stall's products' names and prices (`protocol/stalls.py` `stall_refusal` decides which stall).

`refusal(...)` answers None when the operator may, else the reason in words (the 403's detail); permissions that
concern one store (`STORE_SCOPED`) are decided against the store the request is about.
"""
from __future__ import annotations

import re
from typing import Literal, get_args

from protocol.errors import ProtocolError

Role = Literal["hq_admin", "store_manager", "viewer", "stall_owner"]
Permission = Literal[
    "views.read",  # the console, the invariant audit
    "store.figures",  # a store's till sales and revenue (GET /stores)
    "store.change",  # PUT /stores/{id}
    "allocation.change",  # PUT /stores/{id}/allocation and /stores/{id}/marketplaces/{m}/share: the online share of a
    # store's stock and each marketplace's share of that (HQ decides them)
    "restock.change",  # PUT /stores/{id}/reorder-points: reorder points and targets (HQ decides them)
    "catalogue.change",  # PUT /products
    "rule_book.change",  # PUT /rule-book
    "flash_sale.create",  # POST /flash-sales
    "operators.manage",  # list and create operator accounts
    "audit_log.read",  # who changed what
    "members.personal_data",  # export one member's data, erase a member (PIPL)
    "after_sales.decide",  # approve or refuse a customer's after-sales request of a store's order
    "members.profiles",  # a member's profile and the segments' members (masked phone only)
    "segments.manage",  # recompute segments, launch a campaign to a segment
    "group_buys.cancel",  # end an open group buy: its orders cancelled and refunded (HQ decides it)
    "store.open_close",  # open or close a store to online orders (HQ decides it; a manager edits the rest)
    "stalls.manage",  # create market stalls in a store (HQ decides them)
    "stall.read",  # a stall's sales and settlement (a stall owner: their own stall only)
    "stall.products",  # a stall's products' names and prices (a stall owner: their own stall only)
]
ROLES: tuple[Role, ...] = get_args(Role)
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)
STORE_SCOPED: frozenset[Permission] = frozenset({"store.figures", "store.change", "after_sales.decide"})
GRANTS: dict[str, frozenset[Permission]] = {  # by role
    "hq_admin": frozenset(PERMISSIONS),
    "store_manager": frozenset({"views.read", "store.figures", "store.change", "after_sales.decide"}),
    "viewer": frozenset({"views.read", "store.figures", "members.profiles", "stall.read"}),
    "stall_owner": frozenset({"stall.read", "stall.products"}),
}
# A store manager's store-scoped permissions reach their own store only; other roles' reach every store.
SCOPED_TO_OWN_STORE: frozenset[str] = frozenset({"store_manager"})
HAS_STORE: frozenset[str] = frozenset({"store_manager", "stall_owner"})  # accounts that name their store
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,39}")
PASSWORD_MIN_CHARS, PASSWORD_MAX_CHARS = 10, 256


def refusal(role: str, permission: Permission, own_store: str | None = None, store_id: str | None = None) -> str | None:
    """None when `role` (of `own_store`, for a store manager) may use `permission` (on `store_id`), else why not."""
    grants = GRANTS.get(role)
    if grants is None:
        return f"unknown role {role!r}"
    if permission not in grants:
        return f"the {role} role may not do this ({permission})"
    if permission in STORE_SCOPED and role in SCOPED_TO_OWN_STORE:
        if own_store is None:
            return f"this {role} account has no store"
        if store_id is not None and store_id != own_store:
            return f"a store manager of {own_store} may not act on store {store_id}"
    return None


def allowed(role: str, permission: Permission, own_store: str | None = None, store_id: str | None = None) -> bool:
    return refusal(role, permission, own_store, store_id) is None


def sees_store(role: str, own_store: str | None, store_id: str) -> bool:
    """Whether this operator sees the figures of `store_id` (a store manager: only their own store's)."""
    return allowed(role, "store.figures", own_store, store_id)


def check_account(username: str, role: str, store_id: str | None, stall_id: str | None = None) -> None:
    """An account's shape: a known role, a store for (and only for) a store manager or stall owner, a stall for
    (and only for) a stall owner, a plain username."""
    if not USERNAME.fullmatch(username):
        raise ProtocolError("username: 3-40 characters: lower-case letters, digits, '.', '_' or '-' "
                            "(starting with a letter or digit)")
    if role not in ROLES:
        raise ProtocolError(f"role: one of {', '.join(ROLES)}")
    if role in HAS_STORE and not store_id:
        what = "manages one store" if role == "store_manager" else "runs a stall of one store"
        raise ProtocolError(f"store_id: a {role} {what}: name it")
    if role not in HAS_STORE and store_id:
        raise ProtocolError(f"store_id: only a store manager has a store (or a stall owner: their stall's; not a {role})")
    if role == "stall_owner" and not stall_id:
        raise ProtocolError("stall_id: a stall_owner runs one stall: name it")
    if role != "stall_owner" and stall_id:
        raise ProtocolError(f"stall_id: only a stall owner has a stall (not a {role})")


def check_password(password: str) -> None:
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise ProtocolError(f"password: {PASSWORD_MIN_CHARS}-{PASSWORD_MAX_CHARS} characters")
