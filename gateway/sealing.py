"""Sealed blobs as database rows: the bridge between the vault and the models.

The row id is the object id bound into the associated data, so a row pointing at
another row's blob (swap, move, rollback) fails to open.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.db.models import SealedBlob, new_id
from gateway.runtime import Runtime
from gateway.storage.vault import SealContext, SealedObject


def blob_context(dataset_id: str, kind: str, version: int = 1) -> SealContext:
    return SealContext(object_id=new_id(), dataset_id=dataset_id, kind=kind, version=version)


def _context(blob: SealedBlob) -> SealContext:
    return SealContext(
        object_id=blob.id, dataset_id=blob.dataset_id, kind=blob.kind, version=blob.version
    )


def _sealed(blob: SealedBlob) -> SealedObject:
    return SealedObject(
        blob_key=blob.blob_key,
        key_id=blob.key_id,
        wrapped_key=blob.wrapped_key,
        size=blob.size,
        sha256=blob.sha256,
    )


def seal_blob(runtime: Runtime, chunks: Iterable[bytes], ctx: SealContext) -> SealedBlob:
    """Seal ``chunks`` into the store and return the (not yet added) row describing them."""
    sealed = runtime.vault.seal(chunks, ctx)
    return SealedBlob(
        id=ctx.object_id,
        dataset_id=ctx.dataset_id,
        kind=ctx.kind,
        version=ctx.version,
        store=runtime.store.name,
        blob_key=sealed.blob_key,
        key_id=sealed.key_id,
        wrapped_key=sealed.wrapped_key,
        size=sealed.size,
        sha256=sealed.sha256,
    )


def open_blob(runtime: Runtime, blob: SealedBlob) -> Iterator[bytes]:
    return runtime.vault.open(_sealed(blob), _context(blob))


def destroy_blob(runtime: Runtime, blob: SealedBlob) -> None:
    runtime.vault.destroy(_sealed(blob))
