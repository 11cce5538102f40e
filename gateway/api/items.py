"""Items: status, the anonymized copy, its report, and (custodians only) the original."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from gateway.api import context, schemas
from gateway.api.access import visible_item
from gateway.api.endpoint import endpoint
from gateway.api.serializers import item_json
from gateway.db.models import Item, SealedBlob
from gateway.errors import Conflict, Quarantined
from gateway.sealing import open_blob

bp = Blueprint("items", __name__, url_prefix="/v1/items")

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
               "image/tiff": "tiff", "image/bmp": "bmp", "application/dicom": "dcm"}


@endpoint(bp, "GET", "/<item_id>", permission="items:read", event="uploader:item:viewed",
          summary="Show an item and its processing status",
          responses={200: ("The item", schemas.ITEM)})
def get_item(item_id: str) -> Any:
    return jsonify(item_json(visible_item(item_id)))


def _ready_blob(item: Item, which: str) -> SealedBlob:
    if item.status == "quarantined":
        raise Quarantined("the item is quarantined and has no anonymized copy",
                          reason=item.quarantine_reason)
    blob_id = item.derivative_id if which == "derivative" else item.report_id
    if item.status != "ready" or blob_id is None:
        raise Conflict("the item is not ready yet; poll its status", reason="not_ready")
    blob = context.session().get(SealedBlob, blob_id)
    assert blob is not None
    return blob


def _attachment(chunks: Iterator[bytes], media_type: str, name: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"',
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return Response(chunks, mimetype=media_type, headers=headers)


@endpoint(bp, "GET", "/<item_id>/content", permission="media:read",
          event="uploader:media:downloaded",
          summary="Download the anonymized copy (only when the item is ready)",
          responses={200: ("The anonymized file, same format as uploaded", None),
                     409: ("Not ready, or quarantined", None)})
def get_content(item_id: str) -> Any:
    item = visible_item(item_id)
    blob = _ready_blob(item, "derivative")
    # the vault opens the first chunk now: a broken blob fails before the read is audited
    chunks = open_blob(context.runtime(), blob, context.session())
    context.audit_ok(object_type="item", object_id=item.id, dataset_id=item.dataset_id,
                     content_sha256=blob.sha256)
    ext = EXTENSIONS.get(item.media_type, "bin")
    return _attachment(chunks, item.media_type, f"{item.id}.{ext}")


@endpoint(bp, "GET", "/<item_id>/report", permission="media:read",
          event="uploader:report:viewed",
          summary="The anonymization report: detectors, regions, metadata removed, timings",
          responses={200: ("The report", {"type": "object"})})
def get_report(item_id: str) -> Any:
    item = visible_item(item_id)
    blob = _ready_blob(item, "report")
    report = json.loads(b"".join(open_blob(context.runtime(), blob, context.session())))
    context.audit_ok(object_type="item", object_id=item.id, dataset_id=item.dataset_id,
                     content_sha256=blob.sha256)
    return jsonify(report)


@endpoint(bp, "GET", "/<item_id>/original", permission="originals:read",
          event="custodian:original:viewed",
          summary="Download the sealed original (needs originals:read)",
          responses={200: ("The original upload", None)})
def get_original(item_id: str) -> Any:
    item = visible_item(item_id)
    blob = context.session().get(SealedBlob, item.original_id) if item.original_id else None
    if blob is None:
        raise Conflict("the original is not kept for this item", reason="original_not_kept")
    # the vault opens the first chunk now: a broken blob fails before the read is audited
    chunks = open_blob(context.runtime(), blob, context.session())
    context.audit_ok(object_type="item", object_id=item.id, dataset_id=item.dataset_id,
                     content_sha256=blob.sha256)
    ext = EXTENSIONS.get(item.media_type, "bin")
    return _attachment(chunks, item.media_type, f"{item.id}-original.{ext}")
