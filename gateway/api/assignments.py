"""One annotator's lease: renew, release, skip, submit, fetch its media; and review.

The media route is the only way an annotator reaches pixels: the anonymized derivative
of the task they hold, while the lease is live; every fetch is audited. No route here
takes an item id, so no annotation endpoint can address an original.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Blueprint, Response, jsonify

from gateway.annotation import queue
from gateway.api import context, schemas
from gateway.api.endpoint import endpoint
from gateway.api.project_access import Visible, visible_assignment
from gateway.api.projects import checked_annotations
from gateway.api.serializers import assignment_json
from gateway.db.models import Assignment, Item, utcnow
from gateway.errors import Conflict
from gateway.media import derivative_blob, derivative_chunks

bp = Blueprint("assignments", __name__, url_prefix="/v1/assignments")


def _live(assignment: Assignment) -> bool:
    expires = assignment.lease_expires_at
    if expires is None:
        return False
    if expires.tzinfo is None:  # SQLite hands back naive UTC datetimes
        expires = expires.replace(tzinfo=UTC)
    return expires > utcnow()


def _reply(visible: Visible) -> Any:
    return jsonify(assignment_json(visible.assignment, visible.task, visible.project))


@endpoint(bp, "POST", "/<assignment_id>/renew", permission="tasks:work",
          event="annotator:lease:renewed", summary="Extend the caller's lease",
          responses={200: ("The assignment", schemas.ASSIGNMENT)})
def renew(assignment_id: str) -> Any:
    visible = visible_assignment(assignment_id)
    queue.renew(context.session(), visible.assignment, now=utcnow())
    return _reply(visible)


@endpoint(bp, "POST", "/<assignment_id>/release", permission="tasks:work",
          event="annotator:lease:released", summary="Give the task back to the queue",
          responses={200: ("The assignment", schemas.ASSIGNMENT)})
def release(assignment_id: str) -> Any:
    visible = visible_assignment(assignment_id)
    queue.release(context.session(), visible.assignment, now=utcnow())
    return _reply(visible)


@endpoint(bp, "POST", "/<assignment_id>/skip", permission="tasks:work",
          event="annotator:task:skipped",
          summary="Skip the task: back to the queue, never offered to the caller again",
          responses={200: ("The assignment", schemas.ASSIGNMENT)})
def skip(assignment_id: str) -> Any:
    visible = visible_assignment(assignment_id)
    queue.skip(context.session(), visible.assignment, now=utcnow())
    return _reply(visible)


@endpoint(bp, "POST", "/<assignment_id>/submit", permission="tasks:work",
          event="annotator:task:submitted",
          summary="Submit annotations (validated against the project's label schema)",
          body=schemas.SUBMISSION,
          responses={200: ("The assignment", schemas.ASSIGNMENT),
                     400: ("Annotations that do not fit: every problem with its path", None)})
def submit(assignment_id: str, body: dict[str, Any]) -> Any:
    visible = visible_assignment(assignment_id)
    annotation = checked_annotations(visible.project, visible.task, body)
    queue.submit(context.session(), visible.assignment, annotation, now=utcnow())
    return _reply(visible)


@endpoint(bp, "GET", "/<assignment_id>/media", permission="tasks:work",
          event="annotator:media:viewed",
          summary="The anonymized image of the caller's leased task (while the lease lasts)",
          responses={200: ("The anonymized image", None),
                     409: ("The lease expired or ended", None)})
def media(assignment_id: str) -> Any:
    assignment, _, task = visible_assignment(assignment_id)
    if assignment.state != "leased" or not _live(assignment):
        raise Conflict("the lease is not live; lease a task again", reason="lease_expired")
    db = context.session()
    item = db.get(Item, task.item_id)
    assert item is not None
    blob = derivative_blob(db, item)
    chunks = derivative_chunks(context.runtime(), db, item)
    context.audit_ok(object_type="assignment", object_id=assignment.id,
                     content_sha256=blob.sha256)
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return Response(chunks, mimetype=item.media_type, headers=headers)


@endpoint(bp, "POST", "/<assignment_id>/review", permission="tasks:review",
          event="reviewer:submission:reviewed",
          summary="Accept or reject a submission; rejected work goes back to the queue",
          body=schemas.REVIEW, responses={200: ("The assignment", schemas.ASSIGNMENT)})
def review(assignment_id: str, body: dict[str, Any]) -> Any:
    visible = visible_assignment(assignment_id)
    assignment = visible.assignment
    queue.review(context.session(), assignment, context.identity().principal_id,
                 body["decision"] == "accept", body.get("comment"), now=utcnow())
    context.audit_ok(object_type="assignment", object_id=assignment.id,
                     refs={"decision": body["decision"]})
    return _reply(visible)
