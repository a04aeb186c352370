"""The envelope every Budstikke message travels in.

Pure core: bytes and values in, bytes and frozen values out; keys, certificates, trust anchors
and the clock are passed in. One module per idea:

=================  ============================================================================
``errors``         the root of the error tree (``BusError``) with HTTP status and ebMS hints
``xmlsafe``        the one hardened XML parser for untrusted input
``identifiers``    participant ids (ISO 6523), organisation numbers, national ids
``model``          the Standard Business Document (UN/CEFACT SBDH 1.3) and its business scopes
``xmlform``        the SBD's XML form
``jsonform``       the SBD's JSON form (eFormidling NextMove)
``rules``          structure and envelope rules (Peppol, eFormidling, generic)
``stream``         SBDs too large to hold: the header read and judged, the rest only walked
``signing``        enveloped XMLDSig on SBDs, verification against trust anchors
``trust``          certificate path validation
``pki``            a development PKI
``package``        the document package: seal and open
``asic``           ASiC-E container rules (mimetype, every entry signed)
``ziparchive``     the strict streaming ZIP writer and reader under ASiC-E
``xades``          XAdES baseline-B signatures over streamed files
``cms``            CMS EnvelopedData (AES-256-CBC, RSAES-OAEP), streaming, random-access reads
=================  ============================================================================

The names below are importable from ``sbdh`` directly; they load their module on first use, so
``import sbdh.errors`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # errors
    "BusError": "errors",
    "Conflict": "errors",
    "Forbidden": "errors",
    "PayloadTooLarge": "errors",
    "Unauthorized": "errors",
    "ConfigurationError": "errors",
    "DecryptionError": "errors",
    "DigestMismatch": "errors",
    "EbmsCode": "errors",
    "EnvelopeError": "errors",
    "InvalidIdentifier": "errors",
    "InvalidInput": "errors",
    "MissingFile": "errors",
    "NoRoute": "errors",
    "NotFound": "errors",
    "PackageError": "errors",
    "PermanentDeliveryError": "errors",
    "SignatureError": "errors",
    "TransientDeliveryError": "errors",
    "UntrustedSigner": "errors",
    "Violation": "errors",
    "XmlSecurityError": "errors",
    # parser
    "XmlLimits": "xmlsafe",
    "parse_xml": "xmlsafe",
    # identifiers
    "NationalId": "identifiers",
    "OrganisationNumber": "identifiers",
    "ParticipantId": "identifiers",
    # model and forms
    "BinaryContent": "model",
    "BusinessMessage": "model",
    "DetachedPayload": "model",
    "JsonObject": "model",
    "StandardBusinessDocument": "model",
    "StandardBusinessDocumentHeader": "model",
    "TextContent": "model",
    "XmlPayload": "model",
    "eformidling_sbd": "model",
    "peppol_sbd": "model",
    "sbd_from_xml": "xmlform",
    "sbd_to_xml": "xmlform",
    "sbd_from_json": "jsonform",
    "sbd_to_json": "jsonform",
    # rules
    "Profile": "rules",
    "ValidationReport": "rules",
    "check_sbd": "rules",
    "validate_sbd": "rules",
    "check_sbd_stream": "stream",
    "read_sbd_stream": "stream",
    # signatures and trust
    "VerifiedSbd": "signing",
    "sign_sbd": "signing",
    "verify_sbd": "signing",
    "KeyPurpose": "trust",
    "TrustStore": "trust",
    "verify_certificate": "trust",
    "Credential": "pki",
    # document package
    "OpenedPackage": "package",
    "PackageFile": "package",
    "SealedPackage": "package",
    "open_package": "package",
    "seal_package": "package",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the table above is the list


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sbdh' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sbdh.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
