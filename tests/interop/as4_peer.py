"""An independent Peppol AS4 peer, built on the PyPI package ``as4`` (0.2.0).

Run it with the python of the peer's own virtual environment (``tests/interop/peer_venv.py``
makes one); it imports ``as4``, its dependencies and the standard library, and never Budstikke.
Budstikke's interoperability tests drive it as a subprocess:

``build``  builds one signed and encrypted Peppol AS4 user message and writes the HTTP body to a
           file, printing the headers as JSON (for tests that tamper with the wire by hand);
``send``   builds, POSTs and checks the receipt (signature, RefToMessageId, NRI) the way
           ``as4``'s sending exchange does, printing one JSON line per message and a summary;
``serve``  answers POSTed AS4 messages with ``as4``'s parser: verifies, decrypts, writes the SBD
           to a directory and answers with ``as4``'s signed receipt or its ebMS error signal.

Every line on stdout is one JSON object with an ``event`` member; diagnostics go to stderr.

``as4``'s public builder wraps the given business document in an SBDH of its own making. An
access point usually holds a finished SBD instead, so by default the peer sends the SBD file
verbatim: :class:`PeerMessage` takes over only that step of ``as4``'s Peppol builder and leaves
envelope, signature, compression and encryption to ``as4``. ``--rebuild-sbdh`` uses ``as4``'s own
SBDH instead (the business document is taken from the file and re-wrapped).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3
from as4 import (
    AS4LocalPrivateKey,
    AS4References,
    ParticipantNotServicedError,
    ReceiptVerificationError,
    UntrustedSignerError,
    certificate_chain,
)
from as4.core.common import AS4ExternalParty, AS4InternalParty
from as4.models.ebms.user_message import Action, Service, UserMessage
from as4.peppol import (
    BusdoxDocidQnsDocumentIdentifier,
    PeppolAS4MessageBuilderArgs,
    PeppolAS4Profile,
    PeppolSendingExchange,
    create_peppol_external_party,
    create_peppol_internal_party,
    parse_peppol_message,
    peppol_security_policy,
)
from as4.profiles.peppol.message import PeppolAS4Message
from as4.utils.cipher_handler import CipherHandler
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SBDH_NS = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
_NS = {"sbdh": SBDH_NS}
EXIT_OK, EXIT_NOT_ALL_ACKNOWLEDGED, EXIT_USAGE = 0, 1, 2


class PeerUsageError(Exception):
    """Bad arguments or unreadable input files: exit status 2 with the reason on stderr."""


# ---------------------------------------------------------------------------------------------
# output


_print_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, **fields})
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(message_id: str) -> str:
    """A file name for a message id (ids are ``uuid@host`` but may hold anything)."""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]", "_", message_id)[:150]
    return cleaned or "message"


# ---------------------------------------------------------------------------------------------
# keys and trust


def load_certificates(path: Path) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PeerUsageError(f"cannot read certificates from {path}: {exc}") from exc
    return certificates


def load_leaf(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file (Budstikke's dev PKI writes leaf, then issuers)."""
    return load_certificates(path)[0]


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PeerUsageError(f"cannot read private key {path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PeerUsageError(f"{path}: as4 signs and decrypts with RSA keys only")
    return key


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _self_issued(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Trust:
    """Self-signed certificates of the --trust files are anchors, the others intermediates."""

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]

    @classmethod
    def load(cls, paths: Sequence[Path]) -> Trust:
        anchors: list[x509.Certificate] = []
        intermediates: list[x509.Certificate] = []
        for path in paths:
            for certificate in load_certificates(path):
                target = anchors if _self_issued(certificate) else intermediates
                if certificate not in target:
                    target.append(certificate)
        if paths and not anchors:
            raise PeerUsageError("no self-signed trust anchor among the --trust certificates")
        return cls(tuple(anchors), tuple(intermediates))


# ---------------------------------------------------------------------------------------------
# what to send


@dataclass(frozen=True)
class SbdFacts:
    """What the peer reads from the SBDH of the file it sends."""

    sender: str | None
    receiver: str | None
    instance_identifier: str | None
    document_type: str | None
    process: str | None
    country_c1: str | None
    business_document: bytes | None


def read_sbd(data: bytes) -> SbdFacts:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise PeerUsageError(f"the SBD is not well-formed XML: {exc}") from exc
    header = root.find("sbdh:StandardBusinessDocumentHeader", _NS)
    if header is None:
        return SbdFacts(None, None, None, None, None, None, None)
    scopes = {
        (scope.findtext("sbdh:Type", namespaces=_NS) or "").strip(): scope
        for scope in header.iterfind("sbdh:BusinessScope/sbdh:Scope", _NS)
    }

    def scope_value(scope_type: str) -> str | None:
        scope = scopes.get(scope_type)
        text = (
            scope.findtext("sbdh:InstanceIdentifier", namespaces=_NS) if scope is not None else None
        )
        return text.strip() if text else None

    def text(path: str) -> str | None:
        value = header.findtext(path, namespaces=_NS)
        return value.strip() if value else None

    document = next(
        (
            child
            for child in root
            if isinstance(child.tag, str)
            and child.tag != f"{{{SBDH_NS}}}StandardBusinessDocumentHeader"
        ),
        None,
    )
    return SbdFacts(
        sender=text("sbdh:Sender/sbdh:Identifier"),
        receiver=text("sbdh:Receiver/sbdh:Identifier"),
        instance_identifier=text("sbdh:DocumentIdentification/sbdh:InstanceIdentifier"),
        document_type=scope_value("DOCUMENTID"),
        process=scope_value("PROCESSID"),
        country_c1=scope_value("COUNTRY_C1"),
        business_document=etree.tostring(document) if document is not None else None,
    )


class PeerBuilderArgs(PeppolAS4MessageBuilderArgs):
    """``as4``'s Peppol builder arguments, plus what the peer may override on the wire."""

    verbatim_sbd: bool = True
    service: str | None = None
    service_type: str | None = None
    action: str | None = None
    original_sender: str | None = None
    final_recipient: str | None = None


class PeerMessage(PeppolAS4Message):
    """``as4``'s Peppol user message; the SBD may be the caller's, header values overridden."""

    @classmethod
    def build_message(  # type: ignore[override]
        cls,
        payload: bytes,
        *,
        local_party: AS4InternalParty,
        remote_party: AS4ExternalParty,
        builder_args: PeppolAS4MessageBuilderArgs,
        references: AS4References,
    ) -> PeerMessage:
        if not (isinstance(builder_args, PeerBuilderArgs) and builder_args.verbatim_sbd):
            return super().build_message(
                payload,
                local_party=local_party,
                remote_party=remote_party,
                builder_args=builder_args,
                references=references,
            )
        # as4's PeppolAS4Message.build_message without its SBDH wrapping: same compression,
        # key transport, content encryption and envelope (signature included)
        compressed_payload = gzip.compress(payload)
        session_key, encrypted_payload = CipherHandler.encrypt_payload(compressed_payload)
        encrypted_session_key = remote_party.credentials.rsa_public_key.encrypt(
            session_key,
            padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=b""
            ),
        )
        attachment_id, _encrypted_data_id = references.encrypted_data_attachment_mapping()
        soap_envelope = cls.get_soap_envelope(
            local_party,
            remote_party,
            builder_args,
            references,
            encrypted_session_key,
            compressed_payloads={attachment_id: compressed_payload},
        )
        return cls(
            soap_envelope=soap_envelope,
            message_id=references.message_id,
            messaging_id=references.messaging_id,
            mime_attachments={attachment_id: encrypted_payload},
            decrypted_data={attachment_id: payload},
            sender=builder_args.sender,
            recipient=builder_args.recipient,
            document_type_identifier_value=builder_args.document_type_identifier.identifier_value,
            document_type_identifier_scheme=builder_args.document_type_identifier.scheme,
            process_identifier=builder_args.process_identifier,
        )

    @classmethod
    def get_user_message(
        cls,
        local_party: AS4InternalParty,
        remote_party: AS4ExternalParty,
        builder_args: PeppolAS4MessageBuilderArgs,
        references: AS4References,
    ) -> UserMessage:
        user_message = super().get_user_message(local_party, remote_party, builder_args, references)
        if not isinstance(builder_args, PeerBuilderArgs):
            return user_message
        collaboration = user_message.collaboration_info
        if builder_args.service is not None or builder_args.service_type is not None:
            collaboration.service = Service(
                value=builder_args.service or collaboration.service.value,
                type_value=builder_args.service_type or collaboration.service.type_value,
            )
        if builder_args.action is not None:
            collaboration.action = Action(value=builder_args.action)
        properties = user_message.message_properties
        if properties is not None:
            for prop in properties.properties:
                if prop.name == "originalSender" and builder_args.original_sender is not None:
                    prop.value = builder_args.original_sender
                if prop.name == "finalRecipient" and builder_args.final_recipient is not None:
                    prop.value = builder_args.final_recipient
        return user_message


