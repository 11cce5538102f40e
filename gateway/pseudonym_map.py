"""The old -> new patient id mapping of DICOM items: sealed, exported only on purpose.

The original ids are as identifying as the originals, so each item's pairs are sealed as
a blob of kind ``mapping`` under the dataset's key (shredded with the dataset) and never
logged, reported or audited. The export is a CSV with the header ``id_old,id_new`` (the
format the MIDI-B validator reads), one row per distinct pair in the dataset, sorted by
``id_new``; the route serving it requires ``mapping:read``.
"""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db.models import Item, SealedBlob
from gateway.errors import DecryptionError
from gateway.runtime import Runtime
from gateway.sealing import blob_context, open_blob, seal_blob

KIND = "mapping"


def seal_mapping(runtime: Runtime, dataset_id: str, patients: dict[str, str]) -> SealedBlob:
    """Seal one item's pairs (pending until the item's commit keeps it)."""
    pairs = sorted([old, new] for old, new in patients.items())
    payload = json.dumps({"pairs": pairs}, separators=(",", ":")).encode("utf-8")
    return seal_blob(runtime, [payload], blob_context(dataset_id, KIND))


def mapping_pairs(runtime: Runtime, session: Session, dataset_id: str) -> list[tuple[str, str]]:
    """Every distinct (id_old, id_new) pair of the dataset's items."""
    blobs = session.scalars(
        select(SealedBlob).join(Item, Item.mapping_id == SealedBlob.id)
        .where(Item.dataset_id == dataset_id, SealedBlob.state == "stored")
    ).all()
    pairs: set[tuple[str, str]] = set()
    for blob in blobs:
        data = json.loads(b"".join(open_blob(runtime, blob, session)))
        if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
            raise DecryptionError()
        pairs.update((str(old), str(new)) for old, new in data["pairs"])
    return sorted(pairs, key=lambda p: (p[1], p[0]))


def mapping_csv(pairs: list[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id_old", "id_new"])
    writer.writerows(pairs)
    return out.getvalue()
