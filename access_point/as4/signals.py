"""Signal messages: the receipt or error corner 3 answers with, and corner 2 judging it.

Both signals are signed like a UserMessage (Messaging and Body, RSA-SHA256, exc-c14n, a
BinarySecurityToken). A receipt's ``ebbp:NonRepudiationInformation`` copies the ``ds:Reference``
elements of the request's signature, one per ``ebbp:MessagePartNRInformation``: it proves which
bytes were received, and the sender checks exactly that (:func:`check_response`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from cryptography import x509
from lxml import etree

from sbdh.pki import Credential

from . import write
from .build import SentMessage
from .errors import (
    As4Error,
    EbmsError,
    ErrorSignalReceived,
    InvalidReceipt,
    PolicyNoncompliance,
    UntrustedSender,
)
from .mime import read_mime
from .model import BuildOptions, SignalMessage, SignedReference
from .signer import TrustPolicy, TrustVerdict, evaluate_trust
from .soap import (
    Envelope,
    one_signal_message,
    parse_soap,
    read_envelope,
    read_signal_message,
)
from .spec import NS, SOAP12_MIME
from .streams import as_source
from .wssec import index_ids, q, verify_signature

__all__ = [
    "SIGNAL_CONTENT_TYPE",
    "OutboundSignal",
    "VerifiedSignal",
    "build_error",
    "build_receipt",
    "check_response",
    "nri_mismatch",
    "read_signal",
]

_DEFAULT_OPTIONS = BuildOptions()
SIGNAL_CONTENT_TYPE = f"{SOAP12_MIME}; charset=UTF-8"


@dataclass(frozen=True)
class OutboundSignal:
    """A signal ready to send back: the HTTP body and its Content-Type."""

    message_id: str
    body: bytes
    content_type: str = SIGNAL_CONTENT_TYPE


def _signed_signal(
    signer: Credential,
    now: datetime,
    options: BuildOptions,
    info_extra: str,
    content: str,
) -> OutboundSignal:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    ids = write.fresh_ids("msg", "body", "X509", "SIG", "KI", "STR")
    ids.update(signature=ids["SIG"], key_info=ids["KI"], str=ids["STR"])
    message_id = f"{uuid.uuid4()}@{options.id_domain}"
    signal = (
        "<eb:SignalMessage><eb:MessageInfo>"
        f"<eb:Timestamp>{write.format_timestamp(now)}</eb:Timestamp>"
        f"<eb:MessageId>{write.text(message_id)}</eb:MessageId>{info_extra}"
        f"</eb:MessageInfo>{content}</eb:SignalMessage>"
    )
    messaging = write.messaging(signal, ids["msg"])
    body = write.body(ids["body"])
    signature, _ = write.signature(
        signer.key,
        token_id=ids["X509"],
        ids=ids,
        elements=((ids["msg"], messaging), (ids["body"], body)),
    )
    security = write.binary_security_token(signer.certificate, ids["X509"]) + signature
    return OutboundSignal(message_id=message_id, body=write.envelope(security, messaging, body))


def _ref_to(message_id: str | None) -> str:
    return f"<eb:RefToMessageId>{write.text(message_id)}</eb:RefToMessageId>" if message_id else ""


def build_receipt(
    ref_to_message_id: str,
    references: Sequence[SignedReference],
    *,
    signer: Credential,
    now: datetime,
    options: BuildOptions = _DEFAULT_OPTIONS,
) -> OutboundSignal:
    """A signed non-repudiation Receipt for the message ``ref_to_message_id``, listing the
    request signature's ``references`` (:attr:`InboundMessage.references`)."""
    if not references:
        raise ValueError("a non-repudiation receipt needs the request's signed references")
    parts = "".join(
        f"<ebbp:MessagePartNRInformation>{write.reference(r)}</ebbp:MessagePartNRInformation>"
        for r in references
    )
    receipt = (
        "<eb:Receipt><ebbp:NonRepudiationInformation>"
        f"{parts}</ebbp:NonRepudiationInformation></eb:Receipt>"
    )
    return _signed_signal(signer, now, options, _ref_to(ref_to_message_id), receipt)


