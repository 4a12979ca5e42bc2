"""Per-store NATS credentials (issue 14): each store has its own random password, provisioned per box; nothing
derives one store's from another's or from a chain-wide secret, and a store's password lets it connect as itself
only. Against the real nats-server of the test stack."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import nats
import pytest

from cloud.embedded.nats import store_user
from cloud.store_credentials import CredentialBook, check

pytestmark = pytest.mark.integration


async def _connect(stack, user: str, password: str):
    return await nats.connect(stack.nats_address, user=user, password=password, allow_reconnect=False,
                              max_reconnect_attempts=0, connect_timeout=2)


async def test_a_stores_password_connects_it_as_itself_and_never_as_another_store(stack):
    user, password = stack.store_credentials("S001")
    own = await _connect(stack, user, password)
    await own.close()
    with pytest.raises(Exception):  # S001's password is not S002's
        await _connect(stack, store_user("S002"), password)
    with pytest.raises(Exception):  # nor the cloud's
        await _connect(stack, "cloud", password)


def test_two_stores_passwords_are_unrelated_random_and_kept_only_as_hashes_by_nats(stack, tmp_path):
    passwords = {s: stack.store_credentials(s)[1] for s in ("S001", "S002", "S003")}
    assert len(set(passwords.values())) == 3 and all(len(p) >= 32 for p in passwords.values())
    # the same store provisioned in another chain's book gets another password: nothing derives it from its id
    other = CredentialBook(tmp_path / "other.json")
    other.provision(["S001"])
    assert other.password("S001") != passwords["S001"]
    other.provision(["S001", "S002"])  # provisioning again keeps what a store has
    assert other.password("S001") == CredentialBook(tmp_path / "other.json").password("S001")
    # no chain-wide store secret exists; nats-server's configuration holds bcrypt hashes, not passwords
    assert not (stack.workdir / "store.secret").exists() and not hasattr(stack, "secret")
    config = (stack.nats.config_path).read_text()
    assert not any(p in config for p in passwords.values())
    assert check(passwords["S002"], stack.credentials.hashed("S002"))
    for path in (stack.credentials.path, stack.nats.config_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_the_cli_writes_one_boxs_configuration_and_a_rotated_password_replaces_the_old(stack, tmp_path):
    book = CredentialBook(tmp_path / "book.json")
    out = tmp_path / "S042.box.json"
    result = subprocess.run([sys.executable, "-m", "simulators.cli", "stores", "credentials", "S042", "--book",
                             str(book.path), "--out", str(out), "--nats-url", "nats://127.0.0.1:4222"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written == {"store_id": "S042", "nats_password": book.password("S042"), "nats_url": "nats://127.0.0.1:4222"}
    assert written["nats_password"] not in result.stdout  # the password is in the file only
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    before = book.password("S042")
    subprocess.run([sys.executable, "-m", "simulators.cli", "stores", "credentials", "S042", "--book", str(book.path),
                    "--out", str(out), "--rotate"], capture_output=True, text=True, timeout=60, check=True)
    assert CredentialBook(book.path).password("S042") != before == written["nats_password"]
    # a store provisioned in the stack's book gets its user on reload, with its own password
    stack.add_stores(["S043"])
    user, password = stack.store_credentials("S043")
    conn = await _connect(stack, user, password)
    await conn.close()


def test_a_box_config_written_over_a_world_readable_file_becomes_owner_only(tmp_path):
    """`os.open`'s 0600 applies only to a file it creates: an existing configuration readable by others kept its
    mode when the password was written into it."""
    from cloud.store_credentials import write_box_config
    out = tmp_path / "S001.box.json"
    out.write_text("{}")
    os.chmod(out, 0o644)
    write_box_config({"store_id": "S001", "nats_password": "secret"}, out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_a_book_that_was_world_readable_is_owner_only_once_written(tmp_path):
    book = CredentialBook(tmp_path / "book.json")
    book.path.write_text("{}")
    os.chmod(book.path, 0o644)
    book.provision(["S001"])
    assert stat.S_IMODE(os.stat(book.path).st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


_PROVISIONER = """
import sys
from pathlib import Path
from cloud.store_credentials import CredentialBook
book = CredentialBook(Path(sys.argv[1]))
for n in range(int(sys.argv[3])):
    book.provision([f"{sys.argv[2]}{n:03d}"])
"""


def test_two_provisioners_at_once_drop_none_of_each_others_stores(tmp_path):
    """Each reads, changes and writes the book: without the lock one writes over what the other just added."""
    path, per = tmp_path / "book.json", 60
    runs = [subprocess.Popen([sys.executable, "-c", _PROVISIONER, str(path), prefix, str(per)], cwd=os.getcwd(),
                             stderr=subprocess.PIPE, text=True) for prefix in ("A", "B", "C")]
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read() if run.stderr else ""
    stores = CredentialBook(path).stores()
    assert len(stores) == 3 * per, f"{3 * per - len(stores)} stores dropped"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
