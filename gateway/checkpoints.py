"""Signed checkpoints of the audit log, and where they are anchored.

The signing key is an Ed25519 key whose seed is the key provider's named secret
``audit-log-signing-key`` (the keyring file, or an HMAC key in KMS): stable across
restarts and processes, never stored in the database the log lives in. Checkpoints are
made on a schedule (by the sequencer thread) and on demand; each can also be written
where the database administrator cannot write: a directory (e.g. a WORM mount) or an S3
bucket with Object Lock in compliance mode.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from audit import Event
from audit.checkpoint import sign_checkpoint, vkey_for
from gateway.auditing import record, sequence_now
from gateway.errors import StorageError
from gateway.runtime import Runtime

log = structlog.get_logger("gateway.checkpoints")

SECRET_NAME = "audit-log-signing-key"  # noqa: S105 - the name of a secret, not one


def signing_key(runtime: Runtime) -> bytes:
    return runtime.keys.secret(SECRET_NAME)


def public_key(runtime: Runtime) -> str:
    """The verifier key auditors use: ``<origin>+<key id>+<base64 key>``."""
    return vkey_for(runtime.settings.audit_origin, signing_key(runtime))


def make_checkpoint(runtime: Runtime) -> str:
    """Sign the current tree head (unless the newest checkpoint already covers it)."""
    sequence_now(runtime.engine, runtime.audit)
    with runtime.session() as session:
        conn = session.connection()
        head = runtime.audit.tree_head(conn)
        if runtime.audit.latest_checkpoint_size(conn) == head.size:
            return runtime.audit.checkpoints(conn, limit=1)[0]
        origin = runtime.settings.audit_origin
        note = sign_checkpoint(origin, head.size, head.root, origin, signing_key(runtime))
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        runtime.audit.add_checkpoint(conn, head.size, head.root, note, now)
        record(session, runtime.audit, Event(
            action="system:checkpoint:signed", actor_role="system", object_type="checkpoint",
            refs={"size": str(head.size), "root": head.root.hex()}))
        session.commit()
    anchor(runtime, head.size, note)
    return note


def anchor(runtime: Runtime, size: int, note: str) -> None:
    """Copy the note where the database's administrator has no write access."""
    settings = runtime.settings
    name = f"checkpoint-{size:012d}.txt"
    if settings.audit_anchor_dir:
        path = Path(settings.audit_anchor_dir) / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(note, encoding="utf-8")
            path.chmod(0o444)
    if settings.audit_anchor_s3_bucket:
        from gateway.storage.s3 import make_client

        client = make_client(settings.s3_endpoint_url or None, settings.s3_region or None)
        try:
            client.put_object(
                Bucket=settings.audit_anchor_s3_bucket, Key=f"audit/{name}",
                Body=note.encode("utf-8"), ContentType="text/plain; charset=utf-8",
                ChecksumAlgorithm="SHA256",  # S3 requires a checksum with Object Lock
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(
                    days=settings.audit_anchor_retention_days),
            )
        except (BotoCoreError, ClientError) as exc:
            log.error("audit.anchor_failed", error_type=type(exc).__name__)
            raise StorageError("the checkpoint was signed but could not be anchored to S3",
                               reason="anchor_failed") from None
