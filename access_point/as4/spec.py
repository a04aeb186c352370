"""The identifiers the AS4 core speaks: namespaces, algorithm URIs and Peppol's fixed values.

Values are the specifications' own strings. Sources: OASIS ebMS 3.0 Core and its AS4 profile,
WS-Security 1.1 (SOAP Message Security, X.509 Token Profile, SwA Profile 1.1), XML Signature
and XML Encryption 1.1, the CEF eDelivery AS4 profile and the Peppol AS4 profile 2.0.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "AGREEMENT_TIA_AP_PROVIDER",
    "AP_PARTY_TYPE",
    "GZIP_MIME",
    "NS",
    "PEPPOL_NOT_SERVICED",
    "SOAP12_MIME",
    "Algorithm",
    "ErrorCategory",
    "PropertyName",
    "Role",
    "Severity",
]


class NS:
    """XML namespaces (plain strings: they are spliced into every tag on hot paths)."""

    SOAP12: Final = "http://www.w3.org/2003/05/soap-envelope"
    EB: Final = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/"
    EBBP: Final = "http://docs.oasis-open.org/ebxml-bp/ebbp-signals-2.0"
    WSSE: Final = (
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    )
    WSSE11: Final = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
    WSU: Final = (
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    )
    DS: Final = "http://www.w3.org/2000/09/xmldsig#"
    EC: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
    XENC: Final = "http://www.w3.org/2001/04/xmlenc#"
    XENC11: Final = "http://www.w3.org/2009/xmlenc11#"
    XML: Final = "http://www.w3.org/XML/1998/namespace"


class Algorithm(enum.StrEnum):
    """Algorithm and token-type URIs of the profile."""

    EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    ATTACHMENT_CONTENT_SIGNATURE = "http://docs.oasis-open.org/wss/oasis-wss-SwAProfile-1.1#Attachment-Content-Signature-Transform"
    ATTACHMENT_CIPHERTEXT = (
        "http://docs.oasis-open.org/wss/oasis-wss-SwAProfile-1.1#Attachment-Ciphertext-Transform"
    )
    ATTACHMENT_CONTENT_ONLY = (
        "http://docs.oasis-open.org/wss/oasis-wss-SwAProfile-1.1#Attachment-Content-Only"
    )
    AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
    RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
    MGF1_SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"
    X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
    BASE64_BINARY = (
        "http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-soap-message-security-1.0#Base64Binary"
    )
    X509_SKI = (
        "http://docs.oasis-open.org/wss/2004/01/"
        "oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
    )
    THUMBPRINT_SHA1 = (
        "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
    )
    # a token type URI, not a secret
    ENCRYPTED_KEY_TOKEN = (
        "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"  # noqa: S105
    )


class Role(enum.StrEnum):
    """MSH roles; Peppol uses the ebMS defaults for initiator and responder."""

    INITIATOR = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/initiator"
    RESPONDER = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/responder"


class PropertyName(enum.StrEnum):
    """Message and part properties the Peppol profile uses."""

    ORIGINAL_SENDER = "originalSender"
    FINAL_RECIPIENT = "finalRecipient"
    MIME_TYPE = "MimeType"
    COMPRESSION_TYPE = "CompressionType"
    CHARACTER_SET = "CharacterSet"


class Severity(enum.StrEnum):
    FAILURE = "failure"
    WARNING = "warning"


class ErrorCategory(enum.StrEnum):
    CONTENT = "Content"
    COMMUNICATION = "Communication"
    UNPACKAGING = "Unpackaging"
    PROCESSING = "Processing"


#: eb:PartyId/@type of the access points (the value is the AP certificate's CN)
AP_PARTY_TYPE: Final = "urn:fdc:peppol.eu:2017:identifiers:ap"
#: eb:AgreementRef of every Peppol AS4 exchange
AGREEMENT_TIA_AP_PROVIDER: Final = "urn:fdc:peppol.eu:2017:agreements:tia:ap_provider"
#: eb:ErrorDetail of the EBMS:0004 a receiving AP answers for a participant it does not serve
PEPPOL_NOT_SERVICED: Final = "PEPPOL:NOT_SERVICED"
#: the payload's compression, the only one AS4 defines
GZIP_MIME: Final = "application/gzip"
SOAP12_MIME: Final = "application/soap+xml"
