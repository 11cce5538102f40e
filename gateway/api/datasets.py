"""Datasets: create, list, view; upload items into one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.api import context, schemas
from gateway.api.access import visible_dataset
from gateway.api.endpoint import endpoint
from gateway.api.serializers import dataset_json, item_json
from gateway.auth.roles import sees_all_datasets
from gateway.db.models import Dataset, Item
from gateway.erasure import delete_bytes, erase_dataset
from gateway.errors import Gone, UnsupportedMediaType, UploadTooLarge
from gateway.pseudonym_map import mapping_csv, mapping_pairs
from gateway.sealing import DATASET, discard_blob, keep_blob
from gateway.studies import is_zip, seal_members
from gateway.uploads import DICOM_MIME, limited, multipart_file_chunks, receive_upload

bp = Blueprint("datasets", __name__, url_prefix="/v1/datasets")


@endpoint(bp, "POST", "", permission="datasets:create", event="uploader:dataset:created",
          summary="Create a dataset", body=schemas.DATASET_CREATE,
          responses={201: ("The dataset", schemas.DATASET)})
def create_dataset(body: dict[str, Any]) -> Any:
    rt = context.runtime()
    ds = Dataset(name=body["name"], owner_id=context.identity().principal_id,
                 policy_id=rt.policy.id)
    db = context.session()
    db.add(ds)
    db.flush()
    rt.scope_keys.create(db, DATASET, ds.id)  # crypto-shredding scope: erase = destroy it
    context.audit_ok(object_type="dataset", object_id=ds.id, dataset_id=ds.id,
                     policy_sha256=rt.policy.sha256)
    return jsonify(dataset_json(ds)), 201


@endpoint(bp, "GET", "", permission="datasets:read", event="uploader:dataset:listed",
          summary="List the datasets you can see", query=schemas.PAGE_QUERY,
          responses={200: ("A page of datasets", schemas.page_of(schemas.DATASET))})
def list_datasets(query: dict[str, Any]) -> Any:
    ident = context.identity()
    limit = query.get("limit", 100)
    stmt = select(Dataset).order_by(Dataset.id).limit(limit)
    if not sees_all_datasets(ident.role):
        stmt = stmt.where(Dataset.owner_id == ident.principal_id)
    if "after" in query:
        stmt = stmt.where(Dataset.id > query["after"])
    rows = context.session().scalars(stmt).all()
    return jsonify({"items": [dataset_json(d) for d in rows],
                    "next": rows[-1].id if len(rows) == limit else None})


@endpoint(bp, "GET", "/<dataset_id>", permission="datasets:read",
          event="uploader:dataset:viewed", summary="Show a dataset",
          responses={200: ("The dataset", schemas.DATASET)})
def get_dataset(dataset_id: str) -> Any:
    return jsonify(dataset_json(visible_dataset(dataset_id)))


@endpoint(bp, "DELETE", "/<dataset_id>", permission="datasets:erase",
          event="admin:dataset:erased",
          summary="Erase a dataset by destroying its key (crypto-shredding); irreversible",
          responses={200: ("The erasure certificate (also in the audit log)",
                           schemas.ERASURE)})
def erase(dataset_id: str) -> Any:
    rt = context.runtime()
    ds = visible_dataset(dataset_id)
    certificate, blob_keys = erase_dataset(rt, context.session(), ds)
    context.audit_ok(object_type="dataset", object_id=ds.id, dataset_id=ds.id, refs=certificate)
    context.session().commit()
    delete_bytes(rt, blob_keys)
    return jsonify({"dataset_id": ds.id, **certificate})


@endpoint(bp, "GET", "/<dataset_id>/pseudonym-map", permission="mapping:read",
          event="custodian:mapping:exported",
          summary="Export the DICOM patient id mapping as CSV id_old,id_new (identifying!)",
          responses={200: ("text/csv with the header id_old,id_new", None)})
def pseudonym_map(dataset_id: str) -> Any:
    rt = context.runtime()
    ds = visible_dataset(dataset_id)
    if ds.erased_at is not None:
        raise Gone("the dataset was erased", reason="erased")
    pairs = mapping_pairs(rt, context.session(), ds.id)
    context.audit_ok(object_type="dataset", object_id=ds.id, dataset_id=ds.id,
                     refs={"rows": str(len(pairs))})
    headers = {"Content-Disposition": f'attachment; filename="{ds.id}-pseudonyms.csv"',
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return Response(mapping_csv(pairs), mimetype="text/csv", headers=headers)


@endpoint(bp, "POST", "/<dataset_id>/items", permission="items:create",
          event="uploader:item:uploaded",
          summary="Upload one image or DICOM file (multipart/form-data, part 'file'); "
                  "processed asynchronously",
          body=None, request_media="multipart/form-data",
          responses={202: ("Accepted; poll the item until it is ready or quarantined",
                           schemas.ITEM)})
def upload_item(dataset_id: str) -> Any:
    rt = context.runtime()
    ds = _writable_dataset(dataset_id)
    body = _request_body(rt)
    blob, media_type = receive_upload(rt, body, request.content_type, ds.id)
    item = _store_items(rt, ds.id, [(blob, media_type)], lambda items: context.audit_ok(
        object_type="item", object_id=items[0].id, dataset_id=ds.id,
        content_sha256=blob.sha256, policy_sha256=rt.policy.sha256))[0]
    if rt.jobs is not None:
        rt.jobs.submit(item.id)
    return jsonify(item_json(item)), 202, {"Location": f"/v1/items/{item.id}"}


@endpoint(bp, "POST", "/<dataset_id>/studies", permission="items:create",
          event="uploader:study:uploaded",
          summary="Upload a study as one zip archive (multipart/form-data, part 'file'): "
                  "every DICOM member becomes an item; UID relations are kept",
          body=None, request_media="multipart/form-data",
          responses={202: ("Accepted: the items created and how many members were skipped",
                           schemas.STUDY_UPLOAD)})
def upload_study(dataset_id: str) -> Any:
    rt = context.runtime()
    ds = _writable_dataset(dataset_id)
    body = _request_body(rt)
    archive = b"".join(limited(multipart_file_chunks(body, request.content_type),
                               rt.settings.max_upload_bytes))
    if not is_zip(archive[:4]):
        raise UnsupportedMediaType("send the study as a zip archive",
                                   reason="unsupported_type")
    unpacked = seal_members(rt, archive, ds.id)
    del archive

    def audit(items: list[Item]) -> None:
        ids = "\n".join(sorted(i.id for i in items)).encode()
        context.audit_ok(object_type="dataset", object_id=ds.id, dataset_id=ds.id,
                         policy_sha256=rt.policy.sha256,
                         refs={"items": str(len(items)), "skipped": str(unpacked.skipped),
                               "items_sha256": hashlib.sha256(ids).hexdigest()})

    items = _store_items(rt, ds.id, [(b, DICOM_MIME) for b in unpacked.blobs], audit)
    if rt.jobs is not None:
        for item in items:
            rt.jobs.submit(item.id)
    return jsonify({"items": [item_json(i) for i in items], "skipped": unpacked.skipped}), 202


def _writable_dataset(dataset_id: str) -> Dataset:
    ds = visible_dataset(dataset_id)
    if ds.erased_at is not None:
        raise Gone("the dataset was erased", reason="erased")
    # Close the read transaction before streaming: on SQLite it holds the write lock.
    context.session().commit()
    return ds


def _request_body(rt: Any) -> Any:
    try:
        return request.stream
    except RequestEntityTooLarge:  # Content-Length above the limit: refused before reading
        raise UploadTooLarge(f"the file exceeds the limit of {rt.settings.max_upload_bytes} "
                             "bytes", reason="too_large") from None


def _store_items(rt: Any, dataset_id: str, sealed: list[tuple[Any, str]],
                 audit: Callable[[list[Item]], None]) -> list[Item]:
    """Keep the sealed originals, add one received item each, audit, commit: all or
    nothing (on any failure the blobs are discarded, so nothing is half-stored)."""
    db = context.session()
    items = []
    try:
        for blob, media_type in sealed:
            keep_blob(db, blob)
            db.flush()
            item = Item(dataset_id=dataset_id, status="received", media_type=media_type,
                        size=blob.size, sha256=blob.sha256, policy_sha256=rt.policy.sha256,
                        uploaded_by=context.identity().principal_id, original_id=blob.id)
            db.add(item)
            items.append(item)
        db.flush()
        audit(items)
        db.commit()
    except BaseException:
        db.rollback()
        for blob, _ in sealed:
            discard_blob(rt, blob)
        raise
    return items


@endpoint(bp, "GET", "/<dataset_id>/items", permission="items:read",
          event="uploader:item:listed", summary="List a dataset's items",
          query=schemas.PAGE_QUERY,
          responses={200: ("A page of items", schemas.page_of(schemas.ITEM))})
def list_items(dataset_id: str, query: dict[str, Any]) -> Any:
    ds = visible_dataset(dataset_id)
    limit = query.get("limit", 100)
    stmt = select(Item).where(Item.dataset_id == ds.id).order_by(Item.id).limit(limit)
    if "after" in query:
        stmt = stmt.where(Item.id > query["after"])
    rows = context.session().scalars(stmt).all()
    return jsonify({"items": [item_json(i) for i in rows],
                    "next": rows[-1].id if len(rows) == limit else None})
