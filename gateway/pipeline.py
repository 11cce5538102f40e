"""The pipeline: one item from ``received`` to ``ready`` or ``quarantined``.

Fail closed: an item becomes ``ready`` only after every step of its policy succeeded.
Any error, including ones we did not foresee, quarantines it with a reason code.
Each state change commits together with its audit event.
"""

from __future__ import annotations

import json
import time

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session

from audit import Event
from gateway.anonymize.dicom import anonymize_dicom
from gateway.anonymize.image import anonymize_image
from gateway.auditing import record
from gateway.db.models import Item, SealedBlob, utcnow
from gateway.erasure import delete_bytes
from gateway.errors import AnonymizationFailed, GatewayError, InvalidUpload
from gateway.pseudonym_map import seal_mapping
from gateway.retention import purge_original
from gateway.runtime import Runtime
from gateway.sealing import blob_context, keep_blob, open_blob, seal_blob
from gateway.uploads import DICOM_MIME

log = structlog.get_logger("gateway.pipeline")


def process_item(runtime: Runtime, item_id: str) -> str:
    """Run the policy on one item; returns the final status (or the current one if not claimed)."""
    if not _claim(runtime, item_id):
        return "skipped"
    started = time.perf_counter()
    try:
        derivative, report, mapping = _anonymize(runtime, item_id)
    except AnonymizationFailed as exc:
        return quarantine(runtime, item_id, exc.reason)
    except InvalidUpload as exc:
        return quarantine(runtime, item_id, str(exc.extensions.get("reason", exc.code)))
    except GatewayError as exc:
        return quarantine(runtime, item_id, exc.code)
    except Exception as exc:  # noqa: BLE001 - fail closed on the unforeseen
        log.error("pipeline.unexpected_error", item_id=item_id, error_type=type(exc).__name__)
        return quarantine(runtime, item_id, "internal_error")
    status = _mark_ready(runtime, item_id, derivative, report, mapping)
    log.info("pipeline.done", item_id=item_id, status=status,
             ms=round((time.perf_counter() - started) * 1000))
    return status


def _claim(runtime: Runtime, item_id: str) -> bool:
    with runtime.session() as session:
        result = session.execute(
            update(Item)
            .where(Item.id == item_id, Item.status == "received")
            .values(status="processing", updated_at=utcnow())
        )
        if getattr(result, "rowcount", 0) != 1:
            session.rollback()
            return False
        item = session.get(Item, item_id)
        assert item is not None
        record(session, runtime.audit, Event(
            action="system:item:processing", actor_role="system", object_type="item",
            object_id=item.id, dataset_id=item.dataset_id, content_sha256=item.sha256,
            policy_sha256=item.policy_sha256,
        ))
        session.commit()
    return True


def _anonymize(runtime: Runtime,
               item_id: str) -> tuple[SealedBlob, SealedBlob, SealedBlob | None]:
    with runtime.session() as session:
        item = session.get(Item, item_id)
        original = session.get(SealedBlob, item.original_id) if item else None
        if item is None or original is None:
            raise AnonymizationFailed("original_missing")
        session.expunge_all()
    data = b"".join(open_blob(runtime, original))
    patients: dict[str, str] = {}
    if item.media_type == DICOM_MIME:
        dicom = anonymize_dicom(data, runtime.policy, runtime.pseudonymizer())
        out, engine_report, patients = dicom.data, dicom.report, dicom.patients
    else:
        image = anonymize_image(data, runtime.policy.image)
        out, engine_report = image.data, image.report
    report = dict(engine_report)
    report["policy_ref"] = {"id": runtime.policy.id, "sha256": runtime.policy.sha256}
    derivative = seal_blob(runtime, [out], blob_context(item.dataset_id, "derivative"))
    report_bytes = json.dumps(report, sort_keys=True).encode()
    sealed_report = seal_blob(runtime, [report_bytes], blob_context(item.dataset_id, "report"))
    mapping = seal_mapping(runtime, item.dataset_id, patients) if patients else None
    return derivative, sealed_report, mapping


def _mark_ready(runtime: Runtime, item_id: str, derivative: SealedBlob, report: SealedBlob,
                mapping: SealedBlob | None = None) -> str:
    with runtime.session() as session:
        item = session.get(Item, item_id)
        assert item is not None
        keep_blob(session, derivative)
        keep_blob(session, report)
        if mapping is not None:
            keep_blob(session, mapping)
        session.flush()
        item.status = "ready"
        item.derivative_id = derivative.id
        item.report_id = report.id
        item.mapping_id = mapping.id if mapping is not None else None
        item.updated_at = utcnow()
        record(session, runtime.audit, Event(
            action="system:item:anonymized", actor_role="system", object_type="item",
            object_id=item.id, dataset_id=item.dataset_id, content_sha256=derivative.sha256,
            policy_sha256=item.policy_sha256,
            refs={"derivative": derivative.id, "report": report.id},
        ))
        purged = _apply_retention(runtime, session, item)
        session.commit()
    delete_bytes(runtime, purged)
    return "ready"


def quarantine(runtime: Runtime, item_id: str, reason: str) -> str:
    """Withhold the item for good, with a reason code (also used after a worker crash)."""
    with runtime.session() as session:
        item = session.get(Item, item_id)
        assert item is not None
        item.status = "quarantined"
        item.quarantine_reason = reason
        item.updated_at = utcnow()
        record(session, runtime.audit, Event(
            action="system:item:quarantined", outcome="error", actor_role="system",
            object_type="item", object_id=item.id, dataset_id=item.dataset_id,
            content_sha256=item.sha256, policy_sha256=item.policy_sha256, reason=reason,
        ))
        purged = _apply_retention(runtime, session, item)
        session.commit()
    delete_bytes(runtime, purged)
    log.warning("pipeline.quarantined", item_id=item_id, reason=reason)
    return "quarantined"


def _apply_retention(runtime: Runtime, session: Session, item: Item) -> list[str]:
    """With ``originals: discard`` the original goes as soon as the item is final."""
    if runtime.policy.retention.originals != "discard":
        return []
    key = purge_original(runtime, session, item, "discard")
    return [key] if key else []


def after_worker_crash(runtime: Runtime, item_id: str) -> None:
    """A worker process died. Items it had claimed are quarantined (fail closed: the file
    may be what crashed it); items not yet started go back to the queue."""
    with runtime.session() as session:
        item = session.get(Item, item_id)
        status = item.status if item else None
    if status == "processing":
        quarantine(runtime, item_id, "worker_crashed")
    elif status == "received" and runtime.jobs is not None:
        runtime.jobs.submit(item_id)
