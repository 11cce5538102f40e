"""What annotators are served: the anonymized derivative of an item, never its original."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from gateway.anonymize.inspect import inspect_image
from gateway.db.models import Item, SealedBlob
from gateway.errors import Conflict
from gateway.runtime import Runtime
from gateway.sealing import open_blob


def derivative_blob(session: Session, item: Item) -> SealedBlob:
    """The item's anonymized copy; an item without one (not ready, quarantined, erased)
    has nothing to serve."""
    blob = session.get(SealedBlob, item.derivative_id) if item.derivative_id else None
    if item.status != "ready" or blob is None or blob.state != "stored":
        raise Conflict("the item has no anonymized copy to serve", reason="not_ready")
    return blob


def derivative_chunks(runtime: Runtime, session: Session, item: Item) -> Iterator[bytes]:
    return open_blob(runtime, derivative_blob(session, item), session)


def image_size(runtime: Runtime, item: Item, session: Session) -> tuple[int, int]:
    """Width and height of the item's anonymized image (annotations are checked
    against it)."""
    data = b"".join(derivative_chunks(runtime, session, item))
    info = inspect_image(data, runtime.policy.image.max_pixels)
    return info.width, info.height
