"""Builds the storage backends a deployment is configured with.

Callers receive the ports (``BlobStore``, ``KeyProvider``) and never care which:
- blobs: a local directory (embedded default) or any S3 API (AWS, MinIO, Ceph);
- key-encryption keys: a local keyring file (embedded default) or AWS KMS.
AWS credentials come from boto3's usual chain (environment, profile, instance role).
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import Settings
from gateway.storage.base import BlobStore, KeyProvider
from gateway.storage.keyring import LocalKeyring
from gateway.storage.kms import KmsKeyProvider
from gateway.storage.kms import make_client as kms_client
from gateway.storage.local import LocalBlobStore
from gateway.storage.s3 import S3BlobStore
from gateway.storage.s3 import make_client as s3_client


def build_local(data_dir: Path) -> tuple[LocalBlobStore, LocalKeyring]:
    """The embedded default: ``data_dir/blobs`` and ``data_dir/keys/keyring.json``.

    Creates the keyring on first start; refuses one that group or others could read.
    """
    data_dir = Path(data_dir)
    store = LocalBlobStore(data_dir / "blobs")
    keys = LocalKeyring.open_or_create(data_dir / "keys" / "keyring.json")
    return store, keys


def build_store(settings: Settings) -> BlobStore:
    if settings.blob_store == "s3":
        client = s3_client(settings.s3_endpoint_url or None, settings.s3_region or None)
        return S3BlobStore(settings.s3_bucket, settings.s3_prefix, client=client)
    return LocalBlobStore(Path(settings.data_dir) / "blobs")


def build_keys(settings: Settings) -> KeyProvider:
    if settings.key_provider == "kms":
        client = kms_client(settings.kms_endpoint_url or None, settings.kms_region)
        return KmsKeyProvider(settings.kms_key_id, hmac_key_id=settings.kms_hmac_key_id,
                              client=client)
    return LocalKeyring.open_or_create(Path(settings.data_dir) / "keys" / "keyring.json")
