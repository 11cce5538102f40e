"""Roles and the permissions they grant.

A permission check with no rule denies: a permission name missing from every role is
granted to nobody, and an unknown role has no permissions.
"""

from __future__ import annotations

ROLES = ("admin", "uploader", "annotator", "reviewer", "auditor")

PERMISSIONS = frozenset(
    {
        "datasets:create",
        "datasets:read",
        "items:create",
        "items:read",
        "media:read",  # anonymized derivatives and their reports
        "originals:read",  # sealed originals: never an annotation endpoint
        "mapping:read",  # DICOM pseudonym map (original patient ids): custodians only
        "audit:read",
        "datasets:erase",  # crypto-shredding: destroys a dataset's key
        "users:manage",
        "tokens:manage",
    }
)

_GRANTS: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "uploader": frozenset(
        {"datasets:create", "datasets:read", "items:create", "items:read", "media:read"}
    ),
    "annotator": frozenset(),  # annotation tasks arrive with the task queue
    "reviewer": frozenset(),
    "auditor": frozenset({"audit:read"}),
}


def grants(role: str, permission: str) -> bool:
    if permission not in PERMISSIONS:
        return False
    return permission in _GRANTS.get(role, frozenset())


def sees_all_datasets(role: str) -> bool:
    """Admins see every dataset; uploaders only those they own."""
    return role == "admin"
