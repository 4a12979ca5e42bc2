"""The operator role policy (protocol/roles.py) and what the audit log records of a world change: pure code."""
from __future__ import annotations

import pytest

from cloud.services.world_admin import changes
from protocol import roles
from protocol.errors import ProtocolError

WRITES = ("catalogue.change", "rule_book.change", "flash_sale.create", "operators.manage", "audit_log.read")


def test_hq_admin_may_do_everything_on_every_store():
    for permission in roles.PERMISSIONS:
        assert roles.allowed("hq_admin", permission, None, "S001")
        assert roles.allowed("hq_admin", permission)


def test_a_store_manager_changes_and_sees_only_their_own_store():
    assert roles.allowed("store_manager", "store.change", "S001", "S001")
    assert roles.allowed("store_manager", "store.figures", "S001", "S001")
    assert roles.allowed("store_manager", "views.read", "S001")
    assert roles.refusal("store_manager", "store.change", "S001", "S002") == (
        "a store manager of S001 may not act on store S002")
    assert not roles.sees_store("store_manager", "S001", "S002") and roles.sees_store("store_manager", "S001", "S001")
    for permission in WRITES:
        assert roles.refusal("store_manager", permission, "S001", "S001") == (
            f"the store_manager role may not do this ({permission})")
    assert roles.refusal("store_manager", "store.change", None, "S001") == "this store_manager account has no store"


def test_a_viewer_reads_and_changes_nothing():
    assert roles.allowed("viewer", "views.read") and roles.sees_store("viewer", None, "S003")
    for permission in ("store.change", *WRITES):
        assert not roles.allowed("viewer", permission, None, "S001")


def test_an_unknown_role_may_do_nothing():
    assert all(roles.refusal("root", p) == "unknown role 'root'" for p in roles.PERMISSIONS)


def test_every_permission_is_granted_to_hq_admin_and_the_grants_only_name_permissions():
    assert set(roles.GRANTS) == set(roles.ROLES)
    assert all(grants <= set(roles.PERMISSIONS) for grants in roles.GRANTS.values())
    assert roles.GRANTS["viewer"] < roles.GRANTS["hq_admin"] and roles.GRANTS["store_manager"] < roles.GRANTS["hq_admin"]


@pytest.mark.parametrize("username, role, store, words", [
    ("ab", "viewer", None, "username: 3-40"),
    ("Admin", "viewer", None, "username"),
    ("x" * 41, "viewer", None, "username"),
    ("ann", "root", None, "role: one of hq_admin, store_manager, viewer"),
    ("ann", "store_manager", None, "store_id: a store_manager manages one store"),
    ("ann", "viewer", "S001", "store_id: only a store manager has a store"),
    ("ann", "hq_admin", "S001", "store_id: only a store manager has a store"),
])
def test_an_account_of_the_wrong_shape_is_refused_with_the_reason(username, role, store, words):
    with pytest.raises(ProtocolError, match=words):
        roles.check_account(username, role, store)


def test_accounts_of_the_right_shape_and_passwords():
    roles.check_account("ann.lee_2", "store_manager", "S001")
    roles.check_account("hq-admin", "hq_admin", None)
    roles.check_password("x" * 10)
    for bad in ("short", "x" * 257):
        with pytest.raises(ProtocolError, match="password: 10-256 characters"):
            roles.check_password(bad)


def test_the_audit_log_records_a_store_whole_and_only_what_changed_in_the_catalogue_and_book():
    old = {"stores": [{"store_id": "S001", "name": "A"}, {"store_id": "S002", "name": "B"}],
           "catalogue": [{"sku": "A", "price_fen": 100}, {"sku": "B", "price_fen": 200}, {"sku": "C", "price_fen": 1}],
           "rule_book": {"version": 1, "rules": [{"id": "R1", "pct": 10}, {"id": "R2", "pct": 5}]}}
    new = {"stores": [{"store_id": "S001", "name": "A2"}, {"store_id": "S002", "name": "B"},
                      {"store_id": "S003", "name": "C"}],
           "catalogue": [{"sku": "A", "price_fen": 100}, {"sku": "B", "price_fen": 250}, {"sku": "D", "price_fen": 9}],
           "rule_book": {"version": 2, "rules": [{"id": "R1", "pct": 10}, {"id": "R2", "pct": 6}]}}
    assert changes("store", old, new, "S001") == ({"store_id": "S001", "name": "A"}, {"store_id": "S001", "name": "A2"})
    assert changes("store", old, new, "S003") == (None, {"store_id": "S003", "name": "C"})
    assert changes("catalogue", old, new) == (
        {"products": {"B": {"sku": "B", "price_fen": 200}, "C": {"sku": "C", "price_fen": 1}}},
        {"products": {"B": {"sku": "B", "price_fen": 250}, "D": {"sku": "D", "price_fen": 9}}})
    assert changes("rule_book", old, new) == ({"version": 1, "rules": {"R2": {"id": "R2", "pct": 5}}},
                                              {"version": 2, "rules": {"R2": {"id": "R2", "pct": 6}}})