def build_error(
    errors: As4Error | EbmsError | Sequence[As4Error | EbmsError],
    *,
    signer: Credential,
    now: datetime,
    ref_to_message_id: str | None = None,
    options: BuildOptions = _DEFAULT_OPTIONS,
) -> OutboundSignal:
    """A signed ebMS Error signal for one or more errors (a refusal from
    :func:`~access_point.as4.receive.receive_user_message`, or explicit values).

    ``ref_to_message_id`` defaults to the refused message's id carried by the error.
    """
    items = [errors] if isinstance(errors, As4Error | EbmsError) else list(errors)
    if not items:
        raise ValueError("an Error signal needs at least one error")
    values = [e.to_ebms() if isinstance(e, As4Error) else e for e in items]
    ref = ref_to_message_id or next(
        (v.ref_to_message_in_error for v in values if v.ref_to_message_in_error), None
    )
    out = []
    for value in values:
        attrib = {"errorCode": value.code, "severity": value.severity, "origin": "ebMS"}
        if value.category:
            attrib["category"] = value.category
        if value.short_description:
            attrib["shortDescription"] = value.short_description
        in_error = value.ref_to_message_in_error or ref
        if in_error:
            attrib["refToMessageInError"] = in_error
        attributes = "".join(f' {name}="{write.attr(v)}"' for name, v in sorted(attrib.items()))
        description = (
            f'<eb:Description xml:lang="en">{write.text(value.description)}</eb:Description>'
            if value.description
            else ""
        )
        detail = (
            f"<eb:ErrorDetail>{write.text(value.detail)}</eb:ErrorDetail>" if value.detail else ""
        )
        out.append(f"<eb:Error{attributes}>{description}{detail}</eb:Error>")
    return _signed_signal(signer, now, options, _ref_to(ref), "".join(out))


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VerifiedSignal:
    """A signal and what is known about its signature."""

    signal: SignalMessage
    #: whether the signal carried a signature (it verified, or reading would have failed)
    signed: bool
    signer: x509.Certificate | None
    trust: TrustVerdict
    #: the signature's own references (what the signer signed in this signal)
    references: tuple[SignedReference, ...] = ()


def _soap_bytes(body: bytes | IO[bytes], content_type: str | None, max_bytes: int) -> bytes:
    source = as_source(body, 1024 * 1024)
    if content_type is None:
        content_type = SOAP12_MIME
    return read_mime(source, content_type, max_soap_bytes=max_bytes).soap


def _fault_reason(root: etree._Element) -> str | None:
    fault = root.find(f"{q(NS.SOAP12, 'Body')}/{q(NS.SOAP12, 'Fault')}")
    if fault is None:
        return None
    texts = [
        " ".join((t.text or "").split())
        for t in fault.iterfind(f"{q(NS.SOAP12, 'Reason')}/{q(NS.SOAP12, 'Text')}")
    ]
    code = fault.findtext(f"{q(NS.SOAP12, 'Code')}/{q(NS.SOAP12, 'Value')}")
    return "; ".join(filter(None, [(code or "").strip(), *texts])) or "SOAP fault"


def read_signal(
    body: bytes | IO[bytes],
    content_type: str | None,
    *,
    policy: TrustPolicy,
    at: datetime,
    max_bytes: int = 4 * 1024 * 1024,
) -> VerifiedSignal:
    """Read a signal and verify its signature, if it has one, against the certificate it
    carries; then judge that certificate under ``policy`` at ``at``.

    An unsigned signal is returned with ``signed=False`` (or refused when ``policy.required``);
    a signature that does not verify raises (EBMS:0101 / 0103), as does an untrusted signer
    when ``policy.required``.
    """
    root = parse_soap(_soap_bytes(body, content_type, max_bytes), max_bytes)
    envelope = read_envelope(root)
    return _verify_signal(envelope, read_signal_message(one_signal_message(envelope)), policy, at)


def _verify_signal(
    envelope: Envelope, signal: SignalMessage, policy: TrustPolicy, at: datetime
) -> VerifiedSignal:
    try:
        security = envelope.security
        if security is None or security.find(q(NS.DS, "Signature")) is None:
            if policy.required:
                raise PolicyNoncompliance("the signal is not signed", rule="as4-signature-missing")
            return VerifiedSignal(signal, False, None, TrustVerdict(False, (), "not signed"))
        verified = verify_signature(
            security,
            ids=index_ids(envelope.root),
            messaging=envelope.messaging,
            body=envelope.body,
            attachments=frozenset(),
            keep_xml=False,
        )
        verdict = evaluate_trust(verified.signer, policy, at)
        if policy.required and not verdict.trusted:
            raise UntrustedSender(
                f"the signal's signer is not trusted: {verdict.problem}", rule="as4-signal-signer"
            )
        return VerifiedSignal(signal, True, verified.signer, verdict, verified.references)
    except As4Error as exc:
        if exc.ref_to_message_id is None:
            exc.ref_to_message_id = signal.message_id
        raise


