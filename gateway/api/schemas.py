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
