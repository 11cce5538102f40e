"""Annotation projects: create, members, gold items, the pull queue, review, agreement,
export. Who may do what on which project is gateway.annotation.matrix; annotators only
ever reach the anonymized derivative of a task they hold (see assignments.py)."""

from __future__ import annotations

import io
import json
import random
import zipfile
from functools import lru_cache
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from gateway.annotation import queue
from gateway.annotation.agreement import agreement_report
from gateway.annotation.export import ExportImage, to_coco, to_yolo
from gateway.annotation.schema import (
    LabelSchema,
    SchemaError,
    SubmissionError,
    parse_label_schema,
    validate_submission,
)
from gateway.api import context, schemas
from gateway.api.access import visible_dataset
from gateway.api.endpoint import endpoint
from gateway.api.items import EXTENSIONS
from gateway.api.project_access import projects_visible_to_caller, visible_project
from gateway.api.serializers import assignment_json, project_json
from gateway.db.models import Assignment, Item, Principal, Project, ProjectMember, Task, utcnow
from gateway.errors import InvalidRequest, NotFound
from gateway.media import image_size

bp = Blueprint("projects", __name__, url_prefix="/v1/projects")


def label_schema(project: Project) -> LabelSchema:
    return _parsed_schema(project.label_schema)


@lru_cache(maxsize=256)
def _parsed_schema(text: str) -> LabelSchema:
    """Parsed once per distinct schema text (it is validated and frozen at creation)."""
    return parse_label_schema(json.loads(text))


def checked_annotations(project: Project, task: Task, body: dict[str, Any]) -> str:
    """Validate a submission against the project's vocabulary and the image's size."""
    try:
        normalized = validate_submission(label_schema(project), body, task.width, task.height)
    except SubmissionError as exc:
        raise InvalidRequest("the annotations do not fit the project's label schema",
                             reason="invalid_annotations", problems=exc.problems) from None
    return json.dumps(normalized, sort_keys=True, separators=(",", ":"))


@endpoint(bp, "POST", "", permission="projects:create", event="owner:project:created",
          summary="Create an annotation project over a dataset's ready images",
          body=schemas.PROJECT_CREATE,
          responses={201: ("The project", schemas.PROJECT)})
def create_project(body: dict[str, Any]) -> Any:
    ds = visible_dataset(body["dataset_id"])
    try:
        vocabulary = parse_label_schema(body["label_schema"])
    except SchemaError as exc:
        raise InvalidRequest(f"label_schema: {exc}", reason="bad_label_schema") from None
    project = Project(name=body["name"], dataset_id=ds.id,
                      owner_id=context.identity().principal_id,
                      label_schema=json.dumps(vocabulary.as_json(), sort_keys=True),
                      overlap=body.get("overlap", 1), gold_rate=body.get("gold_rate", 0.0),
                      lease_seconds=body.get("lease_seconds", 900))
    db = context.session()
    db.add(project)
    db.flush()
    _sync_tasks(project)
    context.audit_ok(object_type="project", object_id=project.id, dataset_id=ds.id)
    return jsonify(project_json(project, queue.progress(db, project.id))), 201


def _sync_tasks(project: Project) -> int:
    """A task for every ready image of the project's dataset that has none yet."""
    db = context.session()
    tasked = select(Task.item_id).where(Task.project_id == project.id)
    items = db.scalars(select(Item).where(
        Item.dataset_id == project.dataset_id, Item.status == "ready",
        Item.media_type.like("image/%"), Item.id.not_in(tasked)).order_by(Item.id)).all()
    sized = [(item.id, *image_size(context.runtime(), item, db)) for item in items]
    return queue.add_tasks(db, project, sized)


@endpoint(bp, "GET", "", permission="projects:read", event="owner:project:listed",
          summary="List the projects the caller owns or is a member of",
          responses={200: ("Projects", {"type": "object"})})
def list_projects() -> Any:
    return jsonify({"projects": [project_json(p) for p in projects_visible_to_caller()]})


@endpoint(bp, "GET", "/<project_id>", permission="projects:read", event="owner:project:viewed",
          summary="Show a project and its progress",
          responses={200: ("The project", schemas.PROJECT)})
def get_project(project_id: str) -> Any:
    project = visible_project(project_id)
    return jsonify(project_json(project, queue.progress(context.session(), project.id)))


@endpoint(bp, "POST", "/<project_id>/members", permission="projects:manage",
          event="owner:member:added",
          summary="Add a user to the project as annotator, reviewer or auditor",
          body=schemas.MEMBER_ADD, responses={200: ("The membership", {"type": "object"})})
def add_member(project_id: str, body: dict[str, Any]) -> Any:
    project = visible_project(project_id)
    db = context.session()
    principal = db.get(Principal, body["principal_id"])
    if principal is None:
        raise NotFound("no such user", reason="not_found")
    if principal.role != body["role"]:
        raise InvalidRequest(f"role: the user's role is {principal.role!r}, not "
                             f"{body['role']!r}", reason="role_mismatch")
    member = db.get(ProjectMember, (project.id, principal.id))
    if member is None:
        db.add(ProjectMember(project_id=project.id, principal_id=principal.id,
                             role=body["role"]))
    else:
        member.role = body["role"]
    context.audit_ok(object_type="project", object_id=project.id,
                     dataset_id=project.dataset_id, refs={"member": principal.id})
    return jsonify({"project_id": project.id, "principal_id": principal.id,
                    "role": body["role"]})


@endpoint(bp, "POST", "/<project_id>/tasks/sync", permission="projects:manage",
          event="owner:tasks:synced",
          summary="Add tasks for the dataset's images that became ready since",
          responses={200: ("How many tasks were added", {"type": "object"})})