class PeerProfile(PeppolAS4Profile):
    """The Peppol profile with :class:`PeerMessage` as its builder."""

    @classmethod
    def get_profile_name(cls) -> str:
        return "budstikke-interop-peer"

    @classmethod
    def message_class(cls) -> type[PeppolAS4Message]:
        return PeerMessage

    @classmethod
    def build_message(
        cls,
        payload: bytes,
        *,
        local_party: AS4InternalParty,
        remote_party: AS4ExternalParty,
        builder_args: PeppolAS4MessageBuilderArgs,
        references: AS4References | None = None,
    ) -> PeppolAS4Message:
        return PeerMessage.build_message(
            payload,
            local_party=local_party,
            remote_party=remote_party,
            builder_args=builder_args,
            references=references or AS4References(),
        )


def document_identifier(value: str) -> BusdoxDocidQnsDocumentIdentifier:
    try:
        return BusdoxDocidQnsDocumentIdentifier.from_identifier_value(value)
    except ValueError:
        # not of the form root::name##customization::version; keep it whole (set --action)
        return BusdoxDocidQnsDocumentIdentifier(
            syntax_specific_id=f"{value}::{value}", customization_id="", version=""
        )


@dataclass(frozen=True)
class Outgoing:
    """Everything the sender needs, resolved from the arguments and the SBD file."""

    local: AS4InternalParty
    remote: AS4ExternalParty
    receiver_certificate: x509.Certificate
    sbd: bytes
    args: PeerBuilderArgs
    fresh_instance_id: bool
    old_instance_id: str | None

    def payload(self) -> bytes:
        if not self.fresh_instance_id or not self.old_instance_id:
            return self.sbd
        old = f">{self.old_instance_id}<".encode()
        return self.sbd.replace(old, f">{uuid.uuid4()}<".encode(), 1)

    def build(self) -> tuple[PeppolSendingExchange, dict[str, str], bytes]:
        exchange = PeppolSendingExchange(
            profile=PeerProfile, local_party=self.local, remote_party=self.remote
        )
        payload = self.payload()
        if not self.args.verbatim_sbd:
            facts = read_sbd(payload)
            payload = facts.business_document or b""
        headers, body = exchange.build(payload, self.args)
        return exchange, headers, body


