"""Shared fixtures. `stack` starts the real embedded servers once per test session (free ports, temp dirs)."""
from __future__ import annotations

import pytest

from cloud.embedded import EmbeddedStack


@pytest.fixture(scope="session")
def stack():
    with EmbeddedStack(store_ids=[f"S{i:03d}" for i in range(1, 11)]) as running:
        yield running