def _errors_text(errors: Sequence[EbmsError]) -> str:
    return "; ".join(str(e) for e in errors)


def check_response(
    body: bytes | IO[bytes],
    content_type: str | None,
    *,
    sent: SentMessage,
    policy: TrustPolicy,
    at: datetime,
    max_bytes: int = 4 * 1024 * 1024,
) -> VerifiedSignal:
    """Judge the answer to a message we sent; return the verified receipt.

    Raises :class:`ErrorSignalReceived` for an ebMS Error (signed or not: a refusal is a
    refusal) or a SOAP fault, and :class:`InvalidReceipt` when the answer is not a signed,
    trusted receipt for ``sent`` whose NonRepudiationInformation lists exactly the references
    we signed (same URIs, transforms, digest algorithms and values).
    """
    try:
        soap = _soap_bytes(body, content_type, max_bytes)
        root = parse_soap(soap, max_bytes)
    except As4Error as exc:
        raise InvalidReceipt(
            f"the answer to {sent.message_id} is not a readable signal: {exc.message}",
            rule="as4-response-unreadable",
            ref_to_message_id=sent.message_id,
        ) from exc
    fault = _fault_reason(root)
    if fault is not None and root.find(f".//{q(NS.EB, 'SignalMessage')}") is None:
        raise ErrorSignalReceived(
            f"{sent.message_id} was refused with a SOAP fault: {fault}",
            rule="as4-soap-fault",
            ref_to_message_id=sent.message_id,
        )
    try:
        envelope = read_envelope(root)
        signal = read_signal_message(one_signal_message(envelope))
    except As4Error as exc:
        raise InvalidReceipt(
            f"the answer to {sent.message_id} is not an ebMS signal: {exc.message}",
            rule="as4-response-unreadable",
            ref_to_message_id=sent.message_id,
        ) from exc
    failures = tuple(e for e in signal.errors if e.is_failure)
    if failures:
        note = ""
        try:
            _verify_signal(envelope, signal, policy, at)
        except As4Error as exc:
            note = f" (the error signal itself failed verification: {exc.message})"
        raise ErrorSignalReceived(
            f"{sent.message_id} was refused: {_errors_text(failures)}{note}",
            rule="as4-error-signal",
            errors=signal.errors,
            ref_to_message_id=sent.message_id,
        )
    try:
        verified = _verify_signal(envelope, signal, policy, at)
    except As4Error as exc:
        raise InvalidReceipt(
            f"the receipt for {sent.message_id} does not verify: {exc}",
            rule="as4-receipt-signature",
            ref_to_message_id=sent.message_id,
        ) from exc
    if not verified.signal.is_receipt:
        raise InvalidReceipt(
            f"the answer to {sent.message_id} is neither a receipt nor a failure",
            rule="as4-receipt-missing",
            ref_to_message_id=sent.message_id,
        )
    if not verified.signed:
        raise InvalidReceipt(
            f"the receipt for {sent.message_id} is not signed",
            rule="as4-receipt-signature",
            ref_to_message_id=sent.message_id,
        )
    if verified.signal.ref_to_message_id != sent.message_id:
        raise InvalidReceipt(
            f"the receipt acknowledges {verified.signal.ref_to_message_id!r}, "
            f"not {sent.message_id}",
            rule="as4-receipt-ref",
            ref_to_message_id=sent.message_id,
        )
    problem = nri_mismatch(sent.references, verified.signal.receipt_references)
    if problem is not None:
        raise InvalidReceipt(
            f"the receipt for {sent.message_id} does not prove delivery: {problem}",
            rule="as4-receipt-nri",
            ref_to_message_id=sent.message_id,
        )
    return verified


def nri_mismatch(
    sent: Sequence[SignedReference], acknowledged: Sequence[SignedReference]
) -> str | None:
    """Why ``acknowledged`` (a receipt's NRI) is not exactly ``sent``; None when it is."""
    if not acknowledged:
        return "it carries no NonRepudiationInformation references"
    by_uri: dict[str, SignedReference] = {}
    for reference in acknowledged:
        if reference.uri in by_uri:
            return f"it lists {reference.uri} twice"
        by_uri[reference.uri] = reference
    for reference in sent:
        got = by_uri.pop(reference.uri, None)
        if got is None:
            return f"it does not acknowledge {reference.uri}"
        if got.digest_value != reference.digest_value:
            return f"it acknowledges {reference.uri} with another digest (different content)"
        if not got.matches(reference):
            return f"it acknowledges {reference.uri} with other algorithms or transforms"
    if by_uri:
        return f"it acknowledges {sorted(by_uri)[0]}, which was not sent"
    return None
