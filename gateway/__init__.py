"""The privacy gateway: a Flask service that anonymizes uploads before anyone sees them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. The only place that wires things together.

    ``config`` takes the same settings as the ``GATEWAY_*`` variables (without the
    prefix) and wins over the environment. The database must be migrated and the
    keyring present (``gateway init`` or ``gateway serve`` does both).
    """
    import structlog

    from gateway.anonymize.detectors import registry
    from gateway.api import register_api
    from gateway.auditing import Sequencer
    from gateway.checkpoints import make_checkpoint
    from gateway.config import load_settings
    from gateway.jobs import ProcessJobs, ThreadJobs, pending_items
    from gateway.logs import configure_logging
    from gateway.pipeline import after_worker_crash, process_item
    from gateway.runtime import build_runtime, require_schema

    settings = load_settings(config)
    configure_logging(settings.log_format, settings.log_level)
    runtime = build_runtime(settings)
    if settings.key_provider == "local":
        structlog.get_logger("gateway").warning(
            "keys.development_backend",
            note="key-encryption keys are in a file on this host; use KMS in production")
    require_schema(runtime)
    if settings.job_runner == "thread":
        registry.warm_up(runtime.policy.image)  # load models once, at start, not per item
        runtime.jobs = ThreadJobs(lambda item_id: process_item(runtime, item_id),
                                  settings.job_workers)
    else:
        runtime.jobs = ProcessJobs(settings, settings.job_workers,
                                   lambda item_id: after_worker_crash(runtime, item_id))
    for item_id in pending_items(runtime.sessions):
        runtime.jobs.submit(item_id)

    runtime.sequencer = Sequencer(runtime.engine, runtime.audit,
                                  periodic=lambda: make_checkpoint(runtime),
                                  period=settings.audit_checkpoint_seconds,
                                  lock_path=settings.data_dir / "audit-sequencer.lock")

    app = Flask(__name__, static_folder=None)
    # The multipart envelope adds a little to the file itself.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 1024 * 1024
    app.extensions["gateway"] = runtime
    register_api(app)
    return app
