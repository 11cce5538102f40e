"""Builds the storage backends a deployment is configured with.

Only the embedded default exists so far: encrypted blobs in a local directory and KEKs in
a local keyring file, both under the data directory. The S3 blob store (boto3, any S3 API)
and the AWS KMS key provider come later as ``build_s3``/``build_kms`` beside this one;
callers receive the ports (``BlobStore``, ``KeyProvider``) and never care which.
"""

from __future__ import annotations

from pathlib import Path

from gateway.storage.keyring import LocalKeyring
from gateway.storage.local import LocalBlobStore


def build_local(data_dir: Path) -> tuple[LocalBlobStore, LocalKeyring]:
    """The embedded default: ``data_dir/blobs`` and ``data_dir/keys/keyring.json``.

    Creates the keyring on first start; refuses one that group or others could read.
    """
    data_dir = Path(data_dir)
    store = LocalBlobStore(data_dir / "blobs")
    keys = LocalKeyring.open_or_create(data_dir / "keys" / "keyring.json")
    return store, keys
