"""Corner 2: a Peppol AS4 UserMessage carrying one SBD, signed and encrypted, ready to POST.

The payload is streamed once through gzip, SHA-256 and AES-128-GCM into a spool (memory for
small messages, an anonymous temp file past the threshold), so a 200 MB SBD never sits in
memory; the SOAP envelope is built after that pass, when the attachment's digest is known.

The envelope, as phase4, Oxalis and the PyPI ``as4`` package write and read it::

    S12:Envelope
      S12:Header
        wsse:Security S12:mustUnderstand="true"
          wsse:BinarySecurityToken          the receiver's certificate (for the EncryptedKey)
          xenc:EncryptedKey                 RSA-OAEP (xenc11, SHA-256, MGF1-SHA-256)
            ds:KeyInfo → wsse:Reference to that token
            xenc:ReferenceList/xenc:DataReference → the EncryptedData
          xenc:EncryptedData                AES-128-GCM, Attachment-Content-Only, cid: reference
          wsse:BinarySecurityToken          our certificate (for the signature)
          ds:Signature                      RSA-SHA256, exc-c14n: Messaging, Body, cid:
        eb:Messaging S12:mustUnderstand="true" wsu:Id
          eb:UserMessage                    Peppol values (see :func:`peppol_user_message`)
      S12:Body wsu:Id                       empty: the SBD is the attachment
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sbdh.errors import ConfigurationError
from sbdh.pki import Credential

from . import write
from .crypto import seal, wrap_key
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
    "OutboundMessage",
    "SentMessage",
    "build_user_message",
    "peppol_user_message",
]

DEFAULT_BUILD_OPTIONS = BuildOptions()


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
) -> UserMessageInfo:
    """The UserMessage header the Peppol AS4 profile prescribes for one SBD attachment."""
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
        ),
    )


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
) -> OutboundMessage:
    """Build the AS4 message that carries ``payload`` (the SBD) to the receiver's access point.

    ``payload`` is bytes, a binary file (read from its position) or an iterable of chunks.
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
    content_id = f"{uuid.uuid4()}@{domain}"
    ids = write.fresh_ids("msg", "body", "X509", "X509s", "EK", "ED", "SIG", "KI", "STR")
    ids.update(signature=ids["SIG"], key_info=ids["KI"], str=ids["STR"])

    spool = Spool(options.spool_threshold, options.spool_dir)
    try:
        sealed = seal(
            iter_chunks(payload, options.chunk_size),
            spool,
            compress=True,
            level=options.compression_level,
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
        )
        messaging = write.messaging(write.user_message(header_info), ids["msg"])
        body = write.body(ids["body"])
        signature, references = write.signature(
            sender.key,
            token_id=ids["X509s"],
            ids=ids,
            elements=((ids["msg"], messaging), (ids["body"], body)),
            attachments=((content_id, sealed.digest),),
        )
        security = "".join(
            (
                write.binary_security_token(receiver_certificate, ids["X509"]),
                _encrypted_key(receiver_key, sealed.key, ids),
                _encrypted_data(content_id, ids),
                write.binary_security_token(sender.certificate, ids["X509s"]),
                signature,
            )
        )
        soap = write.envelope(security, messaging, body)
        mime = MultipartBody(soap, ((content_id, spool),), soap_id=f"soap-{uuid.uuid4()}@{domain}")
    except BaseException:
        spool.close()
        raise
    return OutboundMessage(
        user_message=header_info,
        references=references,
        content_type=mime.content_type,
        body=mime,
        payload_size=sealed.plain_size,
    )


def _encrypted_key(receiver_key: rsa.RSAPublicKey, key: bytes, ids: dict[str, str]) -> str:
    wrapped = base64.b64encode(wrap_key(key, receiver_key)).decode("ascii")
    return (
        f'<xenc:EncryptedKey Id="{ids["EK"]}"><xenc:EncryptionMethod Algorithm="'
        f'{Algorithm.RSA_OAEP.value}"><ds:DigestMethod Algorithm="{Algorithm.SHA256.value}"/>'
        f'<xenc11:MGF Algorithm="{Algorithm.MGF1_SHA256.value}"/></xenc:EncryptionMethod>'
        f'<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#{ids["X509"]}" '
        f'ValueType="{Algorithm.X509V3.value}"/></wsse:SecurityTokenReference></ds:KeyInfo>'
        f"<xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData>"
        f'<xenc:ReferenceList><xenc:DataReference URI="#{ids["ED"]}"/></xenc:ReferenceList>'
        "</xenc:EncryptedKey>"
    )


def _encrypted_data(content_id: str, ids: dict[str, str]) -> str:
    # MimeType: the attachment's type before encryption, which after compression is gzip
    return (
        f'<xenc:EncryptedData Id="{ids["ED"]}" MimeType="{GZIP_MIME}" '
        f'Type="{Algorithm.ATTACHMENT_CONTENT_ONLY.value}"><xenc:EncryptionMethod Algorithm="'
        f'{Algorithm.AES128_GCM.value}"/><ds:KeyInfo><wsse:SecurityTokenReference '
        f'wsse11:TokenType="{Algorithm.ENCRYPTED_KEY_TOKEN.value}"><wsse:Reference '
        f'URI="#{ids["EK"]}"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData>'
        f'<xenc:CipherReference URI="cid:{write.attr(content_id)}"><xenc:Transforms>'
        f'<ds:Transform Algorithm="{Algorithm.ATTACHMENT_CIPHERTEXT.value}"/></xenc:Transforms>'
        "</xenc:CipherReference></xenc:CipherData></xenc:EncryptedData>"
    )
