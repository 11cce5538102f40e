"""The auditor's view of the audit log. Reading it is itself audited."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from audit import AuditQuery
from gateway.api import context, schemas
from gateway.api.endpoint import endpoint
from gateway.auditing import sequence_now

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
