"""The auditor's view of the audit log. Reading it is itself audited."""

from __future__ import annotations

import tempfile
from typing import Any

from flask import Blueprint, Response, jsonify

from audit.export import write_csv, write_export
from audit.store import AuditQuery
from gateway.api import context, schemas
from gateway.api.endpoint import PUBLIC, endpoint
from gateway.auditing import sequence_now
from gateway.checkpoints import make_checkpoint, public_key

bp = Blueprint("audit", __name__, url_prefix="/v1/audit")


@endpoint(bp, "GET", "/events", permission="audit:read", event="auditor:audit:viewed",
          summary="Filter the audit log (actor, action, object, dataset, outcome, time range)",
          query=schemas.AUDIT_QUERY,
          responses={200: ("A page of events, oldest first",
                           schemas.page_of(schemas.AUDIT_EVENT))})
def list_events(query: dict[str, Any]) -> Any:
    rt = context.runtime()
    limit = query.get("limit", 100)
    q = AuditQuery(
        actor_id=query.get("actor"),
        action=query.get("action"),
        object_id=query.get("object"),
        dataset_id=query.get("dataset"),
        outcome=query.get("outcome"),
        since=query.get("since"),
        until=query.get("until"),
        after=query.get("after", -1),
        limit=limit,
    )
    # Sequence, read, then record the read: the page shows the log as it was when asked.
    context.session().commit()
    sequence_now(rt.engine, rt.audit)
    records = rt.audit.query(context.session().connection(), q)
    context.audit_ok(object_type="audit")
    return jsonify({"items": [r.as_dict() for r in records],
                    "next": records[-1].position if len(records) == limit else None})


@endpoint(bp, "GET", "/public-key", permission=PUBLIC, event=None,
          summary="The log's verifier key (C2SP signed-note vkey), to check checkpoints",
          responses={200: ("The verifier key", schemas.VKEY)})
def get_public_key() -> Any:
    rt = context.runtime()
    return jsonify({"origin": rt.settings.audit_origin, "vkey": public_key(rt)})


@endpoint(bp, "GET", "/checkpoint", permission="audit:read", event="auditor:checkpoint:viewed",
          summary="A signed checkpoint of the log as it is now (made on demand)",
          responses={200: ("The signed note", schemas.CHECKPOINT)})
def get_checkpoint() -> Any:
    rt = context.runtime()
    context.session().commit()
    note = make_checkpoint(rt)
    context.audit_ok(object_type="checkpoint")
    return jsonify({"note": note})


@endpoint(bp, "GET", "/export", permission="audit:read", event="auditor:audit:exported",
          summary="The whole log up to a fresh checkpoint, for offline `audit verify`",
          query=schemas.EXPORT_QUERY,
          responses={200: ("JSONL (verifiable) or CSV (for reading)", None)})
def export(query: dict[str, Any]) -> Any:
    rt = context.runtime()
    fmt = query.get("format", "jsonl")
    context.session().commit()
    make_checkpoint(rt)
    spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by stream()
        max_size=8 * 1024 * 1024, mode="w+", encoding="utf-8")
    with rt.engine.connect() as conn:
        size = rt.audit.latest_checkpoint_size(conn) or 0
        records = rt.audit.records(conn, size)
        if fmt == "csv":
            write_csv(records, spool)
        else:
            notes = list(reversed(rt.audit.checkpoints(conn)))
            write_export(records, notes, public_key(rt), spool)
    spool.seek(0)
    context.audit_ok(object_type="audit", refs={"size": str(size)})
    media = "text/csv" if fmt == "csv" else "application/jsonl"

    def stream() -> Any:
        with spool:
            while chunk := spool.read(256 * 1024):
                yield chunk

    name = f"audit-{size}.{'csv' if fmt == 'csv' else 'jsonl'}"
    return Response(stream(), mimetype=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
