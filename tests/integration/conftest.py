"""Fixtures of several integration modules (the session's servers are in tests/conftest.py)."""
from __future__ import annotations

import pytest

from cloud.embedded import process
from cloud.embedded.nats import nats_server_binary


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
