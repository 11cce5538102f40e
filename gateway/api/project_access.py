"""Enforce gateway.annotation.matrix: look an object up only if the caller may act on it.

Anything refused, including an id that does not exist or names another kind of object
(an item, an original), is "not found" with reason ``not_visible``: audited as denied,
and the caller cannot tell which ids exist.
"""

from __future__ import annotations

from typing import NamedTuple

from flask import request
from sqlalchemy import bindparam, select

from gateway.annotation.matrix import ANY, LEASE, MEMBER, OWNER, condition
from gateway.api import context
from gateway.api.endpoint import current_spec
from gateway.db.models import Assignment, Project, ProjectMember, Task
from gateway.errors import NotFound


def _refuse(what: str) -> NotFound:
    return NotFound(f"no such {what}", reason="not_visible")


def _condition() -> str | None:
    rule = request.url_rule.rule if request.url_rule is not None else ""
    return condition(current_spec().method, rule, context.identity().role)


# The caller's role in the project of the row being selected (NULL if none), as a column
# of the same query: one round trip resolves the object and the membership. Both lookups
# run on every annotation request, so they are built once, with bound parameters.
_CALLER_ROLE = select(ProjectMember.role).where(
    ProjectMember.project_id == Project.id,
    ProjectMember.principal_id == bindparam("caller")).scalar_subquery()
_PROJECT = select(Project, _CALLER_ROLE).where(Project.id == bindparam("project_id"))
_ASSIGNMENT = (select(Assignment, Project, Task, _CALLER_ROLE)
               .join(Project, Project.id == Assignment.project_id)
               .join(Task, Task.id == Assignment.task_id)
               .where(Assignment.id == bindparam("assignment_id")))


def allowed(project: Project, caller_role: str | None, rule_condition: str | None) -> bool:
    ident = context.identity()
    if rule_condition == ANY:
        return True
    if rule_condition == OWNER:
        return ident.role == "admin" or project.owner_id == ident.principal_id
    if rule_condition in (MEMBER, LEASE):
        return caller_role == ident.role
    return False


def visible_project(project_id: str) -> Project:
    context.note(object_id=project_id)
    row = context.session().execute(_PROJECT, {
        "project_id": project_id, "caller": context.identity().principal_id}).first()
    cond = _condition()
    if row is None or cond == LEASE or not allowed(row[0], row[1], cond):
        raise _refuse("project")
    project: Project = row[0]
    context.note(dataset_id=project.dataset_id)
    return project


class Visible(NamedTuple):
    """An assignment the caller may act on, with its project and task (loaded together)."""

    assignment: Assignment
    project: Project
    task: Task


def visible_assignment(assignment_id: str) -> Visible:
    context.note(object_id=assignment_id)
    row = context.session().execute(_ASSIGNMENT, {
        "assignment_id": assignment_id, "caller": context.identity().principal_id}).first()
    if row is None:
        raise _refuse("assignment")
    assignment, project, task, caller_role = row
    cond = _condition()
    if cond == LEASE and assignment.annotator_id != context.identity().principal_id:
        raise _refuse("assignment")
    if not allowed(project, caller_role, cond):
        raise _refuse("assignment")
    context.note(dataset_id=project.dataset_id)
    return Visible(assignment, project, task)


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
