"""Fixtures for the AS4 core: two access points of the dev PKI, a routing, an SBD, and helpers
that take a built message apart and put it back together (re-signed, where a test needs a
well-signed message that breaks a rule further in)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from access_point.as4 import Identifier, OutboundMessage, Routing, build_user_message, write
from access_point.as4.signer import certificate_b64
from access_point.as4.spec import NS
from access_point.as4.wssec import c14n
from sbdh.pki import Credential, DevPki, issue_end_entity
from sbdh.trust import TrustStore

SENDER_ID = "0192:991825827"
RECEIVER_ID = "0192:974760673"
DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##"
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

SBD = f"""<?xml version="1.0" encoding="UTF-8"?>
<StandardBusinessDocument xmlns="http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader">
  <StandardBusinessDocumentHeader>
    <HeaderVersion>1.0</HeaderVersion>
    <Sender><Identifier Authority="iso6523-actorid-upis">{SENDER_ID}</Identifier></Sender>
    <Receiver><Identifier Authority="iso6523-actorid-upis">{RECEIVER_ID}</Identifier></Receiver>
    <DocumentIdentification>
      <Standard>urn:oasis:names:specification:ubl:schema:xsd:Invoice-2</Standard>
      <TypeVersion>2.1</TypeVersion>
      <InstanceIdentifier>6f3a2d5e-1b7c-4d7e-9a51-0c2b8e4f6a10</InstanceIdentifier>
      <Type>Invoice</Type>
      <CreationDateAndTime>2024-05-01T12:30:00Z</CreationDateAndTime>
    </DocumentIdentification>
    <BusinessScope>
      <Scope><Type>DOCUMENTID</Type><InstanceIdentifier>{DOCTYPE}</InstanceIdentifier>
        <Identifier>busdox-docid-qns</Identifier></Scope>
      <Scope><Type>PROCESSID</Type><InstanceIdentifier>{PROCESS}</InstanceIdentifier>
        <Identifier>cenbii-procid-ubl</Identifier></Scope>
      <Scope><Type>COUNTRY_C1</Type><InstanceIdentifier>NO</InstanceIdentifier></Scope>
    </BusinessScope>
  </StandardBusinessDocumentHeader>
  <Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>Æ-1</ID></Invoice>
</StandardBusinessDocument>
""".encode()


@pytest.fixture(scope="session")
def ap_trust(dev_pki: DevPki) -> TrustStore:
    """Our anchors for access points: the dev root, with the AP CA as a known intermediate
    (a Peppol BinarySecurityToken carries the leaf only)."""
    return TrustStore((dev_pki.root.certificate,), (dev_pki.ap_ca.certificate,))


@pytest.fixture(scope="session")
def sender(dev_pki: DevPki) -> Credential:
    return dev_pki.access_points["PNO000001"]


@pytest.fixture(scope="session")
def receiver(dev_pki: DevPki) -> Credential:
    return dev_pki.access_points["PNO000002"]


@pytest.fixture(scope="session")
def stranger(dev_pki: DevPki, now: datetime) -> Credential:
    """A third access point of the same PKI."""
    return issue_end_entity(dev_pki.ap_ca, "PNO000003", now=now, organisation="Other AP")


@pytest.fixture(scope="session")
def routing() -> Routing:
    return Routing(
        sender=Identifier.participant(SENDER_ID),
        receiver=Identifier.participant(RECEIVER_ID),
        document_type=Identifier.document_type(DOCTYPE),
        process=Identifier.process(PROCESS),
    )


@pytest.fixture
def build(
    sender: Credential, receiver: Credential, routing: Routing, now: datetime
) -> Callable[..., OutboundMessage]:
    def make(payload: object = SBD, **kwargs: object) -> OutboundMessage:
        args: dict[str, object] = {
            "routing": routing,
            "sender": sender,
            "receiver_certificate": receiver.certificate,
            "now": now,
        }
        args.update(kwargs)
        return build_user_message(payload, **args)  # type: ignore[arg-type]

    return make


def later(now: datetime, days: int) -> datetime:
    return (now + timedelta(days=days)).astimezone(UTC)


# --------------------------------------------------------------------------- taking apart


class Wire:
    """A built message's body split into its MIME pieces, to alter and join again."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.content_type = content_type
        match = re.search(r'boundary="([^"]+)"', content_type)
        assert match
        self.boundary = match.group(1)
        delimiter = f"--{self.boundary}".encode()
        chunks = body.split(b"\r\n" + delimiter)
        first = chunks[0]
        assert first.startswith(delimiter + b"\r\n")
        raw_parts = [first[len(delimiter) + 2 :], *(c[2:] for c in chunks[1:-1])]
        assert chunks[-1] == b"--\r\n"
        self.parts: list[tuple[bytes, bytes]] = []
        for raw in raw_parts:
            head, _, content = raw.partition(b"\r\n\r\n")
            self.parts.append((head, content))

    @property
    def soap(self) -> bytes:
        return self.parts[0][1]

    @soap.setter
    def soap(self, value: bytes) -> None:
        self.parts[0] = (self.parts[0][0], value)

    @property
    def attachment(self) -> bytes:
        return self.parts[1][1]

    @attachment.setter
    def attachment(self, value: bytes) -> None:
        self.parts[1] = (self.parts[1][0], value)

    def join(self, *, eol: bytes = b"\r\n", preamble: bytes = b"") -> bytes:
        delimiter = f"--{self.boundary}".encode()
        out = [preamble]
        for head, content in self.parts:
            out += [delimiter, eol, head.replace(b"\r\n", eol), eol, eol, content, eol]
        out += [delimiter, b"--", eol]
        return b"".join(out)


