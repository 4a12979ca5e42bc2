"""Shared fixtures. `stack` starts the real embedded servers once per test session (free ports, temp dirs)."""
from __future__ import annotations

import pytest
from hypothesis import settings

from cloud.embedded import EmbeddedStack

# Tests assert behaviour, never timings: hypothesis's per-example deadline (200 ms) fails a correct test whenever the
# shared 2-core box is busy (it did, in CI runs), so it is off for every property test.
settings.register_profile("freshmesh", deadline=None)
settings.load_profile("freshmesh")



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
