"""gateway.storage.vault: per-object keys, bound contexts, and every way a blob can be abused."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.errors import DecryptionError, KeyProviderError, NotFound, UploadTooLarge
from gateway.storage.factory import build_local
from gateway.storage.keyring import LocalKeyring
from gateway.storage.local import LocalBlobStore
from gateway.storage.vault import SealContext, SealedObject, Vault

pytestmark = pytest.mark.unit

KIB, MIB = 1 << 10, 1 << 20
SEALED_CHUNK = 16 * KIB + 16
HEADER = 4 + 56
CTX = SealContext(object_id="obj-1", dataset_id="ds-1", kind="original", version=1)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[LocalBlobStore, LocalKeyring]:
    return build_local(tmp_path / "data")


@pytest.fixture
def vault(parts: tuple[LocalBlobStore, LocalKeyring]) -> Vault:
    return Vault(*parts)


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def blob_path(vault: Vault, obj: SealedObject) -> Path:
    assert isinstance(vault.store, LocalBlobStore)
    return vault.store.root / obj.blob_key[:2] / obj.blob_key


def edit_blob(vault: Vault, obj: SealedObject, change: Callable[[bytes], bytes]) -> None:
    path = blob_path(vault, obj)
    path.write_bytes(change(path.read_bytes()))


def test_round_trip_and_metadata(vault: Vault) -> None:
    plaintext = data(3 * MIB + 77)
    chunks = [plaintext[i : i + 8 * KIB] for i in range(0, len(plaintext), 8 * KIB)]
    obj = vault.seal(chunks, CTX)
    assert re.fullmatch(r"[0-9a-f]{32}", obj.blob_key)
    assert obj.key_id in vault.keys.key_ids()  # type: ignore[attr-defined]
    assert obj.size == len(plaintext)
    assert obj.sha256 == hashlib.sha256(plaintext).hexdigest()
    assert vault.open_bytes(obj, CTX) == plaintext
    assert b"".join(vault.open(obj, CTX)) == plaintext


def test_empty_object(vault: Vault) -> None:
    obj = vault.seal([], CTX)
    assert (obj.size, obj.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert vault.open_bytes(obj, CTX) == b""


def test_same_content_never_gives_the_same_key_or_bytes(vault: Vault) -> None:
    first, second = vault.seal([b"same"], CTX), vault.seal([b"same"], CTX)
    assert first.blob_key != second.blob_key
    assert first.wrapped_key != second.wrapped_key
    assert blob_path(vault, first).read_bytes() != blob_path(vault, second).read_bytes()


def test_disk_holds_no_run_of_the_plaintext(vault: Vault) -> None:
    # Low-entropy, recognisable content: what a forgotten encryption would expose.
    plaintext = b"PATIENT^NAME=DOE^JOHN;ID=123456789;" * 3000
    obj = vault.seal([plaintext], CTX)
    on_disk = b"".join(p.read_bytes() for p in vault.store.root.rglob("*") if p.is_file())  # type: ignore[attr-defined]
    assert len(on_disk) > len(plaintext)
    assert plaintext[:16] not in on_disk
    disk_runs = {on_disk[i : i + 64] for i in range(len(on_disk) - 63)}
    assert not any(plaintext[i : i + 64] in disk_runs for i in range(len(plaintext) - 63))
    assert vault.open_bytes(obj, CTX) == plaintext


SIZE = 6 * 16 * KIB + 999  # six full chunks and a partial last one


@pytest.mark.parametrize(
    "position",
    [0, 3, 4, HEADER - 1, HEADER, HEADER + SEALED_CHUNK - 1, HEADER + 3 * SEALED_CHUNK, -1],
    ids=["magic", "magic-end", "header", "header-end", "first-byte", "first-tag", "middle", "last"],
)
def test_a_flipped_bit_is_refused(vault: Vault, position: int) -> None:
    obj = vault.seal([data(SIZE)], CTX)

    def flip(blob: bytes) -> bytes:
        changed = bytearray(blob)
        changed[position] ^= 0x04
        return bytes(changed)

    edit_blob(vault, obj, flip)
    with pytest.raises(DecryptionError):
        vault.open_bytes(obj, CTX)


@pytest.mark.parametrize(
    "change",
    [
        lambda blob: blob[:-1],  # truncated by one byte
        lambda blob: blob[:-SEALED_CHUNK],  # truncated by a whole chunk
        lambda blob: blob[: HEADER + 2 * SEALED_CHUNK],  # cut at a chunk boundary
        lambda blob: b"",  # truncated to nothing
        lambda blob: blob + b"\x00",  # appended byte
        lambda blob: blob + blob[-SEALED_CHUNK:],  # replayed last chunk
    ],
    ids=["minus-1", "minus-chunk", "at-boundary", "empty", "plus-1", "replayed-chunk"],
)
def test_truncated_or_extended_blobs_are_refused(
    vault: Vault, change: Callable[[bytes], bytes]
) -> None:
    obj = vault.seal([data(SIZE)], CTX)
    edit_blob(vault, obj, change)
    with pytest.raises(DecryptionError):
        vault.open_bytes(obj, CTX)


def test_swapped_blobs_are_refused(vault: Vault) -> None:
    ctx_b = dataclasses.replace(CTX, object_id="obj-2")
    a, b = vault.seal([b"a" * 1000], CTX), vault.seal([b"b" * 1000], ctx_b)
    path_a, path_b = blob_path(vault, a), blob_path(vault, b)
    blob_a, blob_b = path_a.read_bytes(), path_b.read_bytes()
    path_a.write_bytes(blob_b)
    path_b.write_bytes(blob_a)
    for obj, ctx in ((a, CTX), (b, ctx_b)):
        with pytest.raises(DecryptionError):
            vault.open_bytes(obj, ctx)


def test_a_row_pointing_at_another_objects_blob_or_key_is_refused(vault: Vault) -> None:
    ctx_b = dataclasses.replace(CTX, object_id="obj-2")
    a, b = vault.seal([b"a" * 1000], CTX), vault.seal([b"b" * 1000], ctx_b)
    for forged in (
        dataclasses.replace(a, blob_key=b.blob_key),  # a's key, b's blob
        dataclasses.replace(a, wrapped_key=b.wrapped_key),  # b's key, a's blob
        b,  # b entirely, presented as a
    ):
        with pytest.raises(DecryptionError):
            vault.open_bytes(forged, CTX)


@pytest.mark.parametrize(
    "change",
    [
        {"object_id": "obj-2"},  # moved to another object
        {"dataset_id": "ds-2"},  # moved to another dataset
        {"kind": "derivative"},  # an original passed off as a derivative
        {"version": 2},  # rolled forward
        {"version": 0},  # rolled back
    ],
)
def test_every_context_field_is_bound(vault: Vault, change: dict[str, object]) -> None:
    obj = vault.seal([b"bound"], CTX)
    with pytest.raises(DecryptionError):
        vault.open_bytes(obj, dataclasses.replace(CTX, **change))  # type: ignore[arg-type]


def test_a_rolled_back_version_is_refused(vault: Vault) -> None:
    v1 = vault.seal([b"version 1"], CTX)
    v2_ctx = dataclasses.replace(CTX, version=2)
    v2 = vault.seal([b"version 2"], v2_ctx)
    blob_path(vault, v2).write_bytes(blob_path(vault, v1).read_bytes())
    with pytest.raises(DecryptionError):
        vault.open_bytes(v2, v2_ctx)
    with pytest.raises(DecryptionError):
        vault.open_bytes(dataclasses.replace(v1, blob_key=v2.blob_key), v2_ctx)


def test_a_wrong_data_key_is_refused(vault: Vault, tmp_path: Path) -> None:
    obj = vault.seal([b"x" * 5000], CTX)
    other = Vault(vault.store, LocalKeyring.open_or_create(tmp_path / "other" / "keyring.json"))
    with pytest.raises(DecryptionError):
        other.open_bytes(obj, CTX)  # same KEK id scheme, different KEK
    corrupted = bytearray(obj.wrapped_key)
    corrupted[20] ^= 1
    with pytest.raises(DecryptionError):
        vault.open_bytes(dataclasses.replace(obj, wrapped_key=bytes(corrupted)), CTX)


def test_rotation_keeps_old_objects_readable(vault: Vault) -> None:
    keys = vault.keys
    assert isinstance(keys, LocalKeyring)
    old = vault.seal([b"before"], CTX)
    new_id = keys.rotate()
    new = vault.seal([b"after"], CTX)
    assert new.key_id == new_id != old.key_id
    assert vault.open_bytes(old, CTX) == b"before"
    assert vault.open_bytes(new, CTX) == b"after"


def test_a_destroyed_kek_shreds_its_objects(vault: Vault) -> None:
    keys = vault.keys
    assert isinstance(keys, LocalKeyring)
    doomed = vault.seal([b"shred me"], CTX)
    keys.rotate()
    kept = vault.seal([b"keep me"], CTX)
    keys.destroy(doomed.key_id)
    with pytest.raises(DecryptionError):
        vault.open_bytes(doomed, CTX)
    assert vault.open_bytes(kept, CTX) == b"keep me"


def test_open_fails_before_the_first_byte_when_it_can(vault: Vault) -> None:
    obj = vault.seal([data(SIZE)], CTX)
    with pytest.raises(DecryptionError):
        vault.open(obj, dataclasses.replace(CTX, version=9))  # no iteration needed
    edit_blob(vault, obj, lambda blob: blob[:10] + bytes([blob[10] ^ 1]) + blob[11:])
    with pytest.raises(DecryptionError):
        vault.open(obj, CTX)


def test_late_truncation_is_reported_at_the_end_of_the_stream(vault: Vault) -> None:
    plaintext = data(SIZE)
    obj = vault.seal([plaintext], CTX)
    edit_blob(vault, obj, lambda blob: blob[: HEADER + 3 * SEALED_CHUNK])
    stream = vault.open(obj, CTX)  # the first chunks are authentic
    released = b""
    with pytest.raises(DecryptionError):
        for piece in stream:
            released += piece
    assert plaintext.startswith(released)


def test_recorded_size_must_match(vault: Vault) -> None:
    obj = vault.seal([b"12345"], CTX)
    for size in (4, 6):
        with pytest.raises(DecryptionError):
            vault.open_bytes(dataclasses.replace(obj, size=size), CTX)


def test_failed_seal_stores_nothing_and_propagates(vault: Vault) -> None:
    error = UploadTooLarge("limit exceeded")

    def upload() -> Iterator[bytes]:
        yield b"x" * MIB
        yield b"y" * MIB
        raise error

    with pytest.raises(UploadTooLarge) as caught:
        vault.seal(upload(), CTX)
    assert caught.value is error
    assert list(vault.store.keys()) == []
    assert [p for p in vault.store.root.rglob("*") if p.is_file()] == []  # type: ignore[attr-defined]


def test_seal_wraps_first_so_a_dead_key_provider_stores_nothing(vault: Vault) -> None:
    keys = vault.keys
    assert isinstance(keys, LocalKeyring)
    keys.path.unlink()
    with pytest.raises(KeyProviderError):
        vault.seal([b"x"], CTX)
    assert list(vault.store.keys()) == []


def test_destroy_removes_the_blob(vault: Vault) -> None:
    obj = vault.seal([b"gone"], CTX)
    vault.destroy(obj)
    vault.destroy(obj)
    assert list(vault.store.keys()) == []
    with pytest.raises(NotFound):
        vault.open(obj, CTX)


def test_seal_and_open_stream_in_bounded_memory(vault: Vault) -> None:
    total = 32 * MIB

    def upload() -> Iterator[bytes]:
        piece = b"\x5a" * (64 * KIB)
        for _ in range(total // len(piece)):
            yield piece

    tracemalloc.start()
    try:
        obj = vault.seal(upload(), CTX)
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert sum(len(piece) for piece in vault.open(obj, CTX)) == total
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seal_peak < 8 * MIB
    assert open_peak < 8 * MIB


# SealContext


def test_aad_is_canonical_and_domain_separated() -> None:
    assert CTX.aad() == (
        b'gateway/seal/v1\n{"dataset_id":"ds-1","kind":"original","object_id":"obj-1","version":1}'
    )


def test_aad_is_unambiguous() -> None:
    one = SealContext(object_id='a","dataset_id":"b', dataset_id="c", kind="original", version=1)
    two = SealContext(object_id="a", dataset_id='b","x":"c', kind="original", version=1)
    assert one.aad() != two.aad()
    assert len({one.aad(), two.aad(), CTX.aad()}) == 3


@pytest.mark.parametrize(
    "fields",
    [
        {"object_id": ""},
        {"dataset_id": ""},
        {"object_id": 5},
        {"kind": ""},
        {"kind": "Original"},
        {"kind": "x" * 40},
        {"version": -1},
        {"version": True},
        {"version": "1"},
    ],
)
def test_invalid_contexts_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(CTX, **fields)  # type: ignore[arg-type]
