"""One exception tree for the gateway.

Every error the gateway raises on purpose is a :class:`GatewayError` with an HTTP
status and a stable machine code. Foreign errors (botocore, PIL, cv2, pydicom) are
translated at the adapter that sees them. Messages are written for the client and
must never contain values taken from uploaded content (names, filenames, EXIF, DICOM
values): they may be shown to anyone holding a token.

The mapping to RFC 9457 problem responses lives in :mod:`gateway.api.problems`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway raises deliberately."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions


class ConfigError(GatewayError):
    code = "config_invalid"
    title = "Invalid configuration"


class InvalidRequest(GatewayError):
    status = 400
    code = "invalid_request"
    title = "Invalid request"


class InvalidUpload(GatewayError):
    status = 422
    code = "invalid_upload"
    title = "Upload refused"


class UnsupportedMediaType(InvalidUpload):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class UploadTooLarge(InvalidUpload):
    status = 413
    code = "upload_too_large"
    title = "Upload too large"


class AuthenticationRequired(GatewayError):
    status = 401
    code = "authentication_required"
    title = "Authentication required"


class AccessDenied(GatewayError):
    status = 403
    code = "access_denied"
    title = "Access denied"


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    title = "Not found"


class Gone(GatewayError):
    status = 410
    code = "gone"
    title = "No longer kept"


class Conflict(GatewayError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Quarantined(GatewayError):
    """An item failed a step of its policy and was withheld (fail closed)."""

    status = 409
    code = "quarantined"
    title = "Item quarantined"


class AnonymizationFailed(GatewayError):
    """A pipeline step failed; the item must be quarantined with ``reason``."""

    code = "anonymization_failed"
    title = "Anonymization failed"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason, reason=reason)
        self.reason = reason


class DetectorUnavailable(AnonymizationFailed):
    code = "detector_unavailable"
    title = "Detector unavailable"


class StorageError(GatewayError):
    status = 503
    code = "storage_unavailable"
    title = "Storage unavailable"


class KeyProviderError(GatewayError):
    status = 503
    code = "keys_unavailable"
    title = "Key provider unavailable"


class DecryptionError(GatewayError):
    """The single opaque error for any failure to open a sealed object."""

    status = 500
    code = "decryption_failed"
    title = "Sealed object could not be opened"


class ServiceUnavailable(GatewayError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"
