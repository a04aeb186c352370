"""The root of Budstikke's error tree.

Every error the bus raises on purpose is a :class:`BusError`. The tree is split by what the
caller must do about it, and every class knows how to answer: an HTTP status for the business
API and, where AS4 is involved, an ebMS 3 error code.

::

    BusError
    ├── InvalidInput                 400  bad input: never retry, tell the sender what is wrong
    │   ├── XmlSecurityError         400  refused by the hardened XML parser (DTD, size, depth)
    │   ├── InvalidIdentifier        400  participant id, organisation number or national id
    │   ├── EnvelopeError            400  SBD structure or Peppol envelope rule broken
    │   ├── SignatureError           400  signature missing, malformed, or does not verify
    │   │   └── UntrustedSigner      400  signer does not chain to a trust anchor
    │   └── PackageError             400  document package (ASiC-E / CMS) cannot be opened
    │       ├── DecryptionError      400  not for our key, or the ciphertext is corrupt
    │       ├── DigestMismatch       400  a file differs from what was signed
    │       ├── MissingFile          400  the manifest or signature names a file that is absent
    │       └── DecompressionError   400  compressed data is corrupt or expands past its cap
    ├── PayloadTooLarge              413  over a configured size limit (also an InvalidInput)
    ├── Unauthorized                 401  no or unknown API credentials
    ├── Forbidden                    403  credentials valid, but not for this organisation
    ├── NotFound                     404  no such message, participant or file
    │   └── NoRoute                  404  receiver not served / no endpoint for this document type
    ├── Conflict                     409  same id, different content; or the wrong state for this
    ├── TransientDeliveryError       503  try again later, with backoff
    ├── PermanentDeliveryError       502  will never succeed: dead-letter, mark FEIL
    └── ConfigurationError           500  the access point itself is set up wrongly

Lower-level errors (lxml, cryptography, asn1crypto, zipfile, drivers) are translated into this
tree at the boundary where they occur, with ``raise ... from exc``; nothing above that boundary
catches a library exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar


class EbmsCode(enum.StrEnum):
    """ebMS 3 Core error codes (OASIS ebMS 3.0 Core, section 6.7) and the AS4 additions."""

    VALUE_NOT_RECOGNIZED = "EBMS:0001"
    FEATURE_NOT_SUPPORTED = "EBMS:0002"
    VALUE_INCONSISTENT = "EBMS:0003"
    OTHER = "EBMS:0004"
    CONNECTION_FAILURE = "EBMS:0005"
    EMPTY_MPC = "EBMS:0006"
    MIME_INCONSISTENCY = "EBMS:0007"
    FEATURE_NOT_SUPPORTED_INCONSISTENT = "EBMS:0008"
    INVALID_HEADER = "EBMS:0009"
    PROCESSING_MODE_MISMATCH = "EBMS:0010"
    EXTERNAL_PAYLOAD_ERROR = "EBMS:0011"
    FAILED_AUTHENTICATION = "EBMS:0101"
    FAILED_DECRYPTION = "EBMS:0102"
    POLICY_NONCOMPLIANCE = "EBMS:0103"
    DYSFUNCTIONAL_RELIABILITY = "EBMS:0201"
    DELIVERY_FAILURE = "EBMS:0202"
    MISSING_RECEIPT = "EBMS:0301"
    INVALID_RECEIPT = "EBMS:0302"
    DECOMPRESSION_FAILURE = "EBMS:0303"


class BusError(Exception):
    """Base of every error Budstikke raises on purpose.

    ``http_status`` and ``ebms_code`` are hints for the edge that answers the peer; ``retry``
    says whether trying the same thing again can succeed.
    """

    http_status: ClassVar[int] = 500
    ebms_code: ClassVar[EbmsCode | None] = EbmsCode.OTHER
    retry: ClassVar[bool] = False
    #: short machine-readable name used in problem details and reports
    code: ClassVar[str] = "bus-error"

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: the rule (or check) that failed, when there is one
        self.rule = rule

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}" if self.rule else self.message


class InvalidInput(BusError):
    http_status = 400
    ebms_code = EbmsCode.INVALID_HEADER
    code = "invalid-input"


class XmlSecurityError(InvalidInput):
    ebms_code = EbmsCode.POLICY_NONCOMPLIANCE
    code = "xml-refused"


class InvalidIdentifier(InvalidInput):
    ebms_code = EbmsCode.VALUE_NOT_RECOGNIZED
    code = "invalid-identifier"


@dataclass(frozen=True)
class Violation:
    """One broken rule: its id (for example ``bad-no-country-c1``) and a human explanation."""

    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


class EnvelopeError(InvalidInput):
    """The SBD breaks one or more structure or envelope rules; all are listed."""

    code = "invalid-envelope"

    def __init__(self, violations: list[Violation] | tuple[Violation, ...]) -> None:
        if not violations:
            raise ValueError("EnvelopeError needs at least one violation")
        self.violations = tuple(violations)
        first = self.violations[0]
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        super().__init__(first.message + more, rule=first.rule)


class SignatureError(InvalidInput):
    ebms_code = EbmsCode.FAILED_AUTHENTICATION
    code = "invalid-signature"


class UntrustedSigner(SignatureError):
    code = "untrusted-signer"


class PackageError(InvalidInput):
    ebms_code = EbmsCode.POLICY_NONCOMPLIANCE
    code = "invalid-package"


class DecryptionError(PackageError):
    ebms_code = EbmsCode.FAILED_DECRYPTION
    code = "decryption-failed"


class DigestMismatch(PackageError):
    ebms_code = EbmsCode.FAILED_AUTHENTICATION
    code = "digest-mismatch"


class MissingFile(PackageError):
    code = "missing-file"


class DecompressionError(PackageError):
    ebms_code = EbmsCode.DECOMPRESSION_FAILURE
    code = "decompression-failed"


class PayloadTooLarge(InvalidInput):
    http_status = 413
    code = "payload-too-large"


class Unauthorized(BusError):
    http_status = 401
    ebms_code = EbmsCode.FAILED_AUTHENTICATION
    code = "unauthorized"


class Forbidden(BusError):
    http_status = 403
    ebms_code = EbmsCode.FAILED_AUTHENTICATION
    code = "forbidden"


class Conflict(BusError):
    """The same message id with different content, or an operation the message's state forbids."""

    http_status = 409
    ebms_code = EbmsCode.VALUE_INCONSISTENT
    code = "conflict"


class NotFound(BusError):
    http_status = 404
    ebms_code = EbmsCode.OTHER
    code = "not-found"


class NoRoute(NotFound):
    """The receiver is not served here, or publishes no endpoint for this document type."""

    ebms_code = EbmsCode.OTHER
    code = "no-route"


class TransientDeliveryError(BusError):
    http_status = 503
    ebms_code = EbmsCode.DELIVERY_FAILURE
    retry = True
    code = "transient-delivery-failure"


class PermanentDeliveryError(BusError):
    http_status = 502
    ebms_code = EbmsCode.DELIVERY_FAILURE
    code = "permanent-delivery-failure"


class ConfigurationError(BusError):
    http_status = 500
    ebms_code = EbmsCode.OTHER
    code = "configuration-error"
