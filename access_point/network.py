"""AS4 between access points: the ``POST /as4`` endpoint (corner 3) and the AS4 channel (corner 2).

Inbound: the request body is spooled (to disk past a few MB), verified and opened by the AS4
core on a worker thread, the SBD checked with the envelope rules and against the ebMS header,
its signature verified when it carries one; then the message is **stored before the receipt is
given**, in one transaction with the receipt itself, so a duplicate (same AS4 message id) gets
that receipt again and a re-sent SBD (same instance id, new AS4 message) is never delivered
twice. A refusal is a signed ebMS error with the code the core chose, logged with the reason.

Outbound: the ``send`` job of a message whose receiver is not hosted here goes to the receiver's
access point from the directory (:mod:`access_point.directory`): the SBD signed with our key,
the files as a signed ASiC-E (encrypted end to end when the receiving organisation has a
certificate) as a second payload, posted, and the receipt verified, signature and references
both. Connection failures and 5xx answers are transient (retried with backoff; a per-endpoint
circuit breaker stops hammering a dead access point); an ebMS error or a receipt that does not
prove delivery ends the message FEIL with the reason.

Status back: when the receiving system acknowledges a message that came over AS4, a ``status``
SBD (LEVERT) goes back the same way; a kvittering is an ordinary message that marks LEST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, NoReturn

import aiohttp
from aiohttp import web
from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncConnection

from access_point.as4 import (
    As4Error,
    Attachment,
    ErrorSignalReceived,
    Identifier,
    InboundMessage,
    OtherError,
    ReceiveOptions,
    Routing,
    SendFailed,
    TrustPolicy,
    UntrustedSender,
    ValueInconsistent,
    build_error,
    build_receipt,
    build_user_message,
    check_response,
    receive_user_message,
)
from access_point.as4.signer import trusted_path
from access_point.directory import CircuitBreaker, Directory, Endpoint
from access_point.messages import (
    SBD_FILENAME,
    SBD_ROLE,
    MessageService,
    NetworkFile,
    party_key,
    party_of,
)
from access_point.persons import PersonRoutes, national_id_of, undeliverable
from access_point.revocation import RevocationPolicy
from access_point.routes import NetworkRoutes, decision_of
from access_point.statuses import MessageStatus
from adapters.db.schema import as4_refusals
from adapters.files import FileStore
from sbdh.errors import (
    BusError,
    InvalidInput,
    NoRoute,
    PayloadTooLarge,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from sbdh.identifiers import NationalId
from sbdh.jsonform import read_python
from sbdh.model import (
    NEXTMOVE_NS,
    BusinessMessage,
    JsonObject,
    StandardBusinessDocument,
    StandardBusinessDocumentHeader,
    eformidling_sbd,
)
from sbdh.package import PackageFile, seal_package, write_container
from sbdh.pki import Credential
from sbdh.revocation import RevocationRefused
from sbdh.rules import Profile, check_sbd
from sbdh.signing import sign_sbd, verify_sbd
from sbdh.trust import TrustStore
from sbdh.xmlform import sbd_to_xml

__all__ = ["AS4_PATH", "SBD_SIGNATURE", "As4Network"]

log = logging.getLogger(__name__)

AS4_PATH = "/as4"
#: the namespace of an enveloped XMLDSig on an SBD (ours sign every SBD they send)
SBD_SIGNATURE = b"http://www.w3.org/2000/09/xmldsig#"
#: what the document package travels as (the second payload)
ASIC_MIME = "application/vnd.etsi.asic-e+zip"
CMS_MIME = "application/cms"
_SPOOL = 8 * 1024 * 1024
_EFORMIDLING = ("urn:no:difi:", "urn:fdc:digdir.no:")
_CHUNK = 1024 * 1024
#: the request's body size, kept on the request for the refusal record
_BODY_SIZE = web.RequestKey("as4_body_size", int)
#: the status message a receiving access point sends back (eFormidling's vocabulary)
STATUS_STANDARD = "urn:no:difi:eformidling:xsd::status"
STATUS_PROCESS = "urn:no:difi:profile:arkivmelding:response:ver1.0"


@dataclass
class As4Network:
    """The AS4 edge of one access point: its key, the anchors it trusts, where others are."""

    service: MessageService
    files: FileStore
    credential: Credential
    trust: TrustStore
    directory: Directory
    #: the directory as override, then SML → SMP (made from ``directory`` alone when not given)
    routes: NetworkRoutes | None = None
    #: letters to persons: KRR and the population register (None: not configured)
    people: PersonRoutes | None = None
    max_request: int = 1 << 30
    timeout: float = 60.0
    breaker: CircuitBreaker | None = None
    #: revocation checking of the peers' certificates (OCSP/CRL); None = not checked
    revocation: RevocationPolicy | None = None
    _session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        if self.breaker is None:
            self.breaker = CircuitBreaker()
        if self.routes is None:
            self.routes = NetworkRoutes(self.directory)

    @property
    def router(self) -> NetworkRoutes:
        """Where messages go (set in ``__post_init__``)."""
        assert self.routes is not None
        return self.routes

    @property
    def name(self) -> str:
        names = self.credential.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value)

    async def close(self) -> None:
        await self.router.close()
        if self.people is not None:
            await self.people.close()
        if self.revocation is not None:
            await self.revocation.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=10)
            )
        return self._session

    # ------------------------------------------------------------------ inbound (corner 3)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``POST /as4``: a signed receipt, or a signed ebMS error; never a stack trace."""
        now = datetime.now(UTC)
        if request.content_length is not None and request.content_length > self.max_request:
            await self._too_large(request, now)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as body:
            size = 0
            async for chunk in request.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > self.max_request:
                    request[_BODY_SIZE] = size
                    await self._too_large(request, now)
                body.write(chunk)
            body.seek(0)
            request[_BODY_SIZE] = size
            hosted = await self.service.hosted_organisations()
            try:
                inbound = await asyncio.to_thread(
                    receive_user_message,
                    body,
                    request.headers.get("Content-Type"),
                    credential=self.credential,
                    trust=self.trust,
                    now=now,
                    options=ReceiveOptions(max_payloads=2),
                    serves=lambda routing: party_key(routing.receiver.value) in hosted,
                )
            except As4Error as refusal:
                return await self._refuse(refusal, request, now)
            with inbound:
                try:
                    return await self._accept(inbound, now)
                except As4Error as refusal:
                    return await self._refuse(refusal, request, now)

    async def _too_large(self, request: web.Request, now: datetime) -> NoReturn:
        """A request past ``max_request``: recorded, then answered 413 (problem details)."""
        refusal = PayloadTooLarge(
            f"the AS4 request is larger than {self.max_request} bytes", rule="as4-size"
        )
        await self._record_refusal(
            request, now, code="HTTP-413", error="PayloadTooLarge", description=str(refusal)
        )
        raise refusal

    async def _refuse(
        self, refusal: As4Error, request: web.Request, now: datetime
    ) -> web.StreamResponse:
        log.warning(
            "AS4 message %s from %s refused: %s %s",
            refusal.ref_to_message_id or "(unknown id)",
            request.remote,
            refusal.ebms_code,
            refusal,
        )
        await self._record_refusal(
            request,
            now,
            code=str(refusal.ebms_code),
            error=type(refusal).__name__,
            description=str(refusal),
            as4_message_id=refusal.ref_to_message_id,
        )
        signal = await asyncio.to_thread(build_error, refusal, signer=self.credential, now=now)
        return web.Response(body=signal.body, content_type=None, headers=_ct(signal.content_type))

    async def _record_refusal(
        self,
        request: web.Request,
        now: datetime,
        *,
        code: str,
        error: str,
        description: str,
        as4_message_id: str | None = None,
    ) -> None:
        """Keep a refused request's particulars (never its body) for ops; a failure to record
        is logged, and never turns the refusal into a crash."""
        size = request.get(_BODY_SIZE)
        if size is None:
            size = request.content_length or 0
        values = {
            "received_at": now,
            "remote": (request.remote or "")[:100] or None,
            "as4_message_id": (as4_message_id or "")[:255] or None,
            "peer": None,
            "ebms_code": code[:16],
            "error": error[:64],
            "description": description[:2000],
            "content_type": (request.headers.get("Content-Type") or "")[:300] or None,
            "body_size": int(size),
            "body_sha256": None,
        }
        try:
            async with self.service.database.transaction() as connection:
                await connection.execute(as4_refusals.insert(), values)
        except Exception:
            log.exception("the refusal of an AS4 request could not be recorded")

    async def _accept(self, inbound: InboundMessage, now: datetime) -> web.StreamResponse:
        await self._check_sender_revocation(inbound, now)
        payloads = inbound.payloads
        if payloads[0].size > self.service.settings.sbd_stream_threshold:
            return await self._accept_streamed(inbound, now)
        sbd_xml = await asyncio.to_thread(payloads[0].read_bytes)
        document = await asyncio.to_thread(self._check_sbd, sbd_xml, inbound, now)

        async def store() -> list[NetworkFile]:
            return [await self._store_payload(inbound, sbd_xml)]

        return await self._receipt_for(inbound, document, now, store)

    async def _accept_streamed(self, inbound: InboundMessage, now: datetime) -> web.StreamResponse:
        """:meth:`_accept` for an SBD over ``settings.sbd_stream_threshold``: never whole in
        memory. The payload goes from its spool to the file store (what the receiving system
        pops, ``sbd.xml``), is read back streamed (:mod:`sbdh.stream`: header and envelope
        rules, the whole document well-formed) and stored with its header only.

        It must come alone and unsigned: Peppol's shape. An SBD-level signature cannot be
        verified without holding the document, and an eFormidling SBD is small by design (its
        documents travel as the second payload).
        """
        settings = self.service.settings
        if len(inbound.payloads) > 1:
            raise OtherError(
                f"the SBD is over {settings.sbd_stream_threshold} bytes and has a document "
                "package beside it: a large SBD must travel alone",
                ref_to_message_id=inbound.message_id,
            )
        try:
            stored = await self.files.write(
                _chunks(inbound.payloads[0].iter_chunks()), max_size=settings.max_sbd_size
            )
        except PayloadTooLarge as exc:
            raise OtherError(
                f"the SBD is larger than {settings.max_sbd_size} bytes",
                ref_to_message_id=inbound.message_id,
            ) from exc
        kept = [NetworkFile(stored, SBD_FILENAME, "application/xml")]
        handed_over = False

        async def store() -> list[NetworkFile]:
            nonlocal handed_over
            handed_over = True  # _receipt_for forgets them from here on when it must
            return kept

        try:
            document = await asyncio.to_thread(self._check_stored_sbd, stored.storage_id, inbound)
            response = await self._receipt_for(inbound, document, now, store)
        except BaseException:
            if not handed_over:
                await self._forget(kept)
            raise
        if not handed_over:  # a repeat: the message is stored with its first copy
            await self._forget(kept)
        return response

    def _check_stored_sbd(
        self, storage_id: str, inbound: InboundMessage
    ) -> StandardBusinessDocument:
        """:meth:`_check_sbd` for an SBD in the file store, read streamed."""
        threshold = self.service.settings.sbd_stream_threshold
        try:
            streamed = self.service.read_stored_sbd(storage_id, Profile.AUTO)
        except InvalidInput as exc:
            raise OtherError(f"the SBD is not acceptable: {exc}") from exc
        document = streamed.document
        if document.header.document_identification.standard.startswith(_EFORMIDLING) or (
            streamed.payload.namespace == NEXTMOVE_NS
        ):
            raise OtherError(
                f"an eFormidling SBD over {threshold} bytes is not accepted: its documents "
                "travel as the document package"
            )
        if streamed.signed:
            raise OtherError(
                f"the SBD is signed and over {threshold} bytes: its signature cannot be "
                "verified without holding it whole (a Peppol SBD travels unsigned)"
            )
        self._check_agreement(document, inbound)
        return document

    async def _receipt_for(
        self,
        inbound: InboundMessage,
        document: StandardBusinessDocument,
        now: datetime,
        store: Callable[[], Awaitable[list[NetworkFile]]],
    ) -> web.StreamResponse:
        """Duplicates, then the message stored (``store`` gives its files) and its receipt."""
        peer = inbound.user_message.from_party.party_id
        seen = await self.service.network_duplicate(
            inbound.message_id, document.header.document_identification.instance_identifier
        )
        if seen is not None and seen[0] == "as4" and seen[1] is not None:
            log.info("AS4 message %s again: the receipt given then", inbound.message_id)
            return web.Response(body=seen[1], content_type=None, headers=_ct(seen[2] or ""))
        receipt = await asyncio.to_thread(
            build_receipt,
            inbound.message_id,
            inbound.references,
            signer=self.credential,
            now=now,
        )
        files: list[NetworkFile] = []
        try:
            if seen is None:
                files = await store()
            accepted = await self.service.accept_from_network(
                document,
                files=files,
                as4_message_id=inbound.message_id,
                peer=peer,
                receipt=receipt.body,
                receipt_content_type=receipt.content_type,
            )
        except BaseException:
            await self._forget(files)
            raise
        if accepted.duplicate:
            await self._forget(files)
            log.info("SBD %s again (AS4 %s): not delivered twice", accepted.message_id, peer)
        return web.Response(body=receipt.body, content_type=None, headers=_ct(receipt.content_type))

    def _check_sbd(
        self, sbd_xml: bytes, inbound: InboundMessage, now: datetime
    ) -> StandardBusinessDocument:
        """The envelope rules, our signature when there is one, and agreement with the ebMS
        header (originalSender, finalRecipient, document type, process)."""
        try:
            if SBD_SIGNATURE in sbd_xml:
                verify_sbd(sbd_xml, self.trust, at=now)
            document = check_sbd(sbd_xml, Profile.AUTO)
        except InvalidInput as exc:
            raise OtherError(f"the SBD is not acceptable: {exc}") from exc
        self._check_agreement(document, inbound)
        return document

    @staticmethod
    def _check_agreement(document: StandardBusinessDocument, inbound: InboundMessage) -> None:
        """The SBD's sender and receiver are the ebMS header's originalSender and
        finalRecipient."""
        header = document.header
        routing = inbound.routing
        if header.sender is None or header.receiver is None:
            raise ValueInconsistent("the SBD names no sender or no receiver")
        pairs = (
            ("originalSender", header.sender.value, routing.sender.value),
            ("finalRecipient", header.receiver.value, routing.receiver.value),
        )
        for name, in_sbd, in_ebms in pairs:
            if party_key(in_sbd) != party_key(in_ebms):
                raise ValueInconsistent(f"{name} {in_ebms} does not agree with the SBD's {in_sbd}")

    async def _check_sender_revocation(self, inbound: InboundMessage, now: datetime) -> None:
        """The signer's certificate, verified and chained by the AS4 core, must not be revoked
        (EBMS:0101 when the policy refuses it). Done here, not in the core, because asking an
        OCSP responder is I/O; the answer is cached until its nextUpdate."""
        if self.revocation is None or len(inbound.chain) < 2:
            return  # no policy, or the signer is itself a trust anchor: nobody to ask
        try:
            await self.revocation.verify(inbound.signer, inbound.chain[1], now=now)
        except RevocationRefused as exc:
            raise UntrustedSender(
                f"the signer's certificate is not accepted: {exc.message}",
                rule=exc.rule,
                ref_to_message_id=inbound.message_id,
            ) from exc

    async def _check_receiver_revocation(
        self, certificate: x509.Certificate, endpoint: Endpoint, about: str, now: datetime
    ) -> None:
        """Before anything is encrypted to a receiving access point's certificate (and its
        receipt, pinned to that certificate, trusted), it must not be revoked. Refused: the
        send fails (permanently; transiently when hard-fail could not reach the responder)."""
        if self.revocation is None:
            return
        try:
            chain = trusted_path(certificate, self.trust, at=now)
        except UntrustedSender:
            return  # not chained at all: the receipt check reports that, as before
        if len(chain) < 2:
            return
        try:
            await self.revocation.verify(certificate, chain[1], now=now)
        except RevocationRefused as exc:
            text = f"{endpoint.access_point}'s certificate is not accepted, {about} not sent: {exc}"
            if exc.transient:
                raise TransientDeliveryError(text) from exc
            raise PermanentDeliveryError(text) from exc

    async def _store_payload(self, inbound: InboundMessage, sbd_xml: bytes) -> NetworkFile:
        """What the receiving system will pop: the document package as it came (the second
        payload), or, for a message of one payload, the SBD itself."""
        if len(inbound.payloads) < 2:
            stored = await self.files.write_bytes(sbd_xml)
            return NetworkFile(stored, SBD_FILENAME, "application/xml")
        package = inbound.payloads[1]
        mime = package.mime_type or ASIC_MIME
        stored = await self.files.write(_chunks(package.iter_chunks()), max_size=1 << 40)
        name = "asic.zip" if mime == ASIC_MIME else "dokumentpakke.cms"
        return NetworkFile(stored, name, mime, role="package")

    async def _forget(self, files: list[NetworkFile]) -> None:
        for file in files:
            await self.files.delete(file.stored.storage_id)

    # ------------------------------------------------------------------ outbound (corner 2)

    def can_reach(self, receiver: str) -> bool:
        return self.router.knows(receiver)

    async def send(
        self,
        message_id: str,
        *,
        claim: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> bool:
        """Send an outgoing message to its receiver's access point; True when it went now,
        False when its job's claim was taken already."""
        row, files = await self.service.outgoing_for_network(message_id)
        person = national_id_of(row.receiver)
        if person is not None:
            await self._letter(message_id, person, row.process)
        endpoint = await self._route(message_id, row.receiver, row.document_type, row.process)
        if row.sent_at is None:
            raise PermanentDeliveryError(f"message {message_id} has not been sent")
        if row.status in (MessageStatus.FEIL.value, MessageStatus.LEVETID_UTLOPT.value):
            raise PermanentDeliveryError(f"message {message_id} is {row.status}: not sent")
        now = datetime.now(UTC)
        if row.expires_at is not None and now >= row.expires_at:
            raise PermanentDeliveryError(f"message {message_id}'s lifetime ended unsent")
        document = _document(row.sbd_json)
        # an SBD over the stream threshold is kept as a file: it goes as it came
        sbd_file = next((f.storage_id for f in files if f.role == SBD_ROLE), None)
        files = [f for f in files if f.role != SBD_ROLE]
        package = None
        if files:
            package = await asyncio.to_thread(self._package, row, files, endpoint, now)
        try:
            receipt, content_type, as4_id = await self._post(
                document, endpoint, now, package, message_id, sbd_file=sbd_file
            )
        finally:
            if package is not None:
                package[0].close()
        return await self.service.record_network_send(
            message_id,
            as4_message_id=as4_id,
            peer=endpoint.access_point,
            receipt=receipt,
            receipt_content_type=content_type,
            claim=claim,
        )

    async def _letter(self, message_id: str, person: NationalId, process: str) -> NoReturn:
        """A letter to a person: decided from KRR (and the population register for print) and
        recorded; it ends here until the mailbox and print channels exist (see
        :mod:`access_point.persons`)."""
        if self.people is None or self.people.krr is None:
            raise NoRoute(
                "letters to persons need the contact and reservation register "
                "(BUDSTIKKE_KRR_URL): no route",
                rule="PERSON-NO-KRR",
            )
        decision = await self.people.decide(person, process)
        await self.service.record_routing_decision(message_id, decision)
        raise undeliverable(decision)

    async def _route(
        self, message_id: str, receiver: str, document_type: str, process: str
    ) -> Endpoint:
        """The receiver's endpoint (override directory, else SML → SMP); the decision, or why
        there is none, is stored with the message either way."""
        try:
            route = await self.router.route(receiver, document_type, process)
        except BusError as exc:
            decision = decision_of(exc)
            if decision is not None:
                await self.service.record_routing_decision(message_id, decision)
            raise
        await self.service.record_routing_decision(message_id, route.decision)
        return route.endpoint

    async def send_status(self, message_id: str, status: MessageStatus) -> None:
        """Tell the sending access point that an incoming message reached ``status``."""
        found = await self.service.received_over_network(message_id)
        if found is None:
            return
        row, _peer = found
        # the status goes where the sender's access point receives eFormidling statuses
        route = await self.router.route(row.sender, STATUS_STANDARD, STATUS_PROCESS)
        endpoint = route.endpoint
        now = datetime.now(UTC)
        document = eformidling_sbd(
            sender=row.receiver,
            receiver=row.sender,
            message=BusinessMessage(
                "status",
                JsonObject.of(
                    {
                        "status": status.value,
                        "description": f"{status.value} for {message_id}",
                    }
                ),
            ),
            standard=STATUS_STANDARD,
            process=STATUS_PROCESS,
            conversation_id=row.conversation_id,
            instance_identifier=str(uuid.uuid4()),
            created=now,
            expected_response=now.replace(year=now.year + 1),
        )
        await self._post(document, endpoint, now, None, message_id)

    def _package(
        self, row: Any, files: list[Any], endpoint: Endpoint, now: datetime
    ) -> tuple[IO[bytes], str]:
        """The message's files as a signed ASiC-E, encrypted to the receiving organisation
        when it has a certificate; a spooled file and its MIME type."""
        out = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned open
        with contextlib.ExitStack() as stack:
            sources = [
                PackageFile(
                    f.filename,
                    stack.enter_context(self.files.open(f.storage_id)),
                    f.mime_type,
                    f.title,
                )
                for f in files
            ]
            main = next((f.filename for f in files if f.primary), files[0].filename)
            common = {
                "sender": party_of(row.sender),
                "receiver": party_of(row.receiver),
                "main_document": main,
                "signer": self.credential,
                "now": now,
            }
            if endpoint.organisation_certificate is not None:
                seal_package(
                    sources,
                    recipient_certificate=endpoint.organisation_certificate,
                    out=out,  # type: ignore[arg-type]
                    **common,
                )
                mime = CMS_MIME
            else:
                write_container(sources, out=out, **common)
                mime = ASIC_MIME
        out.seek(0)
        return out, mime

    async def _post(
        self,
        document: StandardBusinessDocument,
        endpoint: Endpoint,
        now: datetime,
        package: tuple[IO[bytes], str] | None,
        about: str,
        *,
        sbd_file: str | None = None,
    ) -> tuple[bytes, str, str]:
        """Sign, build, post, and check the receipt; (receipt, content type, AS4 message id).

        ``sbd_file``: the file store id of the SBD's bytes, for a message whose SBD is kept as
        a file (:meth:`MessageService.create_streamed`); they are streamed from the store into
        the AS4 core (compressed, encrypted and digested in one pass), never whole in memory,
        and not signed: such an SBD is a Peppol one, which travels unsigned.
        """
        assert self.breaker is not None
        if not self.breaker.allows(endpoint.url):
            raise TransientDeliveryError(
                f"{endpoint.access_point} at {endpoint.url} is failing: not tried for "
                f"{self.breaker.retry_in(endpoint.url):.0f} s (circuit open)"
            )
        await self._check_receiver_revocation(endpoint.certificate, endpoint, about, now)
        header = document.header
        eformidling = header.document_identification.standard.startswith(_EFORMIDLING)
        sbd: bytes | IO[bytes]
        if sbd_file is not None:
            if eformidling:  # refused when the message was created
                raise PermanentDeliveryError(f"{about}: an eFormidling SBD kept as a file")
            sbd = await asyncio.to_thread(self.files.open, sbd_file)
        else:
            sbd = sbd_to_xml(document)
            if eformidling:
                # eFormidling's SBDs travel signed by the sending access point; a Peppol SBD
                # stays as the envelope specification has it (no signature after the payload)
                sbd = await asyncio.to_thread(sign_sbd, sbd, self.credential)
        try:
            return await self._build_and_post(
                sbd, header, endpoint=endpoint, now=now, package=package, about=about
            )
        finally:
            if not isinstance(sbd, bytes):
                sbd.close()

    async def _build_and_post(
        self,
        sbd: bytes | IO[bytes],
        header: StandardBusinessDocumentHeader,
        *,
        endpoint: Endpoint,
        now: datetime,
        package: tuple[IO[bytes], str] | None,
        about: str,
    ) -> tuple[bytes, str, str]:
        """Build the AS4 message around the SBD's bytes (or file), post it, check the receipt."""
        assert self.breaker is not None
        assert header.sender is not None
        assert header.receiver is not None
        routing = Routing(
            sender=Identifier.participant(header.sender.value),
            receiver=Identifier.participant(header.receiver.value),
            document_type=Identifier.document_type(
                header.document_type_id.value
                if header.document_type_id
                else header.document_identification.standard
            ),
            process=Identifier.process(
                header.process_id.value if header.process_id else header.process or ""
            ),
        )
        attachments = () if package is None else (Attachment(package[0], package[1]),)
        message = await asyncio.to_thread(
            build_user_message,
            sbd,
            routing=routing,
            sender=self.credential,
            receiver_certificate=endpoint.certificate,
            now=now,
            attachments=attachments,
        )
        with message:
            try:
                async with self._http().post(
                    endpoint.url,
                    data=_chunks(message.iter_chunks()),
                    headers={"Content-Type": message.content_type},
                ) as response:
                    body = await response.read()
                    content_type = response.headers.get("Content-Type", "")
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self.breaker.failed(endpoint.url)
                raise TransientDeliveryError(
                    f"{endpoint.access_point} at {endpoint.url} did not answer: {exc!r}"
                ) from exc
            try:
                verified = await asyncio.to_thread(
                    check_response,
                    body,
                    content_type,
                    sent=message.sent,
                    policy=TrustPolicy(store=self.trust, pinned=(endpoint.certificate,)),
                    at=datetime.now(UTC),
                )
            except ErrorSignalReceived as exc:
                self.breaker.succeeded(endpoint.url)  # it answered: the access point is up
                raise PermanentDeliveryError(
                    f"{endpoint.access_point} refused {about}: {exc.reason}"
                ) from exc
            except SendFailed as exc:
                if status >= 500:
                    self.breaker.failed(endpoint.url)
                    raise TransientDeliveryError(
                        f"{endpoint.access_point} answered {status}: {exc}"
                    ) from exc
                raise
            self.breaker.succeeded(endpoint.url)
            if verified.signer is not None and verified.signer != endpoint.certificate:
                # the receipt is pinned to the certificate checked before sending; should that
                # pin ever widen, the receipt's own signer is checked too
                await self._check_receiver_revocation(verified.signer, endpoint, about, now)
            return body, content_type, message.message_id


def _ct(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type}


async def _chunks(chunks: Any) -> AsyncIterator[bytes]:
    """A synchronous chunk iterator (spooled, possibly on disk) as an async one."""
    iterator = iter(chunks)
    while True:
        chunk = await asyncio.to_thread(next, iterator, None)
        if chunk is None:
            return
        yield chunk


def _document(sbd_json: str) -> StandardBusinessDocument:
    reading = read_python(json.loads(sbd_json))
    if reading.document is None:
        raise PermanentDeliveryError("the stored SBD cannot be read back")
    return reading.document
