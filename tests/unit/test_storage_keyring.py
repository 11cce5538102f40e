"""gateway.storage.keyring: the local KEK file, its permissions and the KEK life cycle."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError, Conflict, DecryptionError, KeyProviderError, NotFound
from gateway.storage import crypto
from gateway.storage.base import WrappedKey
from gateway.storage.keyring import LocalKeyring

pytestmark = pytest.mark.unit

CONTEXT = b"gateway/seal/v1\n{}"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "keys" / "keyring.json"


@pytest.fixture
def ring(path: Path) -> LocalKeyring:
    return LocalKeyring.open_or_create(path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_first_start_creates_an_owner_only_keyring(path: Path) -> None:
    clock = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    LocalKeyring.open_or_create(path, clock=lambda: clock)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    [key] = document(path)["keys"]
    assert re.fullmatch(r"kek-[0-9a-f]{16}", key["id"])
    assert len(base64.b64decode(key["key"])) == 32
    assert (key["state"], key["created"]) == ("active", "2025-01-02T03:04:05+00:00")
    assert sorted(p.name for p in path.parent.iterdir()) == ["keyring.json", "keyring.json.lock"]


def test_reopening_keeps_the_same_keys(path: Path) -> None:
    first = LocalKeyring.open_or_create(path)
    wrapped = first.wrap(b"k" * 32, CONTEXT)
    second = LocalKeyring.open_or_create(path)
    assert second.key_ids() == first.key_ids()
    assert second.unwrap(wrapped, CONTEXT) == b"k" * 32


@pytest.mark.parametrize("bad", [0o644, 0o640, 0o604, 0o660, 0o666, 0o610])
def test_a_keyring_others_may_access_is_refused(path: Path, bad: int) -> None:
    LocalKeyring.open_or_create(path)
    path.chmod(bad)
    for opening in (LocalKeyring.open_or_create, LocalKeyring):
        with pytest.raises(ConfigError) as caught:
            opening(path)
        assert str(path) in caught.value.detail
        assert f"mode {bad:04o}" in caught.value.detail
        assert "chmod 600" in caught.value.detail


def test_message_names_the_path_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "ring.json"
    LocalKeyring.open_or_create(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=re.escape(f"keyring {path} has mode 0644;")):
        LocalKeyring(path)


@pytest.mark.parametrize("good", [0o600, 0o400])
def test_owner_only_modes_are_accepted(path: Path, good: int) -> None:
    LocalKeyring.open_or_create(path)
    path.chmod(good)
    LocalKeyring(path).wrap(b"k" * 32, CONTEXT)


def test_a_running_keyring_notices_a_loosened_mode(ring: LocalKeyring, path: Path) -> None:
    path.chmod(0o644)
    with pytest.raises(ConfigError):
        ring.wrap(b"k" * 32, CONTEXT)
    with pytest.raises(KeyProviderError):
        ring.check()


def test_a_symlinked_keyring_is_refused(path: Path, tmp_path: Path) -> None:
    LocalKeyring.open_or_create(path)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(KeyProviderError):
        LocalKeyring(link)


def test_a_missing_keyring_is_not_silently_created_by_the_constructor(path: Path) -> None:
    with pytest.raises(KeyProviderError, match="cannot be read"):
        LocalKeyring(path)
    assert not path.exists()


def test_wrap_and_unwrap(ring: LocalKeyring) -> None:
    data_key = crypto.new_data_key()
    wrapped = ring.wrap(data_key, CONTEXT)
    assert wrapped.key_id == next(iter(ring.key_ids()))
    assert data_key not in wrapped.wrapped
    assert ring.unwrap(wrapped, CONTEXT) == data_key


def test_unwrap_refuses_another_context_or_unknown_key(ring: LocalKeyring) -> None:
    wrapped = ring.wrap(crypto.new_data_key(), CONTEXT)
    with pytest.raises(DecryptionError):
        ring.unwrap(wrapped, CONTEXT + b"x")
    with pytest.raises(DecryptionError):
        ring.unwrap(WrappedKey("kek-0000000000000000", wrapped.wrapped), CONTEXT)


def test_rotation_keeps_old_wraps_readable_and_wraps_new_ones_with_the_new_key(
    ring: LocalKeyring, path: Path
) -> None:
    old = ring.wrap(b"o" * 32, CONTEXT)
    new_id = ring.rotate()
    assert new_id != old.key_id
    assert ring.key_ids() == {old.key_id: "retired", new_id: "active"}
    new = ring.wrap(b"n" * 32, CONTEXT)
    assert new.key_id == new_id
    assert ring.unwrap(old, CONTEXT) == b"o" * 32
    assert ring.unwrap(new, CONTEXT) == b"n" * 32
    assert LocalKeyring(path).key_ids() == ring.key_ids()  # persisted
    assert mode(path) == 0o600


def test_retiring_the_active_key_rotates(ring: LocalKeyring) -> None:
    [first] = ring.key_ids()
    ring.retire(first)
    states = ring.key_ids()
    assert states[first] == "retired"
    assert list(states.values()).count("active") == 1
    ring.retire(first)  # retiring again changes nothing
    assert ring.key_ids() == states
    with pytest.raises(NotFound):
        ring.retire("kek-0000000000000000")


def test_destroying_a_key_shreds_what_it_wrapped(ring: LocalKeyring, path: Path) -> None:
    wrapped = ring.wrap(b"d" * 32, CONTEXT)
    material = document(path)["keys"][0]["key"]
    ring.rotate()
    ring.destroy(wrapped.key_id)
    assert wrapped.key_id not in ring.key_ids()
    assert material not in path.read_text()
    for keyring in (ring, LocalKeyring(path)):
        with pytest.raises(DecryptionError):
            keyring.unwrap(wrapped, CONTEXT)
    with pytest.raises(NotFound):
        ring.destroy(wrapped.key_id)


def test_the_active_key_cannot_be_destroyed(ring: LocalKeyring) -> None:
    [active] = ring.key_ids()
    with pytest.raises(Conflict, match="rotate"):
        ring.destroy(active)
    assert ring.key_ids() == {active: "active"}


def test_changes_by_another_process_are_honoured(path: Path) -> None:
    mine, theirs = LocalKeyring.open_or_create(path), LocalKeyring(path)
    old = mine.wrap(b"m" * 32, CONTEXT)
    new_id = theirs.rotate()
    theirs.destroy(old.key_id)
    assert mine.wrap(b"m" * 32, CONTEXT).key_id == new_id
    with pytest.raises(DecryptionError):
        mine.unwrap(old, CONTEXT)


def test_changes_leave_no_temporary_files(ring: LocalKeyring, path: Path) -> None:
    for _ in range(3):
        ring.rotate()
    ring.secret("pseudonym")
    assert sorted(p.name for p in path.parent.iterdir()) == ["keyring.json", "keyring.json.lock"]


def test_secrets_are_stable_across_restarts_and_rotation(path: Path) -> None:
    ring = LocalKeyring.open_or_create(path)
    value = ring.secret("pseudonym")
    assert len(value) == 32
    assert ring.secret("pseudonym") == value
    assert ring.secret("other") != value
    ring.rotate()
    assert LocalKeyring.open_or_create(path).secret("pseudonym") == value


@pytest.mark.parametrize("name", ["", "Upper", "../x", "a/b", "x" * 65, "-lead"])
def test_secret_names_are_checked(ring: LocalKeyring, name: str) -> None:
    with pytest.raises(ValueError):
        ring.secret(name)


def test_concurrent_first_uses_agree(path: Path) -> None:
    # Separate instances only share the file lock, as separate processes would.
    results: list[tuple[str, bytes]] = []

    def start() -> None:
        ring = LocalKeyring.open_or_create(path)
        results.append((next(iter(ring.key_ids())), ring.secret("pseudonym")))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1


def test_check_passes_and_fails_closed(ring: LocalKeyring, path: Path) -> None:
    ring.check()
    path.unlink()
    with pytest.raises(KeyProviderError):
        ring.check()
    with pytest.raises(KeyProviderError):
        ring.wrap(b"k" * 32, CONTEXT)
    path.mkdir()
    with pytest.raises(KeyProviderError):
        ring.check()


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: "{not json",
        lambda doc: json.dumps({**doc, "format": "other"}),
        lambda doc: json.dumps({**doc, "keys": []}),  # no active key
        lambda doc: json.dumps({**doc, "keys": doc["keys"] * 2}),  # duplicate, two active
        lambda doc: json.dumps({**doc, "keys": [{**doc["keys"][0], "state": "gone"}]}),
        lambda doc: json.dumps({**doc, "keys": [{**doc["keys"][0], "key": "c2hvcnQ="}]}),
        lambda doc: json.dumps({**doc, "keys": [{**doc["keys"][0], "key": "!!"}]}),
        lambda doc: json.dumps({**doc, "keys": [{**doc["keys"][0], "id": "../x"}]}),
        lambda doc: json.dumps({**doc, "keys": [{"id": doc["keys"][0]["id"]}]}),
        lambda doc: json.dumps({"format": doc["format"]}),
        lambda doc: json.dumps([1, 2]),
    ],
)
def test_a_malformed_keyring_is_refused_without_quoting_keys(
    path: Path, edit: Callable[[dict[str, Any]], str]
) -> None:
    LocalKeyring.open_or_create(path)
    doc = document(path)
    path.write_text(edit(doc))
    with pytest.raises(ConfigError, match="is malformed") as caught:
        LocalKeyring(path)
    assert str(path) in caught.value.detail
    assert doc["keys"][0]["key"] not in caught.value.detail
    assert caught.value.__cause__ is None


def test_key_material_is_not_in_reprs(ring: LocalKeyring, path: Path) -> None:
    material = document(path)["keys"][0]["key"]
    raw = base64.b64decode(material)
    text = repr(ring.__dict__)
    assert material not in text and repr(raw) not in text and raw.hex() not in text


def test_the_keyring_file_is_replaced_not_edited(ring: LocalKeyring, path: Path) -> None:
    before = os.stat(path).st_ino
    ring.rotate()
    assert os.stat(path).st_ino != before
