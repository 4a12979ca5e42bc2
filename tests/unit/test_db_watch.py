"""A frozen PostgreSQL: requests waiting on it are answered 503 once the watch says it is down (cloud/http/db_watch.py)."""
from __future__ import annotations

import asyncio

import pytest

from cloud.http import db_watch
from cloud.http.problems import HTTPProblem


class FakeWatch:
    def __init__(self) -> None:
        self.down = asyncio.Event()
        self.why = "no answer within 1.5 s"


@pytest.fixture
def watch():
    fake = FakeWatch()
    db_watch.current = fake  # type: ignore[assignment]
    yield fake
    db_watch.current = None


async def test_a_request_stuck_on_the_database_is_answered_503_when_the_watch_says_it_is_down(watch):
    stuck = asyncio.Event()

    async def endpoint():
        await stuck.wait()  # a query that never returns

    async def freeze():
        await asyncio.sleep(0.05)
        watch.down.set()

    asyncio.get_running_loop().create_task(freeze())
    with pytest.raises(HTTPProblem) as raised:
        await db_watch.within_database(endpoint, "/orders/{order_id}")
    assert raised.value.status == 503 and "PostgreSQL is not answering" in raised.value.detail
    assert raised.value.headers["Retry-After"]


async def test_a_request_that_does_not_need_the_database_still_answers_while_it_is_down(watch):
    watch.down.set()

    async def endpoint():
        await asyncio.sleep(0.01)
        return "answered"

    assert await db_watch.within_database(endpoint, "/products") == "answered"


async def test_health_and_unwatched_requests_are_not_cut(watch):
    watch.down.set()

    async def endpoint():
        await asyncio.sleep(db_watch.GRACE_S * 2)
        return "health"

    assert await db_watch.within_database(endpoint, "/health") == "health"


async def test_without_a_watch_nothing_changes():
    async def endpoint():
        return 1
    assert await db_watch.within_database(endpoint, "/x") == 1


async def test_the_probe_marks_an_unreachable_database_down_and_says_why():
    watch = db_watch.DbWatch("postgresql://nobody@127.0.0.1:1/none", timeout_s=1.0)
    await watch.probe()
    assert not watch.up and watch.why and watch.latency_ms is None
