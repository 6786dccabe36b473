"""What the agent keeps in its state dir: the identity and the ledger of what it installed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from meshroute.agent import identity as identity_module
from meshroute.agent.identity import (
    IDENTITY_FILE,
    FileIdentityStore,
    IdentityError,
    StoredIdentity,
    generate_private_key,
    public_key,
    write_private,
)
from meshroute.agent.ledger import LEDGER_FILE, Ledger


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- FileIdentityStore -----------------------------------------------------------------------------


def test_a_missing_identity_file_is_no_identity(tmp_path: Path) -> None:
    assert FileIdentityStore(tmp_path).load() is None


def test_identity_round_trips_through_a_0600_file(tmp_path: Path) -> None:
    key = generate_private_key()
    store = FileIdentityStore(tmp_path)
    store.save(StoredIdentity(key, peer_id="p1", credential="secret", server="mgmt:1"))
    path = tmp_path / IDENTITY_FILE
    assert mode(path) == 0o600
    loaded = FileIdentityStore(tmp_path).load()
    assert loaded == StoredIdentity(key, peer_id="p1", credential="secret", server="mgmt:1")
    assert loaded is not None and loaded.registered and loaded.public_key == public_key(key)
    assert json.loads(path.read_text())["public_key"] == public_key(key)  # for people reading it


def test_an_identity_without_credential_is_not_registered(tmp_path: Path) -> None:
    store = FileIdentityStore(tmp_path)
    store.save(StoredIdentity(generate_private_key()))
    loaded = store.load()
    assert loaded is not None and not loaded.registered


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        "[]",
        '"a string"',
        "null",
        "{}",
        '{"peer_id": "p1"}',
        '{"private_key": "not base64!"}',
        '{"private_key": "AAAA"}',
    ],
)
def test_a_damaged_identity_file_is_an_identity_error_naming_the_file(tmp_path: Path, content: str) -> None:
    (tmp_path / IDENTITY_FILE).write_text(content)
    with pytest.raises(IdentityError) as caught:
        FileIdentityStore(tmp_path).load()
    assert str(tmp_path / IDENTITY_FILE) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_save_replaces_a_looser_file_with_a_0600_one(tmp_path: Path) -> None:
    path = tmp_path / IDENTITY_FILE
    path.write_text("{}")
    os.chmod(path, 0o644)
    FileIdentityStore(tmp_path).save(StoredIdentity(generate_private_key()))
    assert mode(path) == 0o600


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileIdentityStore(tmp_path)
    old = StoredIdentity(generate_private_key(), peer_id="p1", credential="c1")
    store.save(old)
    before = (tmp_path / IDENTITY_FILE).read_text()

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(identity_module.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.save(StoredIdentity(generate_private_key(), peer_id="p2", credential="c2"))
    monkeypatch.undo()

    assert (tmp_path / IDENTITY_FILE).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [IDENTITY_FILE]
    assert store.load() == old


def test_write_private_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "secret", "x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "secret") == 0o600
    assert (tmp_path / "secret").read_text() == "x"


# -- Ledger ----------------------------------------------------------------------------------------


def test_ledger_records_to_a_0600_file_and_loads_it_back(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("wireguard", {"interface": "mr0", "kind": "userspace", "pid": 42, "start_time": 7})
    ledger.record("routes", {"table": 7120})
    assert mode(tmp_path / LEDGER_FILE) == 0o600
    assert Ledger(tmp_path).load() == {
        "wireguard": {"interface": "mr0", "kind": "userspace", "pid": 42, "start_time": 7},
        "routes": {"table": 7120},
    }


def test_ledger_record_replaces_a_section(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("wireguard", {"interface": "mr0", "kind": "pending"})
    ledger.record("wireguard", {"interface": "mr0", "kind": "kernel"})
    assert Ledger(tmp_path).load() == {"wireguard": {"interface": "mr0", "kind": "kernel"}}


def test_ledger_file_is_removed_when_the_last_section_is_dropped(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("wireguard", {"interface": "mr0"})
    ledger.record("routes", {"table": 1})
    ledger.drop("wireguard")
    assert Ledger(tmp_path).load() == {"routes": {"table": 1}}
    ledger.drop("routes")
    assert not (tmp_path / LEDGER_FILE).exists()
    ledger.drop("routes")  # dropping what is not there is nothing
    assert Ledger(tmp_path).load() == {}


@pytest.mark.parametrize("content", ["", "{torn", '{"wireguard": "not a section", "routes": {"a": 1}}'])
def test_ledger_load_of_an_unreadable_file_yields_only_valid_sections(tmp_path: Path, content: str) -> None:
    (tmp_path / LEDGER_FILE).write_text(content)
    loaded = Ledger(tmp_path).load()
    assert loaded in ({}, {"routes": {"a": 1}})
    assert "wireguard" not in loaded


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "3", "null"])
def test_ledger_load_of_json_that_is_not_an_object_yields_nothing(tmp_path: Path, content: str) -> None:
    (tmp_path / LEDGER_FILE).write_text(content)
    assert Ledger(tmp_path).load() == {}