def outgoing_from(ns: argparse.Namespace) -> Outgoing:
    certificate = load_leaf(ns.cert)
    key = load_private_key(ns.key)
    receiver_certificate = load_leaf(ns.receiver_cert)
    if ns.trust:
        trust = Trust.load(ns.trust)
        check = certificate_chain(*trust.anchors, intermediates=trust.intermediates)
        try:
            check(None, receiver_certificate)  # type: ignore[arg-type]  # party unused here
        except UntrustedSignerError as exc:
            raise PeerUsageError(f"--receiver-cert is not trusted: {exc}") from exc
    try:
        sbd = ns.sbd.read_bytes()
    except OSError as exc:
        raise PeerUsageError(f"cannot read --sbd {ns.sbd}: {exc}") from exc
    facts = read_sbd(sbd)
    if ns.rebuild_sbdh and facts.business_document is None:
        raise PeerUsageError(
            "--rebuild-sbdh needs an SBD with a business document after its header"
        )

    def pick(override: str | None, found: str | None, what: str) -> str:
        value = override or found
        if not value:
            raise PeerUsageError(f"the SBD names no {what}; give it on the command line")
        return value

    sender = pick(ns.sender, facts.sender, "sender (--sender)")
    recipient = pick(ns.recipient, facts.receiver, "receiver (--recipient)")
    document_type = pick(ns.document_type, facts.document_type, "DOCUMENTID (--document-type)")
    process = pick(ns.process, facts.process, "PROCESSID (--process)")
    args = PeerBuilderArgs(
        sender=sender,
        recipient=recipient,
        document_type_identifier=document_identifier(document_type),
        document_identification_instance_identifier=facts.instance_identifier or str(uuid.uuid4()),
        process_identifier=process,
        c1_country_id=ns.country_c1 or facts.country_c1 or "NO",
        verbatim_sbd=not ns.rebuild_sbdh,
        service=ns.service,
        service_type=ns.service_type,
        action=ns.action,
        original_sender=ns.original_sender,
        final_recipient=ns.final_recipient,
    )
    local = create_peppol_internal_party(
        party_id=ns.from_party or common_name(certificate),
        certificate=certificate,
        private_key=AS4LocalPrivateKey(key),
    )
    remote = create_peppol_external_party(
        party_id=ns.to_party or common_name(receiver_certificate),
        certificate=receiver_certificate,
    )
    return Outgoing(
        local=local,
        remote=remote,
        receiver_certificate=receiver_certificate,
        sbd=sbd,
        args=args,
        fresh_instance_id=ns.fresh_instance_id,
        old_instance_id=facts.instance_identifier,
    )


