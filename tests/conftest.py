"""Shared fixtures. `stack` starts the real embedded servers once per test session (free ports, temp dirs)."""
from __future__ import annotations

import contextlib
import sqlite3

import pytest
from hypothesis import settings

from cloud.embedded import EmbeddedStack

# Tests assert behaviour, never timings: hypothesis's per-example deadline (200 ms) fails a correct test whenever the
# shared 2-core box is busy (it did, in CI runs), so it is off for every property test.
settings.register_profile("freshmesh", deadline=None)
settings.load_profile("freshmesh")



@pytest.fixture(scope="session")
def stack():
    with EmbeddedStack(store_ids=[f"S{i:03d}" for i in range(1, 81)]) as running, \
            boxes_continue_their_stores(running.database_url):
        yield running


@contextlib.contextmanager
def boxes_continue_their_stores(database_url: str):
    """A real store's event seqs only grow, and the cloud keeps the newest on-hand by seq; but test modules start
    new boxes (empty SQLite) for the same stores on one shared database. A new box here begins above the highest
    seq the cloud has of its store, as the box it replaces would have (as `StoreLink` does)."""
    import asyncpg

    from edge.box import EdgeBox
    from edge.store_db import SEQ_FLOOR_KEY
    start = EdgeBox.start

    async def continuing(box):
        conn = await asyncpg.connect(database_url)
        try:
            seq = await conn.fetchval("select coalesce(max(seq), 0) from edge_events where store_id = $1",
                                      box.store_id)
        finally:
            await conn.close()
        path = box.store_db.path
        if seq and not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with sqlite3.connect(path) as db:
                db.execute("create table if not exists meta (key text primary key, value text not null)")
                db.execute("insert or replace into meta (key, value) values (?, ?)", (SEQ_FLOOR_KEY, str(seq)))
            path.chmod(0o600)
        return await start(box)
    EdgeBox.start = continuing  # type: ignore[method-assign]
    try:
        yield
    finally:
        EdgeBox.start = start  # type: ignore[method-assign]


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