def wire(message: OutboundMessage) -> Wire:
    return Wire(message.to_bytes(), message.content_type)


EB = NS.EB
WSSE = NS.WSSE
WSU = NS.WSU
DS = NS.DS
S12 = NS.SOAP12
NSMAP = {"eb": EB, "wsse": WSSE, "wsu": WSU, "ds": DS, "S12": S12, "xenc": NS.XENC}


def xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def find(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path, NSMAP)
    assert found is not None, path
    return found


def resign(
    soap: bytes,
    signer: Credential,
    mutate: Callable[[etree._Element], None] = lambda root: None,
    *,
    cover: Callable[[etree._Element], list[tuple[str, etree._Element]]] | None = None,
) -> bytes:
    """``soap`` altered by ``mutate`` and signed again by ``signer`` (attachment digests kept).

    ``cover`` picks the ``(wsu:Id, element)`` pairs to sign; Messaging and Body by default.
    """
    root = xml(soap)
    mutate(root)
    security = find(root, "S12:Header/wsse:Security")
    signature = find(security, "ds:Signature")
    attachments = [
        (ref.get("URI", "")[4:], base64.b64decode(ref.findtext("ds:DigestValue", "", NSMAP)))
        for ref in signature.iterfind("ds:SignedInfo/ds:Reference", NSMAP)
        if ref.get("URI", "").startswith("cid:")
    ]
    token_id = find(signature, "ds:KeyInfo/wsse:SecurityTokenReference/wsse:Reference").get(
        "URI", ""
    )[1:]
    token = next(
        t
        for t in security.iterfind("wsse:BinarySecurityToken", NSMAP)
        if t.get(f"{{{WSU}}}Id") == token_id
    )
    token.text = certificate_b64(signer.certificate)
    security.remove(signature)
    messaging = find(root, "S12:Header/eb:Messaging")
    body = find(root, "S12:Body")
    targets = (
        cover(root)
        if cover
        else [(messaging.get(f"{{{WSU}}}Id", ""), messaging), (body.get(f"{{{WSU}}}Id", ""), body)]
    )
    ids = {
        "signature": f"SIG-{uuid.uuid4()}",
        "key_info": f"KI-{uuid.uuid4()}",
        "str": f"STR-{uuid.uuid4()}",
    }
    text, _ = write.signature(
        signer.key,
        token_id=token_id,
        ids=ids,
        elements=[(target_id, c14n(element)) for target_id, element in targets],
        attachments=attachments,
    )
    holder = etree.fromstring(
        f'<holder xmlns:ds="{DS}" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}">{text}</holder>'.encode()
    )
    security.append(holder[0])
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out
