"""JSON Schemas (2020-12) of requests and responses: validation and OpenAPI share them."""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
TIMESTAMP = {"type": "string", "format": "date-time"}

DATASET_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["name"],
    "additionalProperties": False,
}

DATASET: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": ID,
        "name": {"type": "string"},
        "owner_id": ID,
        "policy_id": {"type": "string"},
        "created_at": TIMESTAMP,
        "erased_at": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["id", "name", "owner_id", "policy_id", "created_at"],
}

ITEM_STATUS = {"type": "string",
               "enum": ["received", "processing", "ready", "quarantined", "erased"]}

ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": ID,
        "dataset_id": ID,
        "status": ITEM_STATUS,
        "quarantine_reason": {"type": ["string", "null"]},
        "media_type": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
        "policy_sha256": {"type": "string"},
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["id", "dataset_id", "status", "media_type", "size", "sha256"],
}

UPLOAD: dict[str, Any] = {
    "type": "object",
    "properties": {"file": {"type": "string", "contentMediaType": "application/octet-stream"}},
    "required": ["file"],
}

PAGE_QUERY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "after": {"type": "string", "maxLength": 64},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
    },
    "additionalProperties": False,
}

AUDIT_QUERY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "actor": ID,
        "action": {"type": "string", "pattern": "^[a-z]+:[a-z]+:[a-z]+$"},
        "object": ID,
        "dataset": ID,
        "outcome": {"type": "string", "enum": ["ok", "denied", "error"]},
        "since": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(T[0-9:.]+Z?)?$"},
        "until": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(T[0-9:.]+Z?)?$"},
        "after": {"type": "integer", "minimum": -1},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "additionalProperties": False,
}

AUDIT_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "position": {"type": "integer"},
        "leaf_hash": {"type": "string"},
        "action": {"type": "string"},
        "outcome": {"type": "string"},
        "time": TIMESTAMP,
        "event_id": {"type": "string"},
    },
    "required": ["position", "leaf_hash", "action", "outcome", "time", "event_id"],
}


def page_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": schema},
            "next": {"type": ["string", "integer", "null"]},
        },
        "required": ["items", "next"],
    }


ERASURE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "dataset_id": ID,
        "scope_key": ID,
        "kek": {"type": "string"},
        "objects": {"type": "string"},
        "objects_sha256": {"type": "string"},
    },
    "required": ["dataset_id", "scope_key", "kek", "objects", "objects_sha256"],
}

VKEY: dict[str, Any] = {
    "type": "object",
    "properties": {"origin": {"type": "string"}, "vkey": {"type": "string"}},
    "required": ["origin", "vkey"],
}

CHECKPOINT: dict[str, Any] = {
    "type": "object",
    "properties": {"note": {"type": "string"}},
    "required": ["note"],
}

EXPORT_QUERY: dict[str, Any] = {
    "type": "object",
    "properties": {"format": {"type": "string", "enum": ["jsonl", "csv"]}},
    "additionalProperties": False,
}

HEALTH: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
    "required": ["status"],
}

STUDY_UPLOAD: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": ITEM},
        "skipped": {"type": "integer", "minimum": 0,
                    "description": "archive members that are not DICOM instances"},
    },
    "required": ["items", "skipped"],
}

# ---------------------------------------------------------------------------- annotation
PROJECT_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "dataset_id": ID,
        "label_schema": {"type": "object",
                         "description": "classes, attributes and their labels per language "
                                        "(see gateway/annotation/schema.py)"},
        "overlap": {"type": "integer", "minimum": 1, "maximum": 10},
        "gold_rate": {"type": "number", "minimum": 0, "maximum": 0.5},
        "lease_seconds": {"type": "integer", "minimum": 30, "maximum": 86400},
    },
    "required": ["name", "dataset_id", "label_schema"],
    "additionalProperties": False,
}
PROJECT: dict[str, Any] = {
    "type": "object",
    "properties": {"id": ID, "name": {"type": "string"}, "dataset_id": ID,
                   "overlap": {"type": "integer"}, "gold_rate": {"type": "number"},
                   "lease_seconds": {"type": "integer"}, "label_schema": {"type": "object"},
                   "progress": {"type": "object"}, "created_at": TIMESTAMP},
    "required": ["id", "name", "dataset_id", "overlap", "label_schema"],
}
MEMBER_ADD: dict[str, Any] = {
    "type": "object",
    "properties": {"principal_id": ID,
                   "role": {"type": "string", "enum": ["annotator", "reviewer", "auditor"]}},
    "required": ["principal_id", "role"],
    "additionalProperties": False,
}
SUBMISSION: dict[str, Any] = {
    "type": "object",
    "properties": {"annotations": {"type": "array", "maxItems": 1000}},
    "required": ["annotations"],
    "additionalProperties": False,
}
GOLD_SET: dict[str, Any] = {
    "type": "object",
    "properties": {"item_id": ID, "annotation": SUBMISSION},
    "required": ["item_id", "annotation"],
    "additionalProperties": False,
}
ASSIGNMENT: dict[str, Any] = {
    "type": "object",
    "properties": {"id": ID, "project_id": ID, "task_id": ID,
                   "state": {"type": "string", "enum": [
                       "leased", "submitted", "accepted", "rejected", "released", "expired",
                       "skipped"]},
                   "lease_expires_at": {"type": ["string", "null"]},
                   "width": {"type": "integer"}, "height": {"type": "integer"},
                   "links": {"type": "object"}},
    "required": ["id", "project_id", "task_id", "state"],
}
SUBMISSIONS_QUERY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "state": {"type": "string", "enum": ["submitted", "accepted", "rejected"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        "after": ID,
    },
    "additionalProperties": False,
}
REVIEW: dict[str, Any] = {
    "type": "object",
    "properties": {"decision": {"type": "string", "enum": ["accept", "reject"]},
                   "comment": {"type": "string", "maxLength": 2000}},
    "required": ["decision"],
    "additionalProperties": False,
}
EXPORT_CREATE: dict[str, Any] = {
    "type": "object",
    "properties": {"format": {"type": "string", "enum": ["coco", "yolo"]},
                   "language": {"type": "string", "minLength": 2, "maxLength": 16}},
    "required": ["format"],
    "additionalProperties": False,
}
