"""Fixtures for the S3 and KMS adapters, run against moto's server over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.storage.kms import KmsKeyProvider
from gateway.storage.s3 import S3BlobStore
from tests.integration.moto_server import (
    create_bucket,
    create_key,
    kms_client,
    running_moto,
    s3_client,
)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the session; tests isolate by fresh bucket and key names."""
    with running_moto() as url:
        yield url


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3BlobStore:
    """A store on a fresh bucket, under a prefix so prefixing is always exercised."""
    bucket = create_bucket(moto_endpoint)
    return S3BlobStore(bucket, "gateway/blobs/", client=s3_client(moto_endpoint))


@pytest.fixture
def kms_provider(moto_endpoint: str) -> KmsKeyProvider:
    """A provider on a fresh symmetric key, with a fresh HMAC key for named secrets."""
    return KmsKeyProvider(
        create_key(moto_endpoint),
        hmac_key_id=create_key(moto_endpoint, hmac=True),
        client=kms_client(moto_endpoint),
    )
