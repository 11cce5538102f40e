"""Rows to JSON: only ids, states, sizes and hashes; never content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gateway.db.models import Assignment, Dataset, Item, Project, Task


def iso(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dataset_json(ds: Dataset) -> dict[str, Any]:
    return {
        "id": ds.id,
        "name": ds.name,
        "owner_id": ds.owner_id,
        "policy_id": ds.policy_id,
        "created_at": iso(ds.created_at),
        "erased_at": iso(ds.erased_at) if ds.erased_at else None,
    }


def item_json(item: Item) -> dict[str, Any]:
    links = {"self": f"/v1/items/{item.id}"}
    if item.status == "ready":
        links["content"] = f"/v1/items/{item.id}/content"
        links["report"] = f"/v1/items/{item.id}/report"
    return {
        "id": item.id,
        "dataset_id": item.dataset_id,
        "status": item.status,
        "quarantine_reason": item.quarantine_reason,
        "media_type": item.media_type,
        "size": item.size,
        "sha256": item.sha256,
        "policy_sha256": item.policy_sha256,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "links": links,
    }


def project_json(project: Project, progress: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": project.id,
        "name": project.name,
        "dataset_id": project.dataset_id,
        "overlap": project.overlap,
        "gold_rate": project.gold_rate,
        "lease_seconds": project.lease_seconds,
        "label_schema": json.loads(project.label_schema),
        "created_at": iso(project.created_at),
    }
    if progress is not None:
        out["progress"] = progress
    return out


def assignment_json(assignment: Assignment, task: Task, project: Project) -> dict[str, Any]:
    """What an annotator gets: the lease and where its anonymized image is; no item id."""
    return {
        "id": assignment.id,
        "project_id": project.id,
        "task_id": task.id,
        "state": assignment.state,
        "lease_expires_at": iso(assignment.lease_expires_at)
        if assignment.lease_expires_at else None,
        "width": task.width,
        "height": task.height,
        "links": {"media": f"/v1/assignments/{assignment.id}/media",
                  "submit": f"/v1/assignments/{assignment.id}/submit"},
    }