def sync_tasks(project_id: str) -> Any:
    project = visible_project(project_id)
    return jsonify({"added": _sync_tasks(project)})


@endpoint(bp, "POST", "/<project_id>/gold", permission="projects:manage",
          event="owner:gold:set",
          summary="Make an item a gold item with its known annotations",
          body=schemas.GOLD_SET, responses={200: ("The gold task", {"type": "object"})})
def set_gold(project_id: str, body: dict[str, Any]) -> Any:
    project = visible_project(project_id)
    task = context.session().scalar(select(Task).where(
        Task.project_id == project.id, Task.item_id == body["item_id"]))
    if task is None:
        raise NotFound("the item is not a task of this project", reason="not_found")
    queue.set_gold(context.session(), task, checked_annotations(project, task,
                                                                body["annotation"]))
    context.audit_ok(object_type="project", object_id=project.id,
                     dataset_id=project.dataset_id, refs={"task": task.id})
    return jsonify({"task_id": task.id, "gold": True})


@endpoint(bp, "POST", "/<project_id>/tasks/next", permission="tasks:work",
          event="annotator:task:leased",
          summary="Lease the next task (204 when none is left for the caller)",
          responses={200: ("The leased assignment", schemas.ASSIGNMENT),
                     204: ("Nothing left to annotate for the caller", None)})
def next_task(project_id: str) -> Any:
    project = visible_project(project_id)
    db = context.session()
    lease = queue.lease_next(db, project, context.identity().principal_id, now=utcnow(),
                             rng=random.SystemRandom())
    if lease is None:
        context.audit_ok(object_type="project", object_id=project.id,
                         dataset_id=project.dataset_id, reason="queue_empty")
        return Response(status=204)
    assignment, task = lease
    context.audit_ok(object_type="assignment", object_id=assignment.id,
                     dataset_id=project.dataset_id, refs={"project": project.id})
    return jsonify(assignment_json(assignment, task, project))


@endpoint(bp, "GET", "/<project_id>/submissions", permission="tasks:review",
          event="reviewer:submission:listed",
          summary="Submissions to review (state=submitted by default)",
          query=schemas.SUBMISSIONS_QUERY,
          responses={200: ("A page of submissions", {"type": "object"})})
def list_submissions(project_id: str, query: dict[str, Any]) -> Any:
    project = visible_project(project_id)
    limit = query.get("limit", 100)
    stmt = select(Assignment).where(Assignment.project_id == project.id,
                                    Assignment.state == query.get("state", "submitted"))
    if "after" in query:
        stmt = stmt.where(Assignment.id > query["after"])
    rows = context.session().scalars(stmt.order_by(Assignment.id).limit(limit)).all()
    return jsonify({"submissions": [
        {"assignment_id": a.id, "task_id": a.task_id, "annotator_id": a.annotator_id,
         "state": a.state, "annotation": json.loads(a.annotation or "[]"),
         "review_comment": a.review_comment} for a in rows],
        "next": rows[-1].id if len(rows) == limit else None})


def _annotations_by_item(project: Project, states: tuple[str, ...]
                         ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    rows = context.session().execute(
        select(Assignment.task_id, Assignment.annotator_id, Assignment.annotation)
        .join(Task, Task.id == Assignment.task_id)
        .where(Assignment.project_id == project.id, Assignment.state.in_(states),
               Task.gold.is_(False))).all()
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for task_id, annotator_id, annotation in rows:
        out.setdefault(task_id, {})[annotator_id] = json.loads(annotation or "[]")
    return out


@endpoint(bp, "GET", "/<project_id>/agreement", permission="agreement:read",
          event="reviewer:agreement:viewed",
          summary="Agreement between overlapping annotators per item, annotator, project",
          responses={200: ("The agreement report", {"type": "object"})})
def agreement(project_id: str) -> Any:
    project = visible_project(project_id)
    return jsonify(agreement_report(_annotations_by_item(project, ("submitted", "accepted"))))


@endpoint(bp, "POST", "/<project_id>/exports", permission="export:create",
          event="owner:export:created",
          summary="Export accepted annotations as COCO JSON or YOLO (zip)",
          body=schemas.EXPORT_CREATE,
          responses={200: ("application/json (COCO) or application/zip (YOLO)", None)})
def export(project_id: str, body: dict[str, Any]) -> Any:
    project = visible_project(project_id)
    db = context.session()
    accepted = _annotations_by_item(project, ("accepted",))
    rows = db.execute(select(Task, Item.media_type).join(Item, Item.id == Task.item_id)
                      .where(Task.id.in_(list(accepted))).order_by(Task.id)).all()
    # file names as GET /v1/items/{id}/content names the anonymized copy
    images = [ExportImage(task_id=t.id, item_id=t.item_id,
                          file_name=f"{t.item_id}.{EXTENSIONS.get(media_type, 'bin')}",
                          width=t.width, height=t.height) for t, media_type in rows]
    per_task = {task_id: list(by_annotator.values()) for task_id, by_annotator in
                accepted.items()}
    vocabulary = label_schema(project)
    context.audit_ok(object_type="project", object_id=project.id,
                     dataset_id=project.dataset_id,
                     refs={"format": body["format"], "images": str(len(images))})
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if body["format"] == "coco":
        language = body.get("language", vocabulary.languages[0])
        if language not in vocabulary.languages:
            raise InvalidRequest("language: not one of the schema's languages",
                                 reason="bad_language")
        document = to_coco(vocabulary, images, per_task, language)
        return Response(json.dumps(document), mimetype="application/json", headers=headers)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in sorted(to_yolo(vocabulary, images, per_task).items()):
            zf.writestr(name, text)
    headers["Content-Disposition"] = f'attachment; filename="{project.id}-yolo.zip"'
    return Response(buf.getvalue(), mimetype="application/zip", headers=headers)
