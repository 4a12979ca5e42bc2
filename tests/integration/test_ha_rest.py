"""The rest of high availability (issue 18), for real.

- Streams made at the same moment by several cloud instances on a fresh NATS (its own nats-server, with the
  embedded server's JetStream storage limit: two concurrent creates each reserve their max_bytes, and the loser was
  refused "insufficient storage resources"): every instance comes up, each stream exists once, as intended.
"""
from __future__ import annotations

import asyncio
import dataclasses

import nats
import pytest

from cloud.embedded import process
from cloud.embedded.nats import nats_server_binary
from cloud.messaging import stream_setup, streams
from protocol import subjects

pytestmark = pytest.mark.integration
INSTANCES = 4
ROUNDS = 3


@pytest.fixture
def fresh_nats(tmp_path):
    """A nats-server of this test only, JetStream limited as the embedded one is (cloud/embedded/nats.py)."""
    port = process.free_port()
    config = tmp_path / "nats.conf"
    config.write_text(f'listen: "127.0.0.1:{port}"\n'
                      f'jetstream {{ store_dir: "{tmp_path / "js"}", max_memory_store: 268435456, '
                      f'max_file_store: 4294967296 }}\n')
    proc = process.spawn([nats_server_binary(), "-c", str(config)], tmp_path / "nats.log")
    try:
        process.wait_for_port(port, proc, "nats-server", tmp_path / "nats.log")
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.stop(proc)


async def test_instances_starting_together_on_a_fresh_nats_all_come_up_with_the_streams_made_once(fresh_nats):
    clients = [await nats.connect(fresh_nats, connect_timeout=5) for _ in range(INSTANCES)]
    try:
        js = clients[0].jetstream()
        bounds = streams.StreamBounds()
        for _ in range(ROUNDS):  # each round a fresh start: no stream yet
            for name in (subjects.EVENTS_STREAM, subjects.CLOUD_MESSAGES_STREAM):
                try:
                    await js.delete_stream(name)
                except Exception:  # noqa: BLE001, S110 - not there yet (the first round)
                    pass
            results = await asyncio.gather(*(streams.ensure_streams(c.jetstream(), bounds) for c in clients),
                                           return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            names = [s.config.name for s in await js.streams_info()]
            assert sorted(names) == sorted([subjects.EVENTS_STREAM, subjects.CLOUD_MESSAGES_STREAM])
            for wanted in (streams.events_stream_config(bounds), streams.cloud_messages_stream_config(bounds)):
                info = await js.stream_info(wanted.name)
                assert stream_setup.differences(info.config, wanted) == []
    finally:
        for c in clients:
            await c.close()


async def test_an_instance_with_new_limits_updates_them_and_one_with_another_meaning_is_refused(fresh_nats):
    """A rolling deploy that raises a byte limit: the stream takes it (started together with an old instance, both
    come up). A stream that means something else (another storage type) is never changed: said, field by field."""
    clients = [await nats.connect(fresh_nats, connect_timeout=5) for _ in range(2)]
    try:
        js = clients[0].jetstream()
        old, new = streams.StreamBounds(), streams.StreamBounds(events_max_bytes=512 * 1024 ** 2)
        results = await asyncio.gather(streams.ensure_streams(clients[0].jetstream(), old),
                                       streams.ensure_streams(clients[1].jetstream(), new), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        await streams.ensure_streams(js, new)  # the new instance's next start: its limit holds
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.max_bytes == new.events_max_bytes
        assert await stream_setup.ensure_stream(js, streams.events_stream_config(new)) == "kept"
        other = dataclasses.replace(streams.events_stream_config(new), subjects=["elsewhere.>"])
        with pytest.raises(stream_setup.StreamConfigConflict, match="subjects"):
            await stream_setup.ensure_stream(js, other)
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.subjects == [subjects.EVENTS_SUBJECTS]
    finally:
        for c in clients:
            await c.close()
