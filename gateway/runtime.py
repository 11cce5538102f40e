"""The gateway's services wired together once, shared by the web app and the CLI.

``build_runtime`` is the only place that chooses implementations of the ports
(blob store, key provider, audit store, job runner) from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from audit.store import SqlAuditStore
from gateway.anonymize.detectors import registry
from gateway.anonymize.dicom.pseudonyms import SECRET_NAME as PSEUDONYM_SECRET
from gateway.anonymize.dicom.pseudonyms import Pseudonymizer
from gateway.config import Settings
from gateway.db.engine import make_engine, make_sessionmaker
from gateway.errors import ConfigError, DetectorUnavailable, ServiceUnavailable
from gateway.keys import ScopeKeys
from gateway.storage.base import BlobStore, KeyProvider
from gateway.storage.factory import build_keys, build_store
from policies import Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from gateway.auditing import Sequencer
    from gateway.jobs import JobRunner


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    audit: SqlAuditStore
    store: BlobStore
    keys: KeyProvider
    scope_keys: ScopeKeys
    policy: Policy
    jobs: JobRunner | None = field(default=None)
    sequencer: Sequencer | None = field(default=None)

    def session(self) -> Session:
        return self.sessions()

    def pseudonymizer(self) -> Pseudonymizer:
        """Keyed UIDs, patient pseudonyms and date shifts: one secret for the deployment,
        held by the key provider, so results agree across processes and restarts."""
        return Pseudonymizer(self.keys.secret(PSEUDONYM_SECRET), self.policy.dicom.date_shift_days)

    def readiness(self) -> dict[str, str]:
        """Check database, storage and keys; each answers "ok" or a short reason code."""
        checks: dict[str, str] = {}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001 - any failure means not ready
            checks["database"] = "unavailable"
        for name, probe in (("storage", self.store.check), ("keys", self.keys.check)):
            try:
                probe()
                checks[name] = "ok"
            except Exception:  # noqa: BLE001
                checks[name] = "unavailable"
        return checks

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.shutdown()
        if self.sequencer is not None:
            self.sequencer.stop()
        self.engine.dispose()


def build_runtime(settings: Settings) -> Runtime:
    try:
        policy = load_policy(settings.policy)
    except PolicyError as exc:
        raise ConfigError(f"GATEWAY_POLICY: {exc}") from None
    try:
        registry.check_policy(policy.image)  # fail closed: never run weaker than the policy
    except DetectorUnavailable as exc:
        raise ConfigError(f"GATEWAY_POLICY: {exc.detail}") from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store, keys = build_store(settings), build_keys(settings)
    engine = make_engine(settings.resolved_database_url, schema=settings.database_schema or None)
    sessions = make_sessionmaker(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        audit=SqlAuditStore(),
        store=store,
        keys=keys,
        scope_keys=ScopeKeys(sessions, keys),
        policy=policy,
    )


def require_schema(runtime: Runtime) -> None:
    """Refuse to serve a database that was never migrated."""
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT size FROM audit_head"))
    except Exception:  # noqa: BLE001
        raise ServiceUnavailable(
            "the database is not initialized: run `gateway db upgrade`"
        ) from None
