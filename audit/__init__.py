"""Tamper-evident audit log, a standalone package.

Imports nothing from ``gateway`` or Flask: a compliance officer can install and run
it alone to verify an export offline. The SQL store (``audit.store``, SQLAlchemy) is
imported from its module by the service, so verifying needs no database library.
"""

from audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    generate_signing_key,
    parse_and_verify,
    sign_checkpoint,
)
from audit.events import ACTIONS, OUTCOMES, Event, UnknownAction
from audit.export import Export, ExportEntry, ExportError, read_export, write_csv, write_export
from audit.merkle import (
    ProofError,
    RootBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from audit.verify import VerificationError, verify_export

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "Checkpoint",
    "CheckpointError",
    "Event",
    "Export",
    "ExportEntry",
    "ExportError",
    "ProofError",
    "RootBuilder",
    "UnknownAction",
    "VerificationError",
    "consistency_proof",
    "generate_signing_key",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parse_and_verify",
    "read_export",
    "root",
    "sign_checkpoint",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
    "write_csv",
    "write_export",
]
