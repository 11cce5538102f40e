"""Key-encryption keys held by AWS KMS (or any KMS API endpoint) through boto3.

Data keys are wrapped with KMS ``Encrypt`` and unwrapped with ``Decrypt``; the key material
never leaves KMS. Each wrap is bound to the object's context through the encryption
context ``{"gateway-aad": sha256(context).hexdigest()}``: KMS authenticates it like AEAD
associated data, so a wrapped key moved to another object fails to unwrap. It is hashed
because KMS writes encryption contexts into CloudTrail in clear and caps their size.
:class:`WrappedKey` records the key ARN that KMS reports, and ``Decrypt`` names it, so a
ciphertext is only ever opened by the key that made it.

Failures are sorted the way the vault needs them: anything that says *this* wrapped key
cannot be opened (bad ciphertext, wrong context or key, a disabled, deleted or
pending-deletion key) is the one opaque :class:`DecryptionError`; an unreachable,
throttling or refusing service is :class:`KeyProviderError`, so the caller fails closed
and may retry later.

Pseudonym secrets (:meth:`KmsKeyProvider.secret`) need a value that is stable across
restarts and replicas, yet never stored outside KMS. ``Encrypt`` is randomized, so it
cannot give one; ``GenerateMac`` is deterministic. The provider is therefore given a
second KMS key, ``hmac_key_id`` (``KeyUsage=GENERATE_VERIFY_MAC``, ``KeySpec=HMAC_256``),
and a secret is ``HMAC-SHA-256(hmac key, "gateway/secret/v1\\n" + name)``: a PRF output,
the same for every process while that key exists (KMS does not rotate HMAC keys), and
gone for good if the key is deleted. moto 5 implements ``GenerateMac`` the same way, so
the integration tests run it for real.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError, ParamValidationError

from gateway.errors import ConfigError, DecryptionError, KeyProviderError
from gateway.storage.base import WrappedKey

# KMS answers in milliseconds: a stuck request is dropped after 10 s, an unreachable endpoint
# after 5 s, each with up to two standard (backed-off) retries, so callers fail in seconds.
_CONFIG = Config(
    connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3}
)
_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # as in the local keyring
_SECRET_LABEL = b"gateway/secret/v1\n"
# Decrypt errors that mean "this wrapped key cannot be opened", not "try again later".
_UNOPENABLE = frozenset(
    {
        "InvalidCiphertextException",  # tampered blob or wrong encryption context
        "IncorrectKeyException",  # wrapped under another key
        "DisabledException",
        "KMSInvalidStateException",  # pending deletion, or pending import
        "NotFoundException",  # the key was deleted: the object is shredded
        "InvalidKeyUsageException",
        "ValidationException",  # a malformed stored key id or blob
    }
)


def make_client(
    endpoint_url: str | None = None, region: str | None = None, **credentials: Any
) -> Any:
    """A boto3 KMS client with short timeouts and standard retries.

    ``credentials`` are explicit boto3 keys; without them boto3's usual chain applies.
    """
    try:
        return boto3.client(
            "kms", endpoint_url=endpoint_url, region_name=region, config=_CONFIG, **credentials
        )
    except NoRegionError:
        raise ConfigError("the KMS key provider needs an AWS region") from None


class KmsKeyProvider:
    """A :class:`~gateway.storage.base.KeyProvider` over one KMS symmetric key."""

    name = "kms"

    def __init__(
        self,
        key_id: str,
        *,
        hmac_key_id: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        """``key_id`` wraps data keys; ``hmac_key_id`` (optional) derives named secrets."""
        if not key_id:
            raise ValueError("KmsKeyProvider needs a key id")
        self.key_id = key_id
        self.hmac_key_id = hmac_key_id
        self._kms = client if client is not None else make_client(endpoint_url, region)
        self._secrets: dict[str, bytes] = {}

    def wrap(self, data_key: bytes, context: bytes) -> WrappedKey:
        try:
            sent = self._kms.encrypt(
                KeyId=self.key_id, Plaintext=data_key, EncryptionContext=_context(context)
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("Encrypt", exc) from exc
        return WrappedKey(key_id=sent["KeyId"], wrapped=sent["CiphertextBlob"])

    def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        try:
            opened = self._kms.decrypt(
                CiphertextBlob=wrapped.wrapped,
                KeyId=wrapped.key_id,
                EncryptionContext=_context(context),
            )
        except ParamValidationError:
            raise DecryptionError() from None  # e.g. an empty stored blob
        except ClientError as exc:
            if _code(exc) in _UNOPENABLE:
                raise DecryptionError() from None
            raise _unavailable("Decrypt", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("Decrypt", exc) from exc
        return bytes(opened["Plaintext"])

    def check(self) -> None:
        """Both keys exist, are enabled and have the right usage (``DescribeKey``)."""
        self._check_key(self.key_id, "ENCRYPT_DECRYPT")
        if self.hmac_key_id is not None:
            self._check_key(self.hmac_key_id, "GENERATE_VERIFY_MAC")

    def secret(self, name: str) -> bytes:
        """A stable 32-byte secret called ``name`` (e.g. the pseudonym HMAC key).

        Derived with ``GenerateMac`` under ``hmac_key_id`` (see the module docstring) and
        cached: it never changes while the key lives, so asking KMS again gains nothing.
        """
        if not _SECRET_NAME.fullmatch(name):
            raise ValueError("secret names are 1-64 characters of [a-z0-9._-]")
        if self.hmac_key_id is None:
            raise ConfigError("the KMS key provider needs an HMAC key id for named secrets")
        known = self._secrets.get(name)
        if known is None:
            known = self._secrets[name] = self._derive(self.hmac_key_id, name)
        return known

    def _derive(self, hmac_key_id: str, name: str) -> bytes:
        try:
            made = self._kms.generate_mac(
                KeyId=hmac_key_id,
                Message=_SECRET_LABEL + name.encode(),
                MacAlgorithm="HMAC_SHA_256",
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("GenerateMac", exc) from exc
        return bytes(made["Mac"])

    def _check_key(self, key_id: str, usage: str) -> None:
        try:
            meta = self._kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("DescribeKey", exc) from exc
        if meta.get("KeyState") != "Enabled":
            raise KeyProviderError(f"KMS key {key_id} is {meta.get('KeyState')}, not Enabled")
        if meta.get("KeyUsage") != usage:
            raise KeyProviderError(f"KMS key {key_id} is not a {usage} key")


def _context(context: bytes) -> dict[str, str]:
    return {"gateway-aad": hashlib.sha256(context).hexdigest()}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


def _unavailable(operation: str, exc: BotoCoreError | ClientError) -> KeyProviderError:
    """Operation and error code only: botocore messages may quote request details."""
    reason = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return KeyProviderError(f"key service unavailable: KMS {operation} failed ({reason})")