def sent_sbd(exchange: PeppolSendingExchange) -> bytes:
    message = exchange.message
    assert message is not None
    return next(iter(message.decrypted_data.values()))


# ---------------------------------------------------------------------------------------------
# build


def command_build(ns: argparse.Namespace) -> int:
    outgoing = outgoing_from(ns)
    exchange, headers, body = outgoing.build()
    ns.out.write_bytes(body)
    sbd = sent_sbd(exchange)
    emit(
        "built",
        message_id=exchange.message_id,
        conversation_id=exchange.conversation_id,
        headers=headers,
        body=str(ns.out),
        body_bytes=len(body),
        sbd_sha256=sha256_hex(sbd),
        sbd_bytes=len(sbd),
        signed_references=[ref.uri for ref in exchange.signed_references],
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# send


@dataclass
class SendOutcome:
    line: dict[str, Any]
    acknowledged: bool
    elapsed_ms: float


def send_one(
    outgoing: Outgoing,
    pool: urllib3.PoolManager,
    url: str,
    timeout: float,
    dump_dir: Path | None,
) -> SendOutcome:
    started = time.perf_counter()
    exchange, headers, body = outgoing.build()
    sbd = sent_sbd(exchange)
    line: dict[str, Any] = {
        "message_id": exchange.message_id,
        "sbd_sha256": sha256_hex(sbd),
        "sbd_bytes": len(sbd),
        "http_status": None,
        "outcome": None,
        "error_code": None,
        "error_detail": None,
    }
    if dump_dir is not None:
        stem = safe_name(exchange.message_id)
        (dump_dir / f"{stem}.request").write_bytes(body)
        (dump_dir / f"{stem}.headers.json").write_text(json.dumps(headers, indent=2))
    exchange.mark_sent()
    posted = time.perf_counter()
    try:
        response = pool.request(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
            redirect=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        line.update(outcome="transport-error", error_detail=f"{type(exc).__name__}: {exc}")
        return _finish(line, started, acknowledged=False)
    line["http_status"] = response.status
    line["http_ms"] = round((time.perf_counter() - posted) * 1000, 2)  # the other side's share
    line["response_content_type"] = response.headers.get("Content-Type")
    if dump_dir is not None:
        (dump_dir / f"{safe_name(exchange.message_id)}.response").write_bytes(response.data)
    try:
        exchange.receive_signal(response.data)
    except ReceiptVerificationError as exc:
        line.update(outcome="unverified-signal", error_detail=str(exc))
        return _finish(line, started, acknowledged=False)
    error = exchange.error
    if error is not None:
        line.update(
            outcome="error",
            error_code=error.error_code,
            error_short_description=error.short_description,
            error_detail=error.error_detail.value if error.error_detail else None,
        )
        return _finish(line, started, acknowledged=False)
    receipt = exchange.receipt
    line.update(
        outcome="receipt",
        state=str(exchange.state),
        receipt_message_id=(
            receipt.soap_envelope.header.messaging.signal_message.message_info.message_id.value
            if receipt is not None
            and receipt.soap_envelope is not None
            and receipt.soap_envelope.header.messaging.signal_message is not None
            else None
        ),
        non_repudiated=len(receipt.non_repudiated_references) if receipt is not None else 0,
    )
    return _finish(line, started, acknowledged=exchange.successful)


def _finish(line: dict[str, Any], started: float, *, acknowledged: bool) -> SendOutcome:
    elapsed_ms = (time.perf_counter() - started) * 1000
    line["elapsed_ms"] = round(elapsed_ms, 2)
    return SendOutcome(line, acknowledged, elapsed_ms)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return round(ordered[index], 2)


def command_send(ns: argparse.Namespace) -> int:
    outgoing = outgoing_from(ns)
    if ns.count < 1 or ns.concurrency < 1:
        raise PeerUsageError("--count and --concurrency must be at least 1")
    if ns.dump_dir is not None:
        ns.dump_dir.mkdir(parents=True, exist_ok=True)
    pool = urllib3.PoolManager(maxsize=ns.concurrency, block=True)
    outcomes: list[SendOutcome] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=ns.concurrency) as executor:
        futures = [
            executor.submit(send_one, outgoing, pool, ns.url, ns.timeout, ns.dump_dir)
            for _ in range(ns.count)
        ]
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:
                line = {"outcome": "crash", "error_detail": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc(file=sys.stderr)
                outcome = SendOutcome(line, acknowledged=False, elapsed_ms=0.0)
            outcomes.append(outcome)
            emit("sent", **outcome.line)
    elapsed = time.perf_counter() - started
    latencies = [outcome.elapsed_ms for outcome in outcomes]
    by_outcome: dict[str, int] = {}
    for outcome in outcomes:
        name = str(outcome.line.get("outcome"))
        by_outcome[name] = by_outcome.get(name, 0) + 1
    acknowledged = sum(outcome.acknowledged for outcome in outcomes)
    emit(
        "summary",
        count=len(outcomes),
        acknowledged=acknowledged,
        outcomes=by_outcome,
        concurrency=ns.concurrency,
        elapsed_s=round(elapsed, 3),
        messages_per_s=round(len(outcomes) / elapsed, 2) if elapsed > 0 else None,
        latency_ms={
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
            "max": round(max(latencies), 2) if latencies else 0.0,
        },
    )
    return EXIT_OK if acknowledged == len(outcomes) else EXIT_NOT_ALL_ACKNOWLEDGED


# ---------------------------------------------------------------------------------------------
# serve


@dataclass(frozen=True)
class Receiver:
    local: AS4InternalParty
    trust: Trust
    out: Path
    error_status: int
    not_serviced: frozenset[str]
    keep_raw: bool

    def accept_participant(self, participant: str) -> None:
        if participant in self.not_serviced:
            raise ParticipantNotServicedError(participant)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        started = time.perf_counter()
        exchange = parse_peppol_message(
            request_headers=headers,
            request_body=body,
            local_party=self.local,
            accept_participant=self.accept_participant,
            security_policy=peppol_security_policy(
                *self.trust.anchors, intermediates=self.trust.intermediates
            ),
        )
        response_headers, signal_bytes = exchange.build_signal()
        message = exchange.message
        line: dict[str, Any] = {
            "message_id": exchange.message_id or None,
            "conversation_id": exchange.conversation_id,
            "from_party": (
                exchange.remote_party.identity.party_id if exchange.remote_party else None
            ),
            "signer": (
                common_name(message.signer_certificate)
                if message is not None and message.signer_certificate is not None
                else None
            ),
            "request_bytes": len(body),
        }
        if self.keep_raw:
            stem = f"raw-{safe_name(exchange.message_id or str(uuid.uuid4()))}"
            (self.out / f"{stem}.request").write_bytes(body)
            (self.out / f"{stem}.headers.json").write_text(json.dumps(headers, indent=2))
        if exchange.successful and message is not None:
            sbd = next(iter(message.decrypted_data.values()))
            target = self.out / f"{safe_name(exchange.message_id)}.xml"
            partial = self.out / f"{target.name}.part"
            partial.write_bytes(sbd)
            partial.replace(target)
            status = HTTPStatus.OK
            line.update(
                outcome="receipt",
                sender=message.sender,
                recipient=message.recipient,
                document_type=message.document_type_identifier_value,
                process=message.process_identifier,
                sbd_path=str(target),
                sbd_sha256=sha256_hex(sbd),
                sbd_bytes=len(sbd),
                non_repudiated=len(exchange.signed_references),
            )
        else:
            status = self.error_status
            error = exchange.error
            line.update(
                outcome="error",
                error_code=error.error_code if error else None,
                error_short_description=error.short_description if error else None,
                error_detail=error.error_detail.value if error and error.error_detail else None,
            )
        line.update(
            http_status=int(status), elapsed_ms=round((time.perf_counter() - started) * 1000, 2)
        )
        emit("received", **line)
        return int(status), response_headers, signal_bytes


class PeerHandler(BaseHTTPRequestHandler):
    server: PeerHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as an AS4 sender expects
    # headers and body leave in two writes: with Nagle, a keep-alive client's delayed ACK
    # would hold every answer back by ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._read_body()
        # the request's own headers, as a web framework hands them over (as4 reads Content-Type)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in ("transfer-encoding", "content-length")
        }
        try:
            status, response_headers, signal_bytes = self.server.receiver.handle(headers, body)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            emit("received", outcome="crash", error_detail=f"{type(exc).__name__}: {exc}")
            self._answer(500, {"Content-Type": "text/plain; charset=utf-8"}, str(exc).encode())
            return
        self._answer(status, response_headers, signal_bytes)


class PeerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: Receiver, *, verbose: bool) -> None:
        super().__init__(address, PeerHandler)
        self.receiver = receiver
        self.verbose = verbose


