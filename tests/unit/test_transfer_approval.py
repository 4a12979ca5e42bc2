"""Transfer approval as a pure state machine: who starts waiting, who decides, what each decision leads to."""
from __future__ import annotations

import pytest

from protocol.transfer_approval import AWAITING, decide, initial_status, who_may_decide


def test_a_store_managers_ask_waits_and_hq_or_routing_do_not():
    assert initial_status("store_manager", "hq") == AWAITING
    assert initial_status("hq_admin", "hq") == "requested"
    assert initial_status(None, "routing") == "requested"


def test_only_the_sending_stores_manager_or_hq_decides():
    assert who_may_decide("hq_admin", None, "S072") is None
    assert who_may_decide("store_manager", "S072", "S072") is None
    why = who_may_decide("store_manager", "S073", "S072")
    assert why is not None and "S072" in why and "S073" in why
    assert who_may_decide("viewer", None, "S072") == "the viewer role may not approve or refuse transfers"


def test_decisions_lead_on_once_and_conflict_with_the_other_decision():
    assert decide(AWAITING, "approve") == ("requested", True)
    assert decide(AWAITING, "refuse") == ("refused", True)
    assert decide("requested", "approve") == ("requested", False)
    assert decide("dispatched", "approve") == ("dispatched", False)
    assert decide("refused", "refuse") == ("refused", False)
    with pytest.raises(ValueError, match="refused"):
        decide("refused", "approve")
    with pytest.raises(ValueError, match="approved already"):
        decide("requested", "refuse")
    with pytest.raises(ValueError, match="cancelled"):
        decide("cancelled", "approve")
    with pytest.raises(ValueError, match="one of approve, refuse"):
        decide(AWAITING, "maybe")
