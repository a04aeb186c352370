"""The AS4 core: Peppol AS4 profile 2.0 on the CEF eDelivery AS4 profile, with no I/O.

Bytes in, values out; keys, certificates, trust anchors and the clock are passed in, so the
same code serves the HTTP edge, the workers and the tests.

==============  ===========================================================================
``build``       corner 2: a signed, encrypted UserMessage around one SBD (and, for
                eFormidling, the document package after it)
``receive``     corner 3: verify and open a UserMessage
``signals``     receipts (with non-repudiation information) and ebMS errors, both ways
``soap``        the SOAP envelope and the eb:Messaging header, read strictly
``write``       outgoing envelopes as text, signed parts in canonical form
``wssec``       WS-Security signatures checked against the profile and wrapping
``crypto``      gzip, SHA-256, AES-128-GCM and RSA-OAEP over streamed payloads
``mime``        SOAP-with-attachments bodies, read and written
``signer``      the signer's certificate and whether we trust it
``streams``     spools and windows that keep large payloads out of memory
``model``       the values that cross the boundary
``spec``        namespaces, algorithm URIs and Peppol's fixed values
``errors``      refusals carrying their ebMS error code
==============  ===========================================================================

Sending::

    with build_user_message(sbd, routing=routing, sender=our_ap, receiver_certificate=smp_cert,
                            now=now) as message:
        response = post(url, message.iter_chunks(), message.content_type)
    check_response(response.body, response.content_type, sent=message.sent,
                   policy=TrustPolicy(store=peppol_anchors, pinned=(smp_cert,)), at=now)

Receiving::

    try:
        inbound = receive_user_message(body, content_type, credential=our_ap, trust=anchors,
                                       now=now, serves=directory.serves)
    except As4Error as refusal:
        answer = build_error(refusal, signer=our_ap, now=now)
    else:
        ...persist inbound.payload first...
        answer = build_receipt(inbound.message_id, inbound.references, signer=our_ap, now=now)

eFormidling archive messages carry two payloads, as DPI does: the SBD, then the document package
(signed ASiC-E or the same CMS-encrypted). Send it as ``attachments=[Attachment(package,
"application/vnd.etsi.asic-e+zip")]`` (``compress=False`` for ``application/cms``); receive
with ``ReceiveOptions(max_payloads=2)`` and read ``inbound.payloads`` (PartInfo order, each with
its ``mime_type``). Peppol BIS messages keep exactly one payload, the default.
"""

from __future__ import annotations

from .build import Attachment, OutboundMessage, SentMessage, build_user_message
from .errors import (
    As4Error,
    DecompressionFailure,
    EbmsError,
    ErrorSignalReceived,
    ExternalPayloadError,
    FailedAuthentication,
    FailedDecryption,
    FeatureNotSupported,
    InvalidHeader,
    InvalidReceipt,
    MimeInconsistency,
    NotServiced,
    OtherError,
    PolicyNoncompliance,
    SendFailed,
    UntrustedSender,
    ValueInconsistent,
    ValueNotRecognized,
)
from .model import (
    BuildOptions,
    Identifier,
    PartInfo,
    Party,
    Property,
    ReceiveOptions,
    Routing,
    SignalMessage,
    SignedReference,
    UserMessage,
)
from .receive import InboundMessage, receive_user_message
from .signals import (
    OutboundSignal,
    VerifiedSignal,
    build_error,
    build_receipt,
    check_response,
    nri_mismatch,
    read_signal,
)
from .signer import TrustPolicy, TrustVerdict
from .soap import ParsedEnvelope, parse_envelope
from .streams import Payload

__all__ = [
    "As4Error",
    "Attachment",
    "BuildOptions",
    "DecompressionFailure",
    "EbmsError",
    "ErrorSignalReceived",
    "ExternalPayloadError",
    "FailedAuthentication",
    "FailedDecryption",
    "FeatureNotSupported",
    "Identifier",
    "InboundMessage",
    "InvalidHeader",
    "InvalidReceipt",
    "MimeInconsistency",
    "NotServiced",
    "OtherError",
    "OutboundMessage",
    "OutboundSignal",
    "ParsedEnvelope",
    "PartInfo",
    "Party",
    "Payload",
    "PolicyNoncompliance",
    "Property",
    "ReceiveOptions",
    "Routing",
    "SendFailed",
    "SentMessage",
    "SignalMessage",
    "SignedReference",
    "TrustPolicy",
    "TrustVerdict",
    "UntrustedSender",
    "UserMessage",
    "ValueInconsistent",
    "ValueNotRecognized",
    "VerifiedSignal",
    "build_error",
    "build_receipt",
    "build_user_message",
    "check_response",
    "nri_mismatch",
    "parse_envelope",
    "read_signal",
    "receive_user_message",
]
