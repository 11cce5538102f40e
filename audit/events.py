"""The closed vocabulary of audit events and their canonical encoding.

Event names read ``subject:object:action`` (warehouse's events/tags.py shape): the
subject is the capacity the actor acted in, the actor's actual role is recorded
beside it. Events carry ids, hashes and reason codes, never content: no names,
filenames, EXIF or DICOM values.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

ACTIONS: frozenset[str] = frozenset(
    {
        # identity and access
        "admin:user:created",
        "admin:token:created",
        "admin:token:revoked",
        # datasets and items
        "uploader:dataset:created",
        "uploader:dataset:viewed",
        "uploader:dataset:listed",
        "uploader:item:uploaded",
        "uploader:study:uploaded",
        "uploader:item:viewed",
        "uploader:item:listed",
        "uploader:media:downloaded",
        "uploader:report:viewed",
        "custodian:original:viewed",
        "custodian:mapping:exported",
        "admin:dataset:erased",
        "admin:key:rotated",
        "system:original:purged",
        "system:storage:collected",
        # annotation
        "owner:project:created",
        "owner:project:listed",
        "owner:project:viewed",
        "owner:member:added",
        "owner:gold:set",
        "owner:tasks:synced",
        "annotator:task:leased",
        "annotator:lease:renewed",
        "annotator:lease:released",
        "annotator:task:skipped",
        "annotator:task:submitted",
        "annotator:media:viewed",
        "reviewer:submission:listed",
        "reviewer:submission:reviewed",
        "reviewer:agreement:viewed",
        "owner:export:created",
        # the pipeline
        "system:item:processing",
        "system:item:anonymized",
        "system:item:quarantined",
        # the audit log itself
        "auditor:audit:viewed",
        "auditor:audit:exported",
        "auditor:checkpoint:viewed",
        "system:checkpoint:signed",
    }
)

OUTCOMES = ("ok", "denied", "error")
_CODE = re.compile(r"[a-z0-9_.]{1,64}")
_REF = re.compile(r"[0-9A-Za-z:/._-]{1,200}")  # ids, hashes, counts, key ARNs: no spaces


class UnknownAction(ValueError):
    """An event name outside the closed vocabulary."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    action: str
    outcome: str = "ok"
    actor_id: str | None = None
    actor_role: str | None = None
    request_id: str | None = None
    source: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    dataset_id: str | None = None
    content_sha256: str | None = None
    policy_sha256: str | None = None
    reason: str | None = None  # a stable machine code, never free text from content
    refs: dict[str, str] | None = None  # related object ids or hashes, e.g. {"report": id}
    time: str = field(default_factory=_now)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise UnknownAction(f"{self.action!r} is not in the audit vocabulary")
        if self.outcome not in OUTCOMES:
            raise UnknownAction(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if self.reason is not None and not _CODE.fullmatch(self.reason):
            raise ValueError("reason must be a machine code ([a-z0-9_.]+)")
        for key, value in (self.refs or {}).items():
            # ids and hashes only: nothing that could carry content
            if not _CODE.fullmatch(key) or not _REF.fullmatch(value):
                raise ValueError("refs must map codes to hex ids or hashes")

    def canonical(self) -> bytes:
        """Deterministic bytes: sorted keys, no whitespace, ASCII only, nulls omitted."""
        # vars(), not dataclasses.asdict: no deep copy (refs is a flat dict of strings).
        body = {k: v for k, v in vars(self).items() if v is not None}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_canonical(cls, data: bytes) -> Event:
        return cls(**json.loads(data))
