"""An edge event the cloud will never apply because the store is not believed about it."""
from __future__ import annotations


class RefusedEvent(Exception):
    """Raised while applying an event the store may not say (past a limit, about what is not its own): the bridge
    dead-letters it at once with this reason and tells the store (a `refused` business ack), instead of retrying."""