def command_serve(ns: argparse.Namespace) -> int:
    certificate = load_leaf(ns.cert)
    key = load_private_key(ns.key)
    trust = Trust.load(ns.trust)
    ns.out.mkdir(parents=True, exist_ok=True)
    party_id = ns.party or common_name(certificate)
    receiver = Receiver(
        local=create_peppol_internal_party(
            party_id=party_id, certificate=certificate, private_key=AS4LocalPrivateKey(key)
        ),
        trust=trust,
        out=ns.out,
        error_status=ns.error_status,
        not_serviced=frozenset(ns.not_serviced),
        keep_raw=ns.keep_raw,
    )
    server = PeerHTTPServer((ns.host, ns.port), receiver, verbose=ns.verbose)
    stop = threading.Event()

    def shutdown(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    host, port = server.server_address[:2]
    emit(
        "ready",
        port=port,
        url=f"http://{host}:{port}/",
        party=party_id,
        certificate_sha256=certificate.fingerprint(hashes.SHA256()).hex(),
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    emit("stopped")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# command line


def _add_outgoing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, required=True, help="our private key (PEM)")
    parser.add_argument(
        "--cert", type=Path, required=True, help="our certificate (PEM, leaf first)"
    )
    parser.add_argument(
        "--receiver-cert", type=Path, required=True, help="the receiving AP's certificate"
    )
    parser.add_argument(
        "--trust",
        type=Path,
        nargs="*",
        default=[],
        help="PEM files: check --receiver-cert chains to their self-signed anchors",
    )
    parser.add_argument("--from-party", help="eb:From PartyId (default: CN of --cert)")
    parser.add_argument("--to-party", help="eb:To PartyId (default: CN of --receiver-cert)")
    parser.add_argument("--sbd", type=Path, required=True, help="the SBD to send (sent verbatim)")
    parser.add_argument(
        "--rebuild-sbdh",
        action="store_true",
        help="send the SBD's business document in an SBDH built by as4 instead",
    )
    parser.add_argument(
        "--fresh-instance-id",
        action="store_true",
        help="give each message's SBD a new DocumentIdentification/InstanceIdentifier",
    )
    parser.add_argument("--sender", help="originalSender participant (default: from the SBDH)")
    parser.add_argument("--recipient", help="finalRecipient participant (default: from the SBDH)")
    parser.add_argument("--document-type", help="document type identifier (default: from the SBDH)")
    parser.add_argument("--process", help="process identifier (default: from the SBDH)")
    parser.add_argument("--country-c1", help="COUNTRY_C1, used with --rebuild-sbdh")
    overrides = parser.add_argument_group("wire overrides (for negative tests)")
    overrides.add_argument("--service", help="eb:Service value instead of the process id")
    overrides.add_argument("--service-type", help="eb:Service/@type instead of cenbii-procid-ubl")
    overrides.add_argument("--action", help="eb:Action instead of busdox-docid-qns::<doctype>")
    overrides.add_argument("--original-sender", help="originalSender property value only")
    overrides.add_argument("--final-recipient", help="finalRecipient property value only")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="as4_peer", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build one message, write its HTTP body")
    _add_outgoing_arguments(build)
    build.add_argument("--out", type=Path, required=True, help="where to write the HTTP body")
    build.set_defaults(run=command_build)

    send = commands.add_parser("send", help="send messages and verify their receipts")
    send.add_argument("--url", required=True)
    _add_outgoing_arguments(send)
    send.add_argument("--count", type=int, default=1)
    send.add_argument("--concurrency", type=int, default=1)
    send.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    send.add_argument("--dump-dir", type=Path, help="keep each request, headers and response")
    send.set_defaults(run=command_send)

    serve = commands.add_parser("serve", help="receive messages over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0: any free port (see the ready line)")
    serve.add_argument("--key", type=Path, required=True)
    serve.add_argument("--cert", type=Path, required=True)
    serve.add_argument(
        "--trust", type=Path, nargs="+", required=True, help="anchors, intermediates"
    )
    serve.add_argument("--party", help="our PartyId (default: CN of --cert)")
    serve.add_argument("--out", type=Path, required=True, help="directory for received SBDs")
    serve.add_argument(
        "--error-status", type=int, default=200, help="HTTP status of an ebMS error signal"
    )
    serve.add_argument(
        "--not-serviced",
        action="append",
        default=[],
        metavar="PARTICIPANT",
        help="answer PEPPOL:NOT_SERVICED for this finalRecipient (repeatable)",
    )
    serve.add_argument("--keep-raw", action="store_true", help="keep each raw request in --out")
    serve.add_argument("--verbose", action="store_true", help="HTTP access log on stderr")
    serve.set_defaults(run=command_serve)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = ns.run
    try:
        return run(ns)
    except PeerUsageError as exc:
        print(f"as4_peer: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
