"""SQLAlchemy models of the gateway's own state (the audit log's tables live in audit/).

Identifiers are random (uuid4 hex) so they reveal nothing. No column holds an
original filename, EXIF or DICOM value.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Principal(Base):
    __tablename__ = "principals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # staff account name
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """An API token, kept only as the SHA-256 of its secret (>= 256 random bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str] = mapped_column(ForeignKey("principals.id"), index=True)
    policy_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScopeKey(Base):
    """The middle of the key hierarchy: one key per dataset (later per patient pseudonym).

    Its material is wrapped by the key provider's key-encryption key (``kek_id``); the
    data key of every object in the scope is wrapped by it. Destroying it (the wrapped
    material is overwritten) makes every object of the scope unreadable: crypto-shredding.
    """

    __tablename__ = "scope_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(16))  # "dataset"
    scope_id: Mapped[str] = mapped_column(String(64), index=True)
    kek_id: Mapped[str] = mapped_column(String(200))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SealedBlob(Base):
    """Where a sealed object lives and the wrapped data key that opens it.

    state: pending (blob being written; collected if a crash leaves it) -> stored ->
    destroyed (retention, erasure). Only stored blobs are ever referenced by an item.
    """

    __tablename__ = "sealed_blobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # original | derivative | report
    version: Mapped[int] = mapped_column(Integer, default=1)
    store: Mapped[str] = mapped_column(String(16))
    blob_key: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(64))  # the ScopeKey that wrapped the data key
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="stored", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Item(Base):
    """One uploaded file and its way through the pipeline.

    status: received -> processing -> ready | quarantined (quarantine_reason).
    """

    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    quarantine_reason: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))  # sniffed from content
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    policy_sha256: Mapped[str] = mapped_column(String(64))
    original_id: Mapped[str | None] = mapped_column(ForeignKey("sealed_blobs.id"))
    derivative_id: Mapped[str | None] = mapped_column(ForeignKey("sealed_blobs.id"))
    report_id: Mapped[str | None] = mapped_column(ForeignKey("sealed_blobs.id"))
    # DICOM: the sealed old -> new patient id pairs (see gateway.pseudonym_map)
    mapping_id: Mapped[str | None] = mapped_column(ForeignKey("sealed_blobs.id"))
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --------------------------------------------------------------------------- annotation
class Project(Base):
    """An annotation project over one dataset's ready items.

    label_schema: the controlled vocabulary (JSON, validated by
    gateway.annotation.schema); overlap: distinct annotators per item; gold_rate: share
    of leases served from gold items; lease_seconds: how long a lease lasts.
    """

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    label_schema: Mapped[str] = mapped_column(Text)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=900)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProjectMember(Base):
    """A principal's role in one project: annotator | reviewer | auditor."""

    __tablename__ = "project_members"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))


class Task(Base):
    """One item to annotate in a project; slots_left = overlap minus the leases and
    submissions it holds (a lease takes a slot; expiry, release, skip or rejection give
    it back). gold_answer: the known annotation of a gold item (JSON)."""

    __tablename__ = "tasks"
    # The queue's index: open tasks only, in queue order, so a pick never walks the
    # tasks already done (partial index on PostgreSQL and SQLite alike).
    __table_args__ = (UniqueConstraint("project_id", "item_id"),
                      Index("ix_tasks_open", "project_id", "created_at", "id",
                            postgresql_where=text("slots_left > 0"),
                            sqlite_where=text("slots_left > 0")))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"))
    gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_answer: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)  # of the anonymized image, for validation
    height: Mapped[int] = mapped_column(Integer)
    slots_left: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """One annotator's lease of one task and what became of it.

    state: leased -> submitted -> accepted | rejected; or leased -> released | expired |
    skipped. One row per (task, annotator): nobody gets the same task twice.
    """

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("task_id", "annotator_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    # No index of its own: the pick's "has this annotator a row for this task" probe must
    # use the unique (task, annotator) one, never scan all of an annotator's rows.
    annotator_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    annotation: Mapped[str | None] = mapped_column(Text)  # validated submission (JSON)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(ForeignKey("principals.id"))
    review_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
