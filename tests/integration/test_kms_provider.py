"""gateway.storage.kms against moto's KMS over HTTP, and the real Vault over S3 + KMS."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

import boto3
import pytest
from botocore.config import Config

from gateway.errors import ConfigError, DecryptionError, GatewayError, KeyProviderError
from gateway.storage.base import WrappedKey
from gateway.storage.kms import KmsKeyProvider
from gateway.storage.s3 import S3BlobStore
from gateway.storage.vault import SealContext, Vault
from tests.integration.moto_server import (
    CREDENTIALS,
    REGION,
    canned_kms_error,
    closed_port_url,
    create_key,
    kms_client,
)

pytestmark = pytest.mark.integration

DATA_KEY = bytes(range(32))
CONTEXT = b"gateway/seal/v1\n{object 1}"
MIB = 1 << 20


def bare(arn: str) -> str:
    """The key id in an ARN (moto's DisableKey and ScheduleKeyDeletion accept no ARN)."""
    return arn.rsplit("/", 1)[1]


def test_wrap_unwrap_round_trip(kms_provider: KmsKeyProvider) -> None:
    wrapped = kms_provider.wrap(DATA_KEY, CONTEXT)
    assert wrapped.key_id == kms_provider.key_id  # the ARN KMS reports
    assert wrapped.key_id.startswith("arn:aws:kms:")
    assert DATA_KEY not in wrapped.wrapped
    assert kms_provider.unwrap(wrapped, CONTEXT) == DATA_KEY
    assert kms_provider.wrap(DATA_KEY, CONTEXT).wrapped != wrapped.wrapped  # randomized


def test_a_key_id_without_arn_is_recorded_as_the_arn(
    kms_provider: KmsKeyProvider, moto_endpoint: str
) -> None:
    provider = KmsKeyProvider(bare(kms_provider.key_id), client=kms_client(moto_endpoint))
    wrapped = provider.wrap(DATA_KEY, CONTEXT)
    assert wrapped.key_id == kms_provider.key_id
    assert kms_provider.unwrap(wrapped, CONTEXT) == DATA_KEY


def test_wrong_context_fails_opaquely(kms_provider: KmsKeyProvider) -> None:
    wrapped = kms_provider.wrap(DATA_KEY, CONTEXT)
    with pytest.raises(DecryptionError) as raised:
        kms_provider.unwrap(wrapped, CONTEXT + b"x")
    assert raised.value.detail == DecryptionError.title  # says nothing about why
    assert raised.value.__cause__ is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda w: replace(w, wrapped=w.wrapped[:-1] + bytes([w.wrapped[-1] ^ 1])),  # flipped
        lambda w: replace(w, wrapped=w.wrapped[:-4]),  # truncated
        lambda w: replace(w, wrapped=w.wrapped[:20]),  # header only
        lambda w: replace(w, wrapped=b""),  # emptied (refused before any request)
        lambda w: replace(w, key_id=w.key_id[:-12] + "0" * 12),  # a key that never existed
    ],
)
def test_damaged_wraps_fail_opaquely(
    kms_provider: KmsKeyProvider, damage: Callable[[WrappedKey], WrappedKey]
) -> None:
    wrapped = damage(kms_provider.wrap(DATA_KEY, CONTEXT))
    with pytest.raises(DecryptionError) as raised:
        kms_provider.unwrap(wrapped, CONTEXT)
    assert raised.value.detail == DecryptionError.title
    assert raised.value.__cause__ is None


def test_check(kms_provider: KmsKeyProvider, moto_endpoint: str) -> None:
    kms_provider.check()
    kms_client(moto_endpoint).disable_key(KeyId=bare(kms_provider.key_id))
    with pytest.raises(KeyProviderError, match="Disabled"):
        kms_provider.check()


def test_check_refuses_a_key_pending_deletion(
    kms_provider: KmsKeyProvider, moto_endpoint: str
) -> None:
    assert kms_provider.hmac_key_id is not None
    kms_client(moto_endpoint).schedule_key_deletion(
        KeyId=bare(kms_provider.hmac_key_id), PendingWindowInDays=7
    )
    with pytest.raises(KeyProviderError, match="PendingDeletion"):
        kms_provider.check()


def test_check_refuses_a_key_of_the_wrong_usage(moto_endpoint: str) -> None:
    hmac_key = create_key(moto_endpoint, hmac=True)
    provider = KmsKeyProvider(hmac_key, client=kms_client(moto_endpoint))
    with pytest.raises(KeyProviderError, match="ENCRYPT_DECRYPT"):
        provider.check()


# Named secrets (pseudonym keys) derived with GenerateMac.


def test_secrets_are_stable_across_instances_and_distinct_per_name(
    kms_provider: KmsKeyProvider, moto_endpoint: str
) -> None:
    restarted = KmsKeyProvider(
        kms_provider.key_id, hmac_key_id=kms_provider.hmac_key_id, client=kms_client(moto_endpoint)
    )
    first = kms_provider.secret("pseudonym")
    assert len(first) == 32
    assert restarted.secret("pseudonym") == first
    assert kms_provider.secret("pseudonym") == first
    assert kms_provider.secret("uid-root") != first


