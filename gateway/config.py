"""Settings from ``GATEWAY_*`` environment variables, validated at start.

A wrong value stops start-up with a :class:`ConfigError` naming the variable; nothing
starts half-configured. Tests pass a mapping to ``create_app`` instead of the
environment (same names without the prefix, lower or upper case).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

PREFIX = "GATEWAY_"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite file under data_dir
    database_schema: str = ""  # PostgreSQL schema, so instances can share one database
    max_upload_bytes: int = 256 * MiB
    policy: str = "default"  # built-in policy name or a path to a YAML file
    job_runner: str = "process"  # process (spawned workers) | thread (tests, debugging)
    job_workers: int = 2  # pipeline workers per web process
    web_workers: int = 1  # gunicorn processes for `gateway serve`
    web_threads: int = 8
    log_format: str = "auto"  # json | console | auto (console on a TTY)
    log_level: str = "info"
    token_ttl_days: int = 90
    blob_store: str = "local"  # local | s3
    key_provider: str = "local"  # local | kms
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""  # MinIO, Ceph or a test server; empty for AWS
    s3_region: str = ""
    kms_key_id: str = ""  # key id, ARN or alias of the key-encryption key
    kms_hmac_key_id: str = ""  # HMAC_256 key for keyed pseudonyms
    kms_endpoint_url: str = ""
    kms_region: str = ""
    audit_origin: str = "privacy-gateway/audit"  # names the log in its signed checkpoints
    audit_checkpoint_seconds: int = 300  # scheduled checkpoints (when the log grew)
    audit_anchor_dir: str = ""  # also write each checkpoint here (e.g. a WORM mount)
    audit_anchor_s3_bucket: str = ""  # ... or to this Object Lock bucket (compliance mode)
    audit_anchor_retention_days: int = 3650

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').resolve()}"


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name.upper()}: {raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{PREFIX}{name.upper()}: must be a positive integer, got {value}")
    return value


def _port(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value > 65535:
        raise ConfigError(f"{PREFIX}{name.upper()}: {value} is not a TCP port (1-65535)")
    return value


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            options = ", ".join(allowed)
            raise ConfigError(f"{PREFIX}{name.upper()}: {raw!r} is not one of {options}")
        return value

    return parse


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{PREFIX}{name.upper()}: must not be empty")
    return raw.strip()


def _url(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
        raise ConfigError(
            f"{PREFIX}{name.upper()}: must be a sqlite:// or postgresql:// URL"
        )
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


def _http_url(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ConfigError(f"{PREFIX}{name.upper()}: must be an http(s):// URL")
    return value


def _origin(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,100}", value):
        raise ConfigError(f"{PREFIX}{name.upper()}: letters, digits, '.', '_', '-' and '/' only")
    return value


def _identifier(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise ConfigError(f"{PREFIX}{name.upper()}: must be a lower-case SQL identifier")
    return value


PARSERS: dict[str, Callable[[str, str], Any]] = {
    "host": _text,
    "port": _port,
    "data_dir": lambda name, raw: Path(_text(name, raw)),
    "database_url": _url,
    "database_schema": _identifier,
    "max_upload_bytes": _positive_int,
    "policy": _text,
    "job_runner": _choice("process", "thread"),
    "job_workers": _positive_int,
    "web_workers": _positive_int,
    "web_threads": _positive_int,
    "log_format": _choice("json", "console", "auto"),
    "log_level": _choice("debug", "info", "warning", "error"),
    "token_ttl_days": _positive_int,
    "blob_store": _choice("local", "s3"),
    "key_provider": _choice("local", "kms"),
    "s3_bucket": _text,
    "s3_prefix": lambda name, raw: raw.strip(),
    "s3_endpoint_url": _http_url,
    "s3_region": _text,
    "kms_key_id": _text,
    "kms_hmac_key_id": _text,
    "kms_endpoint_url": _http_url,
    "kms_region": _text,
    "audit_origin": _origin,
    "audit_checkpoint_seconds": _positive_int,
    "audit_anchor_dir": _text,
    "audit_anchor_s3_bucket": _text,
    "audit_anchor_retention_days": _positive_int,
}

# Settings that must be set when a backend is chosen.
REQUIRED_WITH = {
    ("blob_store", "s3"): ("s3_bucket",),
    ("key_provider", "kms"): ("kms_key_id", "kms_hmac_key_id", "kms_region"),
}


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read every ``GATEWAY_*`` variable, then apply ``overrides``; validate all of them."""
    env = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        if name not in known:
            # A typo in a variable name must not silently fall back to a default.
            raise ConfigError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
        values[name] = PARSERS[name](name, raw)
    for key, value in (overrides or {}).items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in known:
            raise ConfigError(f"{PREFIX}{name.upper()}: unknown setting")
        values[name] = PARSERS[name](name, str(value))
    settings = Settings(**values)
    for (choice, value), needed in REQUIRED_WITH.items():
        if getattr(settings, choice) == value:
            for name in needed:
                if not getattr(settings, name):
                    raise ConfigError(
                        f"{PREFIX}{name.upper()}: required when {PREFIX}{choice.upper()}={value}"
                    )
    return settings
