"""Helpers shared by the SBD tests: sample lists, model builders, and an independent notion of
"the same XML document"."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from sbdh.identifiers import ParticipantId
from sbdh.model import (
    BinaryContent,
    BusinessMessage,
    JsonObject,
    StandardBusinessDocument,
    TextContent,
    XmlPayload,
    eformidling_sbd,
    peppol_sbd,
)
from sbdh.xmlsafe import parse_xml
from tests.conftest import TESTDATA

CREATED = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


#: SBDH 1.3 elements of complex type: their whitespace is never content, even when empty
_SBDH_STRUCTURES = {
    f"{{http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader}}{name}"
    for name in (
        "StandardBusinessDocument",
        "StandardBusinessDocumentHeader",
        "Sender",
        "Receiver",
        "ContactInformation",
        "DocumentIdentification",
        "Manifest",
        "ManifestItem",
        "BusinessScope",
        "Scope",
        "ScopeInformation",
        "CorrelationInformation",
        "BusinessService",
        "ServiceTransaction",
    )
}


def _strip_indentation(root: etree._Element) -> None:
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        element_only = len(node) or node.tag in _SBDH_STRUCTURES
        if element_only and node.text is not None and not node.text.strip():
            node.text = None
        for child in node:
            if child.tail is not None and not child.tail.strip():
                child.tail = None


def _rebuild(node: etree._Element) -> etree._Element:
    """A copy whose namespace prefixes are lxml's own (ns0, ns1, ... in document order)."""
    copy = etree.Element(node.tag, dict(node.attrib))
    copy.text = node.text
    for child in node:
        if isinstance(child.tag, str):
            new = _rebuild(child)
            new.tail = child.tail
            copy.append(new)
    return copy


def c14n(data: bytes, *, ignore_prefixes: bool = False) -> bytes:
    """Exclusive C14N (no comments) of a document, indentation in element-only content removed.

    With ``ignore_prefixes`` the prefixes are renamed uniformly first, for comparisons across the
    JSON form, which does not carry them.
    """
    root = parse_xml(data)
    _strip_indentation(root)
    if ignore_prefixes:
        root = _rebuild(root)
    return etree.tostring(root, method="c14n", exclusive=True, with_comments=False)


INVOICE_DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
BILLING = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
INVOICE = b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><x/></Invoice>'

SAMPLES = TESTDATA / "sbdh" / "samples"
GOOD = sorted(p.name for p in (SAMPLES / "good").glob("*.xml")) if SAMPLES.is_dir() else []
BAD = sorted(p.name for p in (SAMPLES / "bad").glob("*.xml")) if SAMPLES.is_dir() else []
#: every XML SBD in the shared data that is structurally sound
READABLE = [f"sbdh/samples/good/{n}" for n in GOOD] + [
    "sbdh/samples/vefa-peppol-bis-invoice-sbdh.xml",
    "eformidling/samples/StandardBusinessDocument.xml",
]
READABLE += [
    f"sbdh/samples/bad/{n}"
    for n in BAD
    if n
    not in {
        # these break the SBDH 1.3 structure itself, not only the Peppol rules
        "bad-invalid-business-message.xml",
        "bad-invalid-creation-date-and-time.xml",
        "bad-mls-to-empty.xml",
        "bad-mls-to-no-value.xml",
        "bad-mls-type-empty.xml",
        "bad-no-business-message.xml",
        "bad-no-sbdh.xml",
        "bad-too-few-receivers.xml",
        "bad-too-few-senders.xml",
    }
]

EFORMIDLING_SAMPLES = TESTDATA / "eformidling" / "samples"
JSON_SAMPLES = (
    sorted(p.name for p in EFORMIDLING_SAMPLES.glob("*-sbd.json"))
    if EFORMIDLING_SAMPLES.is_dir()
    else []
)


def peppol(**overrides: Any) -> StandardBusinessDocument:
    values: dict[str, Any] = {
        "sender": ParticipantId("0192:991825827"),
        "receiver": "0192:974760673",
        "document_type_id": INVOICE_DOCTYPE,
        "process_id": BILLING,
        "country_c1": "NO",
        "payload": XmlPayload(INVOICE),
        "instance_identifier": "6f8c0c5e-6a1b-4b7e-9c1f-0d5f4d4b7a11",
        "created": CREATED,
    }
    values.update(overrides)
    return peppol_sbd(**values)


def message(body: dict[str, Any], message_type: str = "digital") -> BusinessMessage:
    return BusinessMessage(message_type, JsonObject.of(body))


def eformidling_document(
    payload: BusinessMessage | XmlPayload | BinaryContent | TextContent,
) -> StandardBusinessDocument:
    """A valid eFormidling SBD around ``payload``."""
    sbd = eformidling_sbd(
        sender="0192:991825827",
        receiver="0192:974760673",
        message=(
            payload
            if isinstance(payload, BusinessMessage | XmlPayload)
            else XmlPayload(b"<a:x xmlns:a='urn:a'/>")
        ),
        standard="urn:fdc:digdir.no:2020:innbyggerpost:xsd::innbyggerpost",
        process="urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:digital:ver1.0",
        conversation_id="c-1",
        instance_identifier="i-1",
        created=CREATED,
    )
    return dataclasses.replace(sbd, payload=payload)
