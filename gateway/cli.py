"""The ``gateway`` command.

Errors print one plain line on stderr and exit non-zero (2 for usage and
configuration errors, 1 for refused operations); never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from gateway.config import Settings, load_settings
from gateway.errors import ConfigError, GatewayError
from gateway.logs import configure_logging


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings({k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        _fail(exc.detail, 2)
    configure_logging(settings.log_format, settings.log_level)  # to stderr, never stdout
    return settings


def _guarded(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ConfigError as exc:
        _fail(exc.detail, 2)
    except GatewayError as exc:
        _fail(exc.detail, 1)


@click.group(help="Privacy-preserving ingestion gateway.")
def main() -> None:
    pass


@main.command(help="Initialize (first start only) and serve the API.")
@click.option("--host", help="Interface to bind (GATEWAY_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (GATEWAY_PORT, default 8080).")
def serve(host: str | None, port: int | None) -> None:
    from gateway.bootstrap import initialize
    from gateway.server import run

    settings = _settings(host=host, port=port)
    secret = _guarded(lambda: initialize(settings))
    if secret:
        click.echo("Bootstrap admin token (shown once, keep it safe):")
        click.echo(f"  {secret}")
    click.echo(f"Serving on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    sys.stdout.flush()
    run(settings)


@main.command(help="Create the keyring, migrate the database, make the first admin.")
def init() -> None:
    from gateway.bootstrap import initialize

    secret = _guarded(lambda: initialize(_settings()))
    if secret:
        click.echo(f"Bootstrap admin token (shown once): {secret}")
    else:
        click.echo("Already initialized.")


@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply every pending migration.")
def db_upgrade() -> None:
    from gateway.bootstrap import upgrade_database

    settings = _settings()
    _guarded(lambda: upgrade_database(settings))
    click.echo("Database is up to date.")


def _with_session(fn: Callable[[Any, Any], Any]) -> Any:
    from gateway.runtime import build_runtime, require_schema

    settings = _settings()

    def go() -> Any:
        rt = build_runtime(settings)
        try:
            require_schema(rt)
            with rt.session() as session:
                result = fn(rt, session)
                session.commit()
                return result
        finally:
            rt.close()

    return _guarded(go)


@main.group(help="Accounts.")
def users() -> None:
    pass


@users.command("create", help="Create an account with one role.")
@click.argument("name")
@click.option("--role", required=True,
              type=click.Choice(["admin", "uploader", "annotator", "reviewer", "auditor"]))
def users_create(name: str, role: str) -> None:
    from gateway.accounts import create_user

    principal = _with_session(lambda rt, s: create_user(rt, s, name, role))
    click.echo(f"user {principal.id} created with role {role}")


@main.group(help="API tokens.")
def tokens() -> None:
    pass


@tokens.command("create", help="Issue a token for a user; the secret is printed once.")
@click.argument("name")
@click.option("--ttl-days", type=click.IntRange(min=1), help="Lifetime (default 90 days).")
def tokens_create(name: str, ttl_days: int | None) -> None:
    from gateway.accounts import create_token, find_user

    def go(rt: Any, session: Any) -> Any:
        return create_token(rt, session, find_user(session, name), ttl_days)

    token, secret = _with_session(go)
    click.echo(f"token {token.id} expires {token.expires_at:%Y-%m-%d}")
    click.echo(secret)


@tokens.command("revoke", help="Revoke a token by its id.")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    from gateway.accounts import revoke_token

    _with_session(lambda rt, s: revoke_token(rt, s, token_id))
    click.echo(f"token {token_id} revoked")


@main.group(help="Key-encryption keys.")
def keys() -> None:
    pass


@keys.command("rotate", help="New key-encryption key; re-wrap every dataset key under it.")
def keys_rotate() -> None:
    from gateway.rotation import rotate_keys

    refs = _with_session(rotate_keys)
    click.echo(f"re-wrapped {refs['rewrapped']} dataset keys under {refs['kek']}")


@main.group(help="Datasets.")
def datasets() -> None:
    pass


@datasets.command("erase", help="Crypto-shred a dataset: destroy its key, then its bytes.")
@click.argument("dataset_id")
@click.option("--yes", is_flag=True, help="Confirm: erasure cannot be undone.")
def datasets_erase(dataset_id: str, yes: bool) -> None:
    from audit import Event
    from gateway.auditing import record
    from gateway.db.models import Dataset
    from gateway.erasure import delete_bytes, erase_dataset
    from gateway.errors import NotFound

    if not yes:
        _fail("erasure cannot be undone; add --yes to confirm", 2)

    def go(rt: Any, session: Any) -> Any:
        ds = session.get(Dataset, dataset_id)
        if ds is None:
            raise NotFound("no such dataset")
        cert, blob_keys = erase_dataset(rt, session, ds)
        record(session, rt.audit, Event(action="admin:dataset:erased", actor_role="system",
                                        object_type="dataset", object_id=ds.id,
                                        dataset_id=ds.id, refs=cert))
        session.commit()
        delete_bytes(rt, blob_keys)
        return cert

    cert = _with_session(go)
    click.echo(f"dataset {dataset_id} erased: key {cert['scope_key']} destroyed, "
               f"{cert['objects']} objects unreadable")


@main.group(help="Stored blobs.")
def storage() -> None:
    pass


@storage.command("collect", help="Purge expired originals and blobs left by crashed writers.")
@click.option("--grace-minutes", type=click.IntRange(min=0), default=60, show_default=True,
              help="Leave blobs younger than this (uploads may still be writing them).")
def storage_collect(grace_minutes: int) -> None:
    from datetime import timedelta

    from gateway.retention import expire_originals
    from gateway.sealing import collect_orphans

    def go(rt: Any, _session: Any) -> tuple[int, int]:
        return expire_originals(rt), collect_orphans(rt, timedelta(minutes=grace_minutes))

    expired, orphans = _with_session(go)
    click.echo(f"{expired} expired originals purged, {orphans} orphaned blobs removed")


def _pseudonym_secret(secret_file: str | None) -> bytes:
    """The DICOM pseudonym secret: from --secret-file, else the key provider's."""
    from pathlib import Path

    from gateway.anonymize.batch import UsageError
    from gateway.anonymize.dicom import SECRET_NAME
    from gateway.storage.factory import build_keys

    if secret_file is not None:
        try:
            value = Path(secret_file).read_bytes().strip()
        except OSError as exc:
            raise UsageError(f"cannot read --secret-file: {exc.strerror}") from None
        if len(value) < 16:
            raise UsageError("--secret-file must hold at least 16 bytes")
        return value
    settings = _settings()
    try:
        return build_keys(settings).secret(SECRET_NAME)
    except (GatewayError, OSError, ValueError):
        raise UsageError("DICOM inputs need the pseudonym secret: run `gateway init` (or "
                         "configure the key provider), or pass --secret-file") from None


