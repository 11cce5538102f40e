"""Enforce gateway.annotation.matrix: look an object up only if the caller may act on it.

Anything refused, including an id that does not exist or names another kind of object
(an item, an original), is "not found" with reason ``not_visible``: audited as denied,
and the caller cannot tell which ids exist.
"""

from __future__ import annotations

from flask import request
from sqlalchemy import select

from gateway.annotation.matrix import ANY, LEASE, MEMBER, OWNER, condition
from gateway.api import context
from gateway.api.endpoint import current_spec
from gateway.db.models import Assignment, Project, ProjectMember
from gateway.errors import NotFound


def _refuse(what: str) -> NotFound:
    return NotFound(f"no such {what}", reason="not_visible")


def _condition() -> str | None:
    rule = request.url_rule.rule if request.url_rule is not None else ""
    return condition(current_spec().method, rule, context.identity().role)


def member_role(project_id: str, principal_id: str) -> str | None:
    return context.session().scalar(select(ProjectMember.role).where(
        ProjectMember.project_id == project_id, ProjectMember.principal_id == principal_id))


def allowed(project: Project, rule_condition: str | None) -> bool:
    ident = context.identity()
    if rule_condition == ANY:
        return True
    if rule_condition == OWNER:
        return ident.role == "admin" or project.owner_id == ident.principal_id
    if rule_condition in (MEMBER, LEASE):
        return member_role(project.id, ident.principal_id) == ident.role
    return False


def visible_project(project_id: str) -> Project:
    context.note(object_id=project_id)
    project = context.session().get(Project, project_id)
    cond = _condition()
    if project is None or cond == LEASE or not allowed(project, cond):
        raise _refuse("project")
    context.note(dataset_id=project.dataset_id)
    return project


def visible_assignment(assignment_id: str) -> tuple[Assignment, Project]:
    context.note(object_id=assignment_id)
    db = context.session()
    assignment = db.get(Assignment, assignment_id)
    project = db.get(Project, assignment.project_id) if assignment is not None else None
    if assignment is None or project is None:
        raise _refuse("assignment")
    cond = _condition()
    if cond == LEASE and assignment.annotator_id != context.identity().principal_id:
        raise _refuse("assignment")
    if not allowed(project, cond):
        raise _refuse("assignment")
    context.note(dataset_id=project.dataset_id)
    return assignment, project


def projects_visible_to_caller() -> list[Project]:
    """GET /v1/projects: admins all, owners theirs, members the projects they are in."""
    ident = context.identity()
    db = context.session()
    stmt = select(Project).order_by(Project.created_at, Project.id)
    if ident.role == "admin":
        return list(db.scalars(stmt))
    if ident.role == "uploader":
        return list(db.scalars(stmt.where(Project.owner_id == ident.principal_id)))
    member_of = select(ProjectMember.project_id).where(
        ProjectMember.principal_id == ident.principal_id, ProjectMember.role == ident.role)
    return list(db.scalars(stmt.where(Project.id.in_(member_of))))
