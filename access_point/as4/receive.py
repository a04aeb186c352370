"""Corner 3: take in a Peppol AS4 UserMessage, prove who sent it, and open its payload.

In order, each step refusing with the ebMS error it calls for:

1. MIME: split the body into the SOAP part and attachments (EBMS:0007).
2. SOAP: parse with the hardened parser; locate Header, Body, exactly one eb:Messaging with
   exactly one UserMessage (EBMS:0009; bundling EBMS:0002; a DTD or entity EBMS:0103).
3. Payload shape: one PartInfo (up to :attr:`ReceiveOptions.max_payloads`: eFormidling's
   document package after the SBD), each a ``cid:`` naming its own MIME part, no stray parts,
   an empty Body (EBMS:0002, 0007, 0009, 0011).
4. Signature (:mod:`~access_point.as4.wssec`): the profile, no wrapping, the value and the XML
   digests (EBMS:0101, 0103); the signer chained to our anchors at ``now`` and named by the
   From PartyId (EBMS:0101).
5. Peppol header values: agreement, party types, roles, our CN as To, process and document type,
   originalSender and finalRecipient (EBMS:0001, 0003, 0009); then, if asked, whether we serve
   the final recipient (EBMS:0004 PEPPOL:NOT_SERVICED).
6. Payloads: unwrap the key with our private key, decrypt each payload, check its signed
   digest, gunzip within the cap (EBMS:0102, 0101, 0303; see :mod:`~access_point.as4.crypto`).
   Every payload is decrypted and checked before a decompression failure of any is reported,
   so tampering anywhere is never reported as a corrupt archive.

Nothing of the message is returned before all of it has been verified, and what is returned is
read from the verified elements only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sbdh.pki import Credential
from sbdh.trust import TrustStore

from .crypto import unseal, unwrap_key
from .errors import (
    As4Error,
    DecompressionFailure,
    ExternalPayloadError,
    FailedAuthentication,
    FailedDecryption,
    FeatureNotSupported,
    InvalidHeader,
    MimeInconsistency,
    NotServiced,
    PolicyNoncompliance,
    ValueInconsistent,
    ValueNotRecognized,
)
from .mime import MimePart, content_id_of_href, read_mime
from .model import Identifier, PartInfo, ReceiveOptions, Routing, SignedReference, UserMessage
from .signer import common_name, load_token_certificate, trusted_path
from .soap import Envelope, one_user_message, parse_soap, read_envelope, read_user_message
from .spec import (
    AGREEMENT_TIA_AP_PROVIDER,
    AP_PARTY_TYPE,
    GZIP_MIME,
    NS,
    Algorithm,
    PropertyName,
    Role,
)
from .streams import Payload, Spool, as_source
from .wssec import index_ids, q, verify_signature

__all__ = ["DEFAULT_RECEIVE_OPTIONS", "InboundMessage", "receive_user_message"]

DEFAULT_RECEIVE_OPTIONS = ReceiveOptions()


@dataclass(frozen=True)
class InboundMessage:
    """A verified, decrypted UserMessage. Close it (or use ``with``) to drop the payload spools.

    ``payloads`` are in PartInfo order: the SBD first, then (eFormidling) the document package;
    each carries its Content-ID and the MimeType its PartInfo declares.
    """

    user_message: UserMessage
    routing: Routing
    #: wsu:Id of the signed eb:Messaging
    messaging_id: str | None
    signer: x509.Certificate
    #: the signer's path to our trust anchor, leaf first
    chain: tuple[x509.Certificate, ...]
    #: the signature's references, for the receipt's NonRepudiationInformation
    references: tuple[SignedReference, ...]
    #: every payload, decompressed, in PartInfo order (the SBD first)
    payloads: tuple[Payload, ...]

    @property
    def payload(self) -> Payload:
        """The first payload: the SBD."""
        return self.payloads[0]

    @property
    def content_id(self) -> str:
        """The SBD's Content-ID."""
        return self.payload.content_id or ""

    @property
    def message_id(self) -> str:
        return self.user_message.message_id

    def close(self) -> None:
        for payload in self.payloads:
            payload.close()

    def __enter__(self) -> InboundMessage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def receive_user_message(
    body: bytes | IO[bytes],
    content_type: str | None,
    *,
    credential: Credential,
    trust: TrustStore,
    now: datetime,
    options: ReceiveOptions = DEFAULT_RECEIVE_OPTIONS,
    serves: Callable[[Routing], bool] | None = None,
) -> InboundMessage:
    """Verify and open an incoming AS4 message.

    ``body`` is the HTTP request body (bytes, or a seekable binary file for large requests) and
    ``content_type`` its Content-Type header. ``credential`` is our AP certificate and key,
    ``trust`` the anchors (and intermediates) for the senders' certificates, ``now`` the time of
    verification. ``serves``, when given, says whether we serve the message's final recipient.

    Raises a subclass of :class:`~access_point.as4.errors.As4Error` naming the ebMS error to
    answer with; once the message id is known it is on the error as ``ref_to_message_id``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    source = as_source(body, options.chunk_size)
    mime = read_mime(source, content_type, max_soap_bytes=options.max_soap_bytes)
    root = parse_soap(mime.soap, options.max_soap_bytes)
    envelope = read_envelope(root)
    header = read_user_message(one_user_message(envelope))
    try:
        return _process(
            envelope,
            header,
            mime.attachments,
            credential=credential,
            trust=trust,
            now=now,
            options=options,
            serves=serves,
        )
    except As4Error as exc:
        if exc.ref_to_message_id is None:
            exc.ref_to_message_id = header.message_id
        raise


def _payload_parts(
    envelope: Envelope,
    header: UserMessage,
    attachments: Mapping[str, MimePart],
    max_payloads: int,
) -> list[tuple[str, MimePart]]:
    """``(Content-ID, MIME part)`` of each payload, in PartInfo order."""
    if not header.parts:
        raise InvalidHeader("the UserMessage declares no payload (PartInfo)", rule="as4-payload")
    if len(header.parts) > max_payloads:
        allowed = "Peppol carries exactly one" if max_payloads == 1 else f"at most {max_payloads}"
        raise FeatureNotSupported(
            f"the UserMessage declares {len(header.parts)} payloads; {allowed}",
            rule="as4-payload",
        )
    found: list[tuple[str, MimePart]] = []
    for info in header.parts:
        href = info.href or ""
        cid = content_id_of_href(href)
        if cid is None:
            raise FeatureNotSupported(
                f"payload reference {href!r}: Peppol carries payloads as MIME attachments (cid:)",
                rule="as4-payload",
            )
        if any(cid == seen for seen, _ in found):
            raise InvalidHeader(f"two PartInfo elements name {href}", rule="as4-payload-duplicate")
        part = attachments.get(cid)
        if part is None:
            raise ExternalPayloadError(
                f"PartInfo names {href}, which is not a MIME part of the message",
                rule="as4-payload-missing",
            )
        found.append((cid, part))
    stray = sorted(set(attachments) - {cid for cid, _ in found})
    if stray:
        raise MimeInconsistency(
            f"MIME part <{stray[0]}> is not a payload of the UserMessage", rule="as4-mime-stray"
        )
    if any(isinstance(child.tag, str) for child in envelope.body):
        raise FeatureNotSupported(
            "the SOAP Body must be empty: Peppol carries the payload as an attachment",
            rule="as4-payload",
        )
    return found


def _one_property(header: UserMessage, name: PropertyName) -> Identifier:
    found = [p for p in header.properties if p.name == name]
    if not found:
        raise InvalidHeader(f"the {name} message property is missing", rule="peppol-properties")
    if len(found) > 1:
        raise ValueInconsistent(
            f"the {name} message property is repeated", rule="peppol-properties"
        )
    if not found[0].type:
        raise InvalidHeader(
            f"the {name} property has no type (the identifier scheme)", rule="peppol-properties"
        )
    return Identifier(found[0].type, found[0].value)


def _peppol_routing(header: UserMessage, our_cn: str | None, options: ReceiveOptions) -> Routing:
    if header.agreement_ref != AGREEMENT_TIA_AP_PROVIDER:
        raise ValueNotRecognized(
            f"AgreementRef {header.agreement_ref!r} is not {AGREEMENT_TIA_AP_PROVIDER}",
            rule="peppol-agreement",
        )
    for what, party, role in (
        ("From", header.from_party, Role.INITIATOR),
        ("To", header.to_party, Role.RESPONDER),
    ):
        if party.type != AP_PARTY_TYPE:
            raise ValueNotRecognized(
                f"{what} PartyId type {party.type!r} is not {AP_PARTY_TYPE}", rule="peppol-party"
            )
        if party.role != role:
            raise ValueNotRecognized(
                f"{what} Role {party.role!r} is not {role}", rule="peppol-role"
            )
    if options.check_to_party and header.to_party.party_id != our_cn:
        raise ValueInconsistent(
            f"the message is addressed to {header.to_party.party_id!r}, not to this access point "
            f"({our_cn!r})",
            rule="peppol-to-party",
        )
    if not header.service_type:
        raise InvalidHeader(
            "Service has no type attribute (the process identifier scheme)", rule="peppol-service"
        )
    scheme, sep, value = header.action.partition("::")
    if not sep or not scheme or not value:
        raise ValueNotRecognized(
            f"Action {header.action!r} is not a document type identifier (scheme::value)",
            rule="peppol-action",
        )
    return Routing(
        sender=_one_property(header, PropertyName.ORIGINAL_SENDER),
        receiver=_one_property(header, PropertyName.FINAL_RECIPIENT),
        document_type=Identifier(scheme, value),
        process=Identifier(header.service_type, header.service),
    )


def _children(element: etree._Element, ns: str, name: str) -> list[etree._Element]:
    tag = q(ns, name)
    return [child for child in element if child.tag == tag]


def _ski(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return None


def _check_key_recipient(
    security: etree._Element, encrypted_key: etree._Element, ours: x509.Certificate
) -> None:
    """If the EncryptedKey says which certificate it was made for, that must be ours."""
    token_refs = encrypted_key.findall(
        f"{q(NS.DS, 'KeyInfo')}/{q(NS.WSSE, 'SecurityTokenReference')}"
    )
    if len(token_refs) != 1:
        return
    token_ref = token_refs[0]
    named: str | None = None
    reference = token_ref.find(q(NS.WSSE, "Reference"))
    identifier = token_ref.find(q(NS.WSSE, "KeyIdentifier"))
    serial = token_ref.findtext(
        f"{q(NS.DS, 'X509Data')}/{q(NS.DS, 'X509IssuerSerial')}/{q(NS.DS, 'X509SerialNumber')}"
    )
    if reference is not None and (reference.get("URI") or "").startswith("#"):
        token_id = (reference.get("URI") or "")[1:]
        tokens = [
            t
            for t in _children(security, NS.WSSE, "BinarySecurityToken")
            if t.get(q(NS.WSU, "Id")) == token_id
        ]
        if len(tokens) == 1:
            try:
                certificate = load_token_certificate(tokens[0].text)
            except FailedAuthentication as exc:
                raise FailedDecryption(
                    "the EncryptedKey's token is not a certificate", rule="as4-key-recipient"
                ) from exc
            if certificate != ours:
                named = certificate.subject.rfc4514_string()
    elif identifier is not None:
        try:
            value = base64.b64decode("".join((identifier.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            return
        kind = identifier.get("ValueType")
        der = ours.public_bytes(serialization.Encoding.DER)
        if kind == Algorithm.X509_SKI and value != _ski(ours):
            named = "a certificate with another subject key identifier"
        elif kind == Algorithm.THUMBPRINT_SHA1 and value != hashlib.sha1(der).digest():  # noqa: S324
            named = "a certificate with another thumbprint"
        elif kind == Algorithm.X509V3 and value != der:
            named = "another certificate"
    elif serial is not None and serial.strip() != str(ours.serial_number):
        named = f"the certificate with serial {serial.strip()}"
    if named is not None:
        raise FailedDecryption(
            f"the content key is encrypted for {named}, not for our certificate",
            rule="as4-key-recipient",
        )


def _content_key(
    security: etree._Element,
    ids: Mapping[str, etree._Element],
    cids: Sequence[str],
    credential: Credential,
) -> bytes:
    """The one content key, unwrapped, once each payload in ``cids`` is found encrypted under it
    as the profile says."""
    keys = _children(security, NS.XENC, "EncryptedKey")
    if not keys:
        raise PolicyNoncompliance(
            "the payload is not encrypted (no EncryptedKey)", rule="as4-encryption"
        )
    if len(keys) > 1:
        raise PolicyNoncompliance("more than one EncryptedKey", rule="as4-encryption")
    encrypted_key = keys[0]
    methods = _children(encrypted_key, NS.XENC, "EncryptionMethod")
    if len(methods) != 1 or methods[0].get("Algorithm") != Algorithm.RSA_OAEP:
        raise PolicyNoncompliance(
            "key transport must be RSA-OAEP (xenc11#rsa-oaep)", rule="as4-key-transport"
        )
    method = methods[0]
    digest = method.find(q(NS.DS, "DigestMethod"))
    mgf = method.find(q(NS.XENC11, "MGF"))
    if digest is None or digest.get("Algorithm") != Algorithm.SHA256:
        raise PolicyNoncompliance("RSA-OAEP must use the SHA-256 digest", rule="as4-key-transport")
    if mgf is None or mgf.get("Algorithm") != Algorithm.MGF1_SHA256:
        raise PolicyNoncompliance("RSA-OAEP must use MGF1 with SHA-256", rule="as4-key-transport")
    if method.find(q(NS.XENC, "OAEPparams")) is not None:
        raise PolicyNoncompliance(
            "OAEP parameters (a label) are not used", rule="as4-key-transport"
        )

    # the key's own ReferenceList (what WSS4J writes), or one beside it in wsse:Security
    list_path = f"{q(NS.XENC, 'ReferenceList')}/{q(NS.XENC, 'DataReference')}"
    data_refs = [(r.get("URI") or "") for r in encrypted_key.iterfind(list_path)] or [
        (r.get("URI") or "") for r in security.iterfind(list_path)
    ]
    encrypted: dict[str, etree._Element] = {}
    for uri in data_refs:
        target = ids.get(uri[1:]) if uri.startswith("#") else None
        if (
            target is None
            or target.tag != q(NS.XENC, "EncryptedData")
            or target.getparent() is not security
        ):
            raise PolicyNoncompliance(
                f"DataReference {uri!r} names no EncryptedData in wsse:Security",
                rule="as4-encryption",
            )
        reference = target.find(f"{q(NS.XENC, 'CipherData')}/{q(NS.XENC, 'CipherReference')}")
        cid = content_id_of_href(reference.get("URI") or "") if reference is not None else None
        if cid is not None and cid in cids:
            if cid in encrypted:
                raise PolicyNoncompliance(f"cid:{cid} is encrypted twice", rule="as4-encryption")
            encrypted[cid] = target
    for cid in cids:
        encrypted_data = encrypted.get(cid)
        if encrypted_data is None:
            raise PolicyNoncompliance(
                f"the payload cid:{cid} is not encrypted", rule="as4-encryption"
            )
        if encrypted_data.get("Type") != Algorithm.ATTACHMENT_CONTENT_ONLY:
            raise PolicyNoncompliance(
                f"EncryptedData of type {encrypted_data.get('Type')}; the profile encrypts the "
                "attachment content only",
                rule="as4-encryption",
            )
        data_methods = _children(encrypted_data, NS.XENC, "EncryptionMethod")
        if len(data_methods) != 1 or data_methods[0].get("Algorithm") != Algorithm.AES128_GCM:
            raise PolicyNoncompliance(
                "the payload must be encrypted with AES-128-GCM", rule="as4-encryption"
            )

    _check_key_recipient(security, encrypted_key, credential.certificate)
    values = encrypted_key.findall(f"{q(NS.XENC, 'CipherData')}/{q(NS.XENC, 'CipherValue')}")
    if len(values) != 1:
        raise FailedDecryption("the EncryptedKey holds no CipherValue", rule="as4-key-transport")
    try:
        wrapped = base64.b64decode("".join((values[0].text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FailedDecryption(
            "the EncryptedKey's CipherValue is not base64", rule="as4-key-transport"
        ) from exc
    return unwrap_key(wrapped, credential.key)


def _process(
    envelope: Envelope,
    header: UserMessage,
    attachments: Mapping[str, MimePart],
    *,
    credential: Credential,
    trust: TrustStore,
    now: datetime,
    options: ReceiveOptions,
    serves: Callable[[Routing], bool] | None,
) -> InboundMessage:
    security = envelope.security
    if security is None:
        raise PolicyNoncompliance(
            "the message has no wsse:Security header: Peppol requires it signed and encrypted",
            rule="as4-security-header",
        )
    parts = _payload_parts(envelope, header, attachments, options.max_payloads)
    cids = [cid for cid, _ in parts]
    ids = index_ids(envelope.root)
    signature = verify_signature(
        security,
        ids=ids,
        messaging=envelope.messaging,
        body=envelope.body,
        attachments=frozenset(cids),
    )
    chain = trusted_path(signature.signer, trust, at=now)
    signer_cn = common_name(signature.signer)
    if signer_cn != header.from_party.party_id:
        raise FailedAuthentication(
            f"the message is signed by {signer_cn!r}, but its From PartyId is "
            f"{header.from_party.party_id!r}",
            rule="as4-signer-party",
        )
    routing = _peppol_routing(header, common_name(credential.certificate), options)
    if serves is not None and not serves(routing):
        raise NotServiced(
            f"{routing.receiver} is not served here for {routing.document_type} "
            f"in {routing.process}"
        )

    compressed = [_compressed(info) for info in header.parts]
    key = _content_key(security, ids, cids, credential)
    payloads = _open_payloads(
        parts,
        header.parts,
        compressed,
        key=key,
        digests=signature.attachment_digests,
        options=options,
    )
    return InboundMessage(
        user_message=header,
        routing=routing,
        messaging_id=envelope.messaging_id,
        signer=signature.signer,
        chain=chain,
        references=signature.references,
        payloads=payloads,
    )


def _compressed(info: PartInfo) -> bool:
    compression = info.property_value(PropertyName.COMPRESSION_TYPE)
    if compression is not None and compression != GZIP_MIME:
        raise DecompressionFailure(
            f"CompressionType {compression!r} is not supported (only {GZIP_MIME})",
            rule="as4-compression-type",
        )
    return compression is not None


def _open_payloads(
    parts: Sequence[tuple[str, MimePart]],
    infos: Sequence[PartInfo],
    compressed: Sequence[bool],
    *,
    key: bytes,
    digests: Mapping[str, bytes],
    options: ReceiveOptions,
) -> tuple[Payload, ...]:
    """Decrypt, check and decompress every payload; ``max_payload_bytes`` caps each and their
    total. A decompression failure is held back until every payload has been decrypted and
    matched against its signed digest, so a bad tag or digest anywhere is what gets reported."""
    spools: list[Spool] = []
    deferred: DecompressionFailure | None = None
    try:
        for (cid, part), gzipped in zip(parts, compressed, strict=True):
            out = Spool(options.spool_threshold, options.spool_dir)
            spools.append(out)
            used = sum(spool.size for spool in spools[:-1])
            try:
                unseal(
                    part,
                    key,
                    out,
                    expected_digest=digests[cid],
                    compressed=gzipped,
                    cap=max(0, options.max_payload_bytes - used),
                    chunk_size=options.chunk_size,
                )
            except DecompressionFailure as exc:
                if deferred is None:
                    deferred = (
                        DecompressionFailure(f"payload cid:{cid}: {exc.message}", rule=exc.rule)
                        if len(parts) > 1
                        else exc
                    )
        if deferred is not None:
            raise deferred
    except BaseException:
        for spool in spools:
            spool.close()
        raise
    return tuple(
        Payload(
            spool,
            content_id=cid,
            mime_type=info.property_value(PropertyName.MIME_TYPE),
        )
        for spool, (cid, _), info in zip(spools, parts, infos, strict=True)
    )