def test_secrets_differ_per_hmac_key(kms_provider: KmsKeyProvider, moto_endpoint: str) -> None:
    other = KmsKeyProvider(
        kms_provider.key_id,
        hmac_key_id=create_key(moto_endpoint, hmac=True),
        client=kms_client(moto_endpoint),
    )
    assert other.secret("pseudonym") != kms_provider.secret("pseudonym")


def test_secret_names_and_configuration(kms_provider: KmsKeyProvider, moto_endpoint: str) -> None:
    for bad in ("", "Upper", "../x", "a" * 65):
        with pytest.raises(ValueError):
            kms_provider.secret(bad)
    without = KmsKeyProvider(kms_provider.key_id, client=kms_client(moto_endpoint))
    with pytest.raises(ConfigError, match="HMAC key"):
        without.secret("pseudonym")
    wrong_usage = KmsKeyProvider(
        kms_provider.key_id, hmac_key_id=kms_provider.key_id, client=kms_client(moto_endpoint)
    )
    with pytest.raises(KeyProviderError):  # an encryption key cannot make MACs
        wrong_usage.secret("pseudonym")


# Faults: fail closed, quickly.


def test_unreachable_kms_fails_closed_in_seconds(kms_provider: KmsKeyProvider) -> None:
    wrapped = kms_provider.wrap(DATA_KEY, CONTEXT)
    down = KmsKeyProvider(
        kms_provider.key_id,
        hmac_key_id=kms_provider.hmac_key_id,
        client=kms_client(closed_port_url()),  # the adapter's own timeouts and retries
    )
    calls: list[Callable[[], object]] = [
        lambda: down.wrap(DATA_KEY, CONTEXT),
        lambda: down.unwrap(wrapped, CONTEXT),
        down.check,
        lambda: down.secret("pseudonym"),
    ]
    for call in calls:
        start = time.monotonic()
        with pytest.raises(KeyProviderError, match="key service unavailable"):
            call()
        assert time.monotonic() - start < 5


# moto decrypts under disabled and pending-deletion keys, and never throttles; a stub
# endpoint answering with KMS's own error documents checks how each real error is sorted.
@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("DisabledException", 400, DecryptionError),  # the key was disabled
        ("KMSInvalidStateException", 400, DecryptionError),  # pending deletion
        ("NotFoundException", 400, DecryptionError),  # deleted: the object is shredded
        ("IncorrectKeyException", 400, DecryptionError),  # wrapped under another key
        ("InvalidCiphertextException", 400, DecryptionError),  # tampered or wrong context
        ("AccessDeniedException", 400, KeyProviderError),  # IAM: an operator must act
        ("ThrottlingException", 400, KeyProviderError),  # retry later
        ("KeyUnavailableException", 500, KeyProviderError),
        ("KMSInternalException", 500, KeyProviderError),
        ("DependencyTimeoutException", 503, KeyProviderError),
    ],
)
def test_kms_errors_on_unwrap(code: str, status: int, expected: type[GatewayError]) -> None:
    wrapped = WrappedKey("arn:aws:kms:us-east-1:123456789012:key/any", b"\x01" * 64)
    with canned_kms_error(code, status) as url:
        once = Config(retries={"mode": "standard", "total_max_attempts": 1})  # no backoff waits
        client = boto3.client(
            "kms", endpoint_url=url, region_name=REGION, config=once, **CREDENTIALS
        )
        provider = KmsKeyProvider(wrapped.key_id, client=client)
        with pytest.raises(expected):
            provider.unwrap(wrapped, CONTEXT)
        with pytest.raises(KeyProviderError, match=code):  # a wrap can only be unavailable
            provider.wrap(DATA_KEY, CONTEXT)


# The real vault over both adapters.


def test_vault_over_s3_and_kms(s3_store: S3BlobStore, kms_provider: KmsKeyProvider) -> None:
    vault = Vault(s3_store, kms_provider)
    ctx = SealContext(object_id="obj-1", dataset_id="ds-1", kind="original", version=1)
    other_ctx = replace(ctx, object_id="obj-2")
    body = os.urandom(9 * MIB + 11)  # sealed as a multipart upload
    sealed = vault.seal((body[i : i + MIB] for i in range(0, len(body), MIB)), ctx)
    assert sealed.key_id == kms_provider.key_id
    assert vault.open_bytes(sealed, ctx) == body

    other = vault.seal([b"another object"], other_ctx)
    swapped = replace(sealed, blob_key=other.blob_key)
    with pytest.raises(DecryptionError):
        vault.open_bytes(swapped, ctx)
    with pytest.raises(DecryptionError):  # the right blob opened as another object
        vault.open_bytes(sealed, other_ctx)


def test_vault_stores_nothing_while_kms_is_down(
    s3_store: S3BlobStore, kms_provider: KmsKeyProvider
) -> None:
    down = KmsKeyProvider(kms_provider.key_id, client=kms_client(closed_port_url()))
    ctx = SealContext(object_id="obj-1", dataset_id="ds-1", kind="original", version=1)
    with pytest.raises(KeyProviderError):
        Vault(s3_store, down).seal([b"sensitive"], ctx)
    assert list(s3_store.keys()) == []
