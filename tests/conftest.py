"""Shared fixtures. `stack` starts the real embedded servers once per test session (free ports, temp dirs)."""
from __future__ import annotations

import pytest

from cloud.embedded import EmbeddedStack


@pytest.fixture(scope="session")
def stack():
    with EmbeddedStack(store_ids=[f"S{i:03d}" for i in range(1, 11)]) as running:
        yield running


@pytest.fixture(scope="session")
def ray_runtime():
    """A local Ray for the whole session (starting Ray costs seconds; actors get unique names per test)."""
    import ray

    from cloud.runtime.hosting import ensure_ray
    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
def actor_prefix(request):
    import uuid
    return f"t{uuid.uuid4().hex[:8]}-"
