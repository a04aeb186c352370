"""Corner 2: a Peppol AS4 UserMessage carrying one SBD, signed and encrypted, ready to POST.

The payload is streamed once through gzip, SHA-256 and AES-128-GCM into a spool (memory for
small messages, an anonymous temp file past the threshold), so a 200 MB SBD never sits in
memory; the SOAP envelope is built after that pass, when the attachment's digest is known.

An eFormidling archive message carries a second payload after the SBD, as DPI does: the
document package (:class:`Attachment`). Each further payload gets its own PartInfo, MIME part,
signature reference and EncryptedData (own IV), all under the one content key and EncryptedKey.

The envelope, as phase4, Oxalis and the PyPI ``as4`` package write and read it::

    S12:Envelope
      S12:Header
        wsse:Security S12:mustUnderstand="true"
          wsse:BinarySecurityToken          the receiver's certificate (for the EncryptedKey)
          xenc:EncryptedKey                 RSA-OAEP (xenc11, SHA-256, MGF1-SHA-256)
            ds:KeyInfo → wsse:Reference to that token
            xenc:ReferenceList/xenc:DataReference → the EncryptedData
          xenc:EncryptedData                AES-128-GCM, Attachment-Content-Only, cid: reference
                                            (one per payload, in PartInfo order)
          wsse:BinarySecurityToken          our certificate (for the signature)
          ds:Signature                      RSA-SHA256, exc-c14n: Messaging, Body, cid:
        eb:Messaging S12:mustUnderstand="true" wsu:Id
          eb:UserMessage                    Peppol values (see :func:`peppol_user_message`)
      S12:Body wsu:Id                       empty: the SBD is the attachment
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sbdh.errors import ConfigurationError
from sbdh.pki import Credential

from . import write
from .crypto import KEY_BYTES, Sealed, seal, wrap_key
from .mime import MultipartBody
from .model import BuildOptions, PartInfo, Party, Property, Routing, SignedReference
from .model import UserMessage as UserMessageInfo
from .signer import common_name
from .spec import (
    AGREEMENT_TIA_AP_PROVIDER,
    AP_PARTY_TYPE,
    GZIP_MIME,
    Algorithm,
    PropertyName,
    Role,
)
from .streams import Spool, iter_chunks

__all__ = [
    "DEFAULT_BUILD_OPTIONS",
    "Attachment",
    "OutboundMessage",
    "SentMessage",
    "build_user_message",
    "peppol_user_message",
]

DEFAULT_BUILD_OPTIONS = BuildOptions()

_MEDIA_TYPE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class Attachment:
    """A payload after the SBD: the eFormidling document package (a signed ASiC-E,
    ``application/vnd.etsi.asic-e+zip``, or the same CMS-encrypted, ``application/cms``).

    ``source`` is bytes, a binary file (read from its position, once, in chunks) or an
    iterable of chunks; ``mime_type`` becomes the PartInfo's MimeType; ``compress`` gzips it
    first (CompressionType ``application/gzip``), which an already encrypted package does not
    gain from.
    """

    source: bytes | IO[bytes] | Iterable[bytes]
    mime_type: str
    compress: bool = True

    def __post_init__(self) -> None:
        if not _MEDIA_TYPE.fullmatch(self.mime_type):
            raise ValueError(f"not a media type (type/subtype): {self.mime_type!r}")


@dataclass(frozen=True)
class SentMessage:
    """What the sender must remember to judge the answer: the id and what it signed.

    Plain values, so they can be stored with the message and checked by another process.
    """

    message_id: str
    references: tuple[SignedReference, ...]


@dataclass(frozen=True)
class OutboundMessage:
    """A built message: POST :meth:`iter_chunks` (or :meth:`to_bytes`) with ``content_type``.

    Holds a spool that may be a temp file; :meth:`close` it (or use ``with``) once sent.
    """

    user_message: UserMessageInfo
    references: tuple[SignedReference, ...]
    content_type: str
    body: MultipartBody
    #: size of the SBD before compression
    payload_size: int
    #: sizes of the further payloads (:class:`Attachment`) before compression, in order
    attachment_sizes: tuple[int, ...] = ()

    @property
    def message_id(self) -> str:
        return self.user_message.message_id

    @property
    def sent(self) -> SentMessage:
        return SentMessage(self.user_message.message_id, self.references)

    @property
    def content_length(self) -> int:
        return len(self.body)

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterable[bytes]:
        return self.body.iter_chunks(chunk_size)

    def to_bytes(self) -> bytes:
        return self.body.to_bytes()

    def close(self) -> None:
        self.body.close()

    def __enter__(self) -> OutboundMessage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def peppol_user_message(
    routing: Routing,
    *,
    from_party: str,
    to_party: str,
    message_id: str,
    conversation_id: str,
    timestamp: datetime,
    content_id: str,
    mime_type: str,
    further_parts: Sequence[PartInfo] = (),
) -> UserMessageInfo:
    """The UserMessage header the Peppol AS4 profile prescribes for one SBD attachment
    (``further_parts``: the PartInfo of the payloads after it, eFormidling's document package)."""
    return UserMessageInfo(
        message_id=message_id,
        timestamp=timestamp,
        from_party=Party(from_party, AP_PARTY_TYPE, Role.INITIATOR.value),
        to_party=Party(to_party, AP_PARTY_TYPE, Role.RESPONDER.value),
        agreement_ref=AGREEMENT_TIA_AP_PROVIDER,
        service=routing.process.value,
        service_type=routing.process.scheme,
        action=str(routing.document_type),
        conversation_id=conversation_id,
        properties=(
            Property(
                PropertyName.ORIGINAL_SENDER.value, routing.sender.value, routing.sender.scheme
            ),
            Property(
                PropertyName.FINAL_RECIPIENT.value, routing.receiver.value, routing.receiver.scheme
            ),
        ),
        parts=(
            PartInfo(
                href=f"cid:{content_id}",
                properties=(
                    Property(PropertyName.MIME_TYPE.value, mime_type),
                    Property(PropertyName.COMPRESSION_TYPE.value, GZIP_MIME),
                ),
            ),
            *further_parts,
        ),
    )


def _part_info(content_id: str, attachment: Attachment) -> PartInfo:
    properties = [Property(PropertyName.MIME_TYPE.value, attachment.mime_type)]
    if attachment.compress:
        properties.append(Property(PropertyName.COMPRESSION_TYPE.value, GZIP_MIME))
    return PartInfo(href=f"cid:{content_id}", properties=tuple(properties))


def _ap_name(certificate: x509.Certificate, what: str) -> str:
    name = common_name(certificate)
    if not name:
        raise ConfigurationError(f"the {what} certificate has no single CN to use as PartyId")
    return name


def build_user_message(
    payload: bytes | IO[bytes] | Iterable[bytes],
    *,
    routing: Routing,
    sender: Credential,
    receiver_certificate: x509.Certificate,
    now: datetime,
    options: BuildOptions = DEFAULT_BUILD_OPTIONS,
    message_id: str | None = None,
    conversation_id: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> OutboundMessage:
    """Build the AS4 message that carries ``payload`` (the SBD) to the receiver's access point.

    ``payload`` is bytes, a binary file (read from its position) or an iterable of chunks.
    ``attachments`` are further payloads after the SBD (eFormidling's document package; Peppol
    BIS messages have none), each streamed like the SBD and encrypted under the same key.
    ``sender`` is our AP credential (its CN is the From PartyId); ``receiver_certificate`` the
    receiving AP's certificate from its SMP entry (its CN is the To PartyId; the content key
    is wrapped to it). ``now`` stamps the message. Raises
    :class:`~sbdh.errors.ConfigurationError` for unusable certificates.
    """
    receiver_key = receiver_certificate.public_key()
    if not isinstance(receiver_key, rsa.RSAPublicKey):
        raise ConfigurationError("the receiver's certificate does not hold an RSA key")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    domain = options.id_domain
    message_id = message_id or f"{uuid.uuid4()}@{domain}"
    conversation_id = conversation_id or f"{uuid.uuid4()}@{domain}"
    content_ids = [f"{uuid.uuid4()}@{domain}" for _ in range(1 + len(attachments))]
    content_id = content_ids[0]
    ids = write.fresh_ids("msg", "body", "X509", "X509s", "EK", "SIG", "KI", "STR")
    ids.update(signature=ids["SIG"], key_info=ids["KI"], str=ids["STR"])
    data_ids = [f"ED-{uuid.uuid4()}" for _ in content_ids]

    key = os.urandom(KEY_BYTES)
    spools: list[Spool] = []
    try:
        sealed: list[Sealed] = []
        sources = [(payload, True), *((a.source, a.compress) for a in attachments)]
        for source, compress in sources:
            spool = Spool(options.spool_threshold, options.spool_dir)
            spools.append(spool)
            sealed.append(
                seal(
                    iter_chunks(source, options.chunk_size),
                    spool,
                    compress=compress,
                    level=options.compression_level,
                    key=key,
                )
            )
        header_info = peppol_user_message(
            routing,
            from_party=_ap_name(sender.certificate, "sender"),
            to_party=_ap_name(receiver_certificate, "receiver"),
            message_id=message_id,
            conversation_id=conversation_id,
            timestamp=now,
            content_id=content_id,
            mime_type=options.payload_mime_type,
            further_parts=[
                _part_info(cid, a) for cid, a in zip(content_ids[1:], attachments, strict=True)
            ],
        )
        messaging = write.messaging(write.user_message(header_info), ids["msg"])
        body = write.body(ids["body"])
        signature, references = write.signature(
            sender.key,
            token_id=ids["X509s"],
            ids=ids,
            elements=((ids["msg"], messaging), (ids["body"], body)),
            attachments=[(cid, s.digest) for cid, s in zip(content_ids, sealed, strict=True)],
        )
        gzip_flags = [True, *(a.compress for a in attachments)]
        mime_types = [GZIP_MIME, *(a.mime_type for a in attachments)]
        security = "".join(
            (
                write.binary_security_token(receiver_certificate, ids["X509"]),
                _encrypted_key(receiver_key, key, ids, data_ids),
                *(
                    _encrypted_data(cid, data_id, GZIP_MIME if gzipped else mime_type, ids)
                    for cid, data_id, gzipped, mime_type in zip(
                        content_ids, data_ids, gzip_flags, mime_types, strict=True
                    )
                ),
                write.binary_security_token(sender.certificate, ids["X509s"]),
                signature,
            )
        )
        soap = write.envelope(security, messaging, body)
        mime = MultipartBody(
            soap,
            list(zip(content_ids, spools, strict=True)),
            soap_id=f"soap-{uuid.uuid4()}@{domain}",
        )
    except BaseException:
        for spool in spools:
            spool.close()
        raise
    return OutboundMessage(
        user_message=header_info,
        references=references,
        content_type=mime.content_type,
        body=mime,
        payload_size=sealed[0].plain_size,
        attachment_sizes=tuple(s.plain_size for s in sealed[1:]),
    )


def _encrypted_key(
    receiver_key: rsa.RSAPublicKey, key: bytes, ids: dict[str, str], data_ids: Sequence[str]
) -> str:
    wrapped = base64.b64encode(wrap_key(key, receiver_key)).decode("ascii")
    return (
        f'<xenc:EncryptedKey Id="{ids["EK"]}"><xenc:EncryptionMethod Algorithm="'
        f'{Algorithm.RSA_OAEP.value}"><ds:DigestMethod Algorithm="{Algorithm.SHA256.value}"/>'
        f'<xenc11:MGF Algorithm="{Algorithm.MGF1_SHA256.value}"/></xenc:EncryptionMethod>'
        f'<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#{ids["X509"]}" '
        f'ValueType="{Algorithm.X509V3.value}"/></wsse:SecurityTokenReference></ds:KeyInfo>'
        f"<xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData>"
        "<xenc:ReferenceList>"
        + "".join(f'<xenc:DataReference URI="#{data_id}"/>' for data_id in data_ids)
        + "</xenc:ReferenceList>"
        "</xenc:EncryptedKey>"
    )


def _encrypted_data(content_id: str, data_id: str, mime_type: str, ids: dict[str, str]) -> str:
    # MimeType: the attachment's type before encryption, which after compression is gzip
    return (
        f'<xenc:EncryptedData Id="{data_id}" MimeType="{write.attr(mime_type)}" '
        f'Type="{Algorithm.ATTACHMENT_CONTENT_ONLY.value}"><xenc:EncryptionMethod Algorithm="'
        f'{Algorithm.AES128_GCM.value}"/><ds:KeyInfo><wsse:SecurityTokenReference '
        f'wsse11:TokenType="{Algorithm.ENCRYPTED_KEY_TOKEN.value}"><wsse:Reference '
        f'URI="#{ids["EK"]}"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData>'
        f'<xenc:CipherReference URI="cid:{write.attr(content_id)}"><xenc:Transforms>'
        f'<ds:Transform Algorithm="{Algorithm.ATTACHMENT_CIPHERTEXT.value}"/></xenc:Transforms>'
        "</xenc:CipherReference></xenc:CipherData></xenc:EncryptedData>"
    )
