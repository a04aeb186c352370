"""What can go wrong in the AS4 core, each error carrying the ebMS answer it calls for.

Receiving refuses a message with one of the errors below; the edge turns it into a signed ebMS
Error signal with :func:`~access_point.as4.signals.build_error`, which reads the code, category
and short description from the class and the description from the message. Every class sits in
the bus's tree (:mod:`sbdh.errors`), beside the generic error it refines, so a caller that
catches ``SignatureError`` or ``DecryptionError`` also catches the AS4 flavour::

    BusError
    ├── InvalidInput
    │   └── As4Error                          the AS4 core refused a message (never retry)
    │       ├── ValueNotRecognized            EBMS:0001
    │       ├── FeatureNotSupported           EBMS:0002  (bundling, several payloads)
    │       ├── ValueInconsistent             EBMS:0003
    │       ├── OtherError                    EBMS:0004
    │       │   └── NotServiced               EBMS:0004  PEPPOL:NOT_SERVICED (also a NoRoute)
    │       ├── MimeInconsistency             EBMS:0007
    │       ├── InvalidHeader                 EBMS:0009
    │       ├── ExternalPayloadError          EBMS:0011  (a PartInfo names no MIME part)
    │       ├── FailedAuthentication          EBMS:0101  (also a SignatureError)
    │       │   └── UntrustedSender           EBMS:0101  (also an UntrustedSigner)
    │       ├── FailedDecryption              EBMS:0102  (also a DecryptionError)
    │       ├── PolicyNoncompliance           EBMS:0103
    │       └── DecompressionFailure          EBMS:0303  (also a DecompressionError)
    └── PermanentDeliveryError
        └── SendFailed                        the peer did not acknowledge what we sent
            ├── ErrorSignalReceived           it answered with an ebMS Error (codes in .errors)
            └── InvalidReceipt                EBMS:0302  its receipt does not prove delivery

The errors raised while receiving know the id of the message they refuse once it could be read
(``ref_to_message_id``), so the answer can name it in ``refToMessageInError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sbdh.errors import (
    DecompressionError,
    DecryptionError,
    EbmsCode,
    InvalidInput,
    NoRoute,
    PermanentDeliveryError,
    SignatureError,
    UntrustedSigner,
)

from .spec import PEPPOL_NOT_SERVICED, ErrorCategory, Severity

__all__ = [
    "EBMS_ERRORS",
    "As4Error",
    "DecompressionFailure",
    "EbmsError",
    "ErrorSignalReceived",
    "ExternalPayloadError",
    "FailedAuthentication",
    "FailedDecryption",
    "FeatureNotSupported",
    "InvalidHeader",
    "InvalidReceipt",
    "MimeInconsistency",
    "NotServiced",
    "OtherError",
    "PolicyNoncompliance",
    "SendFailed",
    "UntrustedSender",
    "ValueInconsistent",
    "ValueNotRecognized",
]


class As4Error(InvalidInput):
    """A message the AS4 core refuses; the class names the ebMS error to answer with.

    A refusal is always sent with severity ``failure`` (the message was not processed), even
    for codes whose table default is ``warning`` (EBMS:0002).
    """

    ebms_code: ClassVar[EbmsCode] = EbmsCode.OTHER
    short_description: ClassVar[str] = "Other"
    category: ClassVar[ErrorCategory] = ErrorCategory.CONTENT
    code = "as4-refused"

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        ref_to_message_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, rule=rule)
        #: eb:MessageId of the refused message, once it could be read
        self.ref_to_message_id = ref_to_message_id
        #: eb:ErrorDetail to send; the message itself is sent as eb:Description
        self.detail = detail

    def to_ebms(self) -> EbmsError:
        """The ebMS error this refusal is answered with."""
        return EbmsError(
            code=self.ebms_code.value,
            severity=Severity.FAILURE.value,
            category=self.category.value,
            short_description=self.short_description,
            description=self.message,
            detail=self.detail,
            ref_to_message_in_error=self.ref_to_message_id,
        )


class ValueNotRecognized(As4Error):
    ebms_code = EbmsCode.VALUE_NOT_RECOGNIZED
    short_description = "ValueNotRecognized"
    code = "as4-value-not-recognized"


class FeatureNotSupported(As4Error):
    ebms_code = EbmsCode.FEATURE_NOT_SUPPORTED
    short_description = "FeatureNotSupported"
    code = "as4-feature-not-supported"


class ValueInconsistent(As4Error):
    ebms_code = EbmsCode.VALUE_INCONSISTENT
    short_description = "ValueInconsistent"
    code = "as4-value-inconsistent"


class OtherError(As4Error):
    ebms_code = EbmsCode.OTHER
    short_description = "Other"
    code = "as4-other"


class NotServiced(OtherError, NoRoute):
    """The final recipient (or its document type and process) is not served here."""

    code = "as4-not-serviced"

    def __init__(self, message: str, *, ref_to_message_id: str | None = None) -> None:
        super().__init__(
            message,
            rule="peppol-not-serviced",
            ref_to_message_id=ref_to_message_id,
            detail=PEPPOL_NOT_SERVICED,
        )

    def to_ebms(self) -> EbmsError:
        # Peppol expects the marker itself as the description as well as the detail
        error = super().to_ebms()
        return EbmsError(
            code=error.code,
            severity=error.severity,
            category=error.category,
            short_description=error.short_description,
            description=PEPPOL_NOT_SERVICED,
            detail=PEPPOL_NOT_SERVICED,
            ref_to_message_in_error=error.ref_to_message_in_error,
        )


class MimeInconsistency(As4Error):
    ebms_code = EbmsCode.MIME_INCONSISTENCY
    short_description = "MimeInconsistency"
    category = ErrorCategory.UNPACKAGING
    code = "as4-mime-inconsistency"


class InvalidHeader(As4Error):
    ebms_code = EbmsCode.INVALID_HEADER
    short_description = "InvalidHeader"
    category = ErrorCategory.UNPACKAGING
    code = "as4-invalid-header"


class ExternalPayloadError(As4Error):
    ebms_code = EbmsCode.EXTERNAL_PAYLOAD_ERROR
    short_description = "ExternalPayloadError"
    code = "as4-external-payload"


class FailedAuthentication(As4Error, SignatureError):
    ebms_code = EbmsCode.FAILED_AUTHENTICATION
    short_description = "FailedAuthentication"
    category = ErrorCategory.PROCESSING
    code = "as4-failed-authentication"


class UntrustedSender(FailedAuthentication, UntrustedSigner):
    code = "as4-untrusted-sender"


class FailedDecryption(As4Error, DecryptionError):
    ebms_code = EbmsCode.FAILED_DECRYPTION
    short_description = "FailedDecryption"
    category = ErrorCategory.PROCESSING
    code = "as4-failed-decryption"


class PolicyNoncompliance(As4Error):
    ebms_code = EbmsCode.POLICY_NONCOMPLIANCE
    short_description = "PolicyNoncompliance"
    category = ErrorCategory.PROCESSING
    code = "as4-policy-noncompliance"


class DecompressionFailure(As4Error, DecompressionError):
    ebms_code = EbmsCode.DECOMPRESSION_FAILURE
    short_description = "DecompressionFailure"
    category = ErrorCategory.COMMUNICATION
    code = "as4-decompression-failure"


#: the ebMS 3 / AS4 error table: short description, category, severity
EBMS_ERRORS: dict[EbmsCode, tuple[str, ErrorCategory, Severity]] = {
    EbmsCode.VALUE_NOT_RECOGNIZED: ("ValueNotRecognized", ErrorCategory.CONTENT, Severity.FAILURE),
    EbmsCode.FEATURE_NOT_SUPPORTED: (
        "FeatureNotSupported",
        ErrorCategory.CONTENT,
        Severity.WARNING,
    ),
    EbmsCode.VALUE_INCONSISTENT: ("ValueInconsistent", ErrorCategory.CONTENT, Severity.FAILURE),
    EbmsCode.OTHER: ("Other", ErrorCategory.CONTENT, Severity.FAILURE),
    EbmsCode.CONNECTION_FAILURE: (
        "ConnectionFailure",
        ErrorCategory.COMMUNICATION,
        Severity.FAILURE,
    ),
    EbmsCode.EMPTY_MPC: (
        "EmptyMessagePartitionChannel",
        ErrorCategory.COMMUNICATION,
        Severity.WARNING,
    ),
    EbmsCode.MIME_INCONSISTENCY: ("MimeInconsistency", ErrorCategory.UNPACKAGING, Severity.FAILURE),
    EbmsCode.FEATURE_NOT_SUPPORTED_INCONSISTENT: (
        "FeatureNotSupported",
        ErrorCategory.UNPACKAGING,
        Severity.FAILURE,
    ),
    EbmsCode.INVALID_HEADER: ("InvalidHeader", ErrorCategory.UNPACKAGING, Severity.FAILURE),
    EbmsCode.PROCESSING_MODE_MISMATCH: (
        "ProcessingModeMismatch",
        ErrorCategory.PROCESSING,
        Severity.FAILURE,
    ),
    EbmsCode.EXTERNAL_PAYLOAD_ERROR: (
        "ExternalPayloadError",
        ErrorCategory.CONTENT,
        Severity.FAILURE,
    ),
    EbmsCode.FAILED_AUTHENTICATION: (
        "FailedAuthentication",
        ErrorCategory.PROCESSING,
        Severity.FAILURE,
    ),
    EbmsCode.FAILED_DECRYPTION: ("FailedDecryption", ErrorCategory.PROCESSING, Severity.FAILURE),
    EbmsCode.POLICY_NONCOMPLIANCE: (
        "PolicyNoncompliance",
        ErrorCategory.PROCESSING,
        Severity.FAILURE,
    ),
    EbmsCode.DYSFUNCTIONAL_RELIABILITY: (
        "DysfunctionalReliability",
        ErrorCategory.PROCESSING,
        Severity.FAILURE,
    ),
    EbmsCode.DELIVERY_FAILURE: ("DeliveryFailure", ErrorCategory.COMMUNICATION, Severity.FAILURE),
    EbmsCode.MISSING_RECEIPT: ("MissingReceipt", ErrorCategory.COMMUNICATION, Severity.FAILURE),
    EbmsCode.INVALID_RECEIPT: ("InvalidReceipt", ErrorCategory.COMMUNICATION, Severity.FAILURE),
    EbmsCode.DECOMPRESSION_FAILURE: (
        "DecompressionFailure",
        ErrorCategory.COMMUNICATION,
        Severity.FAILURE,
    ),
}


@dataclass(frozen=True)
class EbmsError:
    """One eb:Error, as sent or as received."""

    code: str
    severity: str = Severity.FAILURE.value
    category: str | None = None
    short_description: str | None = None
    description: str | None = None
    detail: str | None = None
    ref_to_message_in_error: str | None = None
    origin: str | None = None

    @classmethod
    def for_code(
        cls,
        code: EbmsCode,
        *,
        description: str | None = None,
        detail: str | None = None,
        ref_to_message_in_error: str | None = None,
        severity: Severity | None = None,
    ) -> EbmsError:
        """An error with the table's short description, category and severity for ``code``."""
        short, category, default_severity = EBMS_ERRORS[code]
        return cls(
            code=code.value,
            severity=(severity or default_severity).value,
            category=category.value,
            short_description=short,
            description=description,
            detail=detail,
            ref_to_message_in_error=ref_to_message_in_error,
        )

    @property
    def is_failure(self) -> bool:
        # a missing or unknown severity is taken as a failure: only a warning is harmless
        return self.severity != Severity.WARNING.value

    def __str__(self) -> str:
        text = " ".join(
            part for part in (self.code, self.short_description, self.description) if part
        )
        return (
            f"{text} ({self.detail})" if self.detail and self.detail != self.description else text
        )


class SendFailed(PermanentDeliveryError):
    """The peer's answer does not acknowledge the message we sent; ``reason`` says why."""

    code = "as4-send-failed"

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        errors: tuple[EbmsError, ...] = (),
        ref_to_message_id: str | None = None,
    ) -> None:
        super().__init__(message, rule=rule)
        #: the eb:Error elements the peer sent, if any
        self.errors = errors
        #: the eb:MessageId of the message that failed
        self.ref_to_message_id = ref_to_message_id

    @property
    def reason(self) -> str:
        return self.message


class ErrorSignalReceived(SendFailed):
    ebms_code = EbmsCode.OTHER
    code = "as4-error-signal"


class InvalidReceipt(SendFailed):
    ebms_code = EbmsCode.INVALID_RECEIPT
    code = "as4-invalid-receipt"
