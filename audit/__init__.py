"""Tamper-evident audit log, a standalone package.

Imports nothing from ``gateway`` or Flask: a compliance officer can install and run
it alone to verify an export offline.
"""

from audit.events import ACTIONS, OUTCOMES, Event, UnknownAction
from audit.merkle import leaf_hash, node_hash
from audit.store import AuditQuery, AuditRecord, SqlAuditStore, audit_metadata

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "AuditQuery",
    "AuditRecord",
    "Event",
    "SqlAuditStore",
    "UnknownAction",
    "audit_metadata",
    "leaf_hash",
    "node_hash",
]