@main.command("anonymize",
              help="Anonymize image and DICOM files or folders offline into --out.")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(),
              help="Output folder; inputs are mirrored at the same relative paths.")
@click.option("--policy", "policy", help="Policy file (YAML/JSON); the built-in default if absent.")
@click.option("--report", "report", type=click.Path(),
              help="Write a JSON report of every item here.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes for folders (default: one per CPU).")
@click.option("--secret-file", "secret_file", type=click.Path(dir_okay=False),
              help="DICOM: file holding the pseudonym secret (>= 16 bytes). Default: the "
                   "configured key provider's, so results match the server's.")
def anonymize(paths: tuple[str, ...], out: str, policy: str | None, report: str | None,
              workers: int | None, secret_file: str | None) -> None:
    """Exit 0: every supported input anonymized; 3: any quarantined; 2: usage error."""
    from pathlib import Path

    from gateway.anonymize import batch
    from gateway.errors import DetectorUnavailable
    from policies import PolicyError

    try:
        plan = batch.plan([Path(p) for p in paths], Path(out))
        if report is not None:
            batch.check_report_path(Path(report), plan)
        result = batch.run(plan, policy, workers, lambda: _pseudonym_secret(secret_file))
    except batch.UsageError as exc:
        _fail(str(exc), 2)
    except PolicyError as exc:
        _fail(f"policy: {exc}", 2)
    except DetectorUnavailable as exc:
        _fail(exc.detail, 2)
    except batch.BatchAborted as exc:
        _fail(str(exc), 3)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    if report is not None:
        try:
            batch.write_report(Path(report), result)
        except OSError as exc:
            _fail(f"cannot write the report: {exc.strerror}", 3)
    for item in result.items:
        if item.status == batch.QUARANTINED:
            click.echo(f"quarantined: {item.input} ({item.reason})", err=True)
    click.echo(result.summary_line())
    sys.exit(0 if result.ok else 3)
