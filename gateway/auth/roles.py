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
        # annotation (who may act on which project is decided by gateway.annotation.matrix)
        "projects:create",
        "projects:read",
        "projects:manage",  # members, gold items: the project's owner
        "tasks:work",  # lease, renew, release, skip, submit, fetch the leased media
        "tasks:review",
        "agreement:read",
        "export:create",  # annotators never hold it
    }
)

_GRANTS: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "uploader": frozenset(
        {"datasets:create", "datasets:read", "items:create", "items:read", "media:read",
         "projects:create", "projects:read", "projects:manage", "tasks:review", "agreement:read",
         "export:create"}
    ),
    "annotator": frozenset({"projects:read", "tasks:work"}),
    "reviewer": frozenset({"projects:read", "tasks:review", "agreement:read"}),
    "auditor": frozenset({"audit:read", "projects:read", "agreement:read"}),
}


def grants(role: str, permission: str) -> bool:
    if permission not in PERMISSIONS:
        return False
    return permission in _GRANTS.get(role, frozenset())


def sees_all_datasets(role: str) -> bool:
    """Admins see every dataset; uploaders only those they own."""
    return role == "admin"
