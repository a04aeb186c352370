"""A local SML: an authoritative DNS server for one SML zone, on loopback.

It answers NAPTR queries for the participants registered in it the way the Peppol SML does
(``<hash>.iso6523-actorid-upis.<zone>  NAPTR 100 10 "U" "Meta:SMP" "!^.*$!<SMP URL>!" .``),
NXDOMAIN for any other name in the zone, and REFUSED for names outside it. Registrations can be
changed while it runs. Malformed queries get FORMERR (or are dropped when not even the header
can be read); nothing a client sends can stop the server.

UDP and TCP are both served on the same port (port 0 picks a free one; :attr:`SmlStandin.port`
says which). Answers too large for the client's UDP size go out truncated, so the client
retries over TCP, as with any DNS server.

:attr:`SmlStandin.outage` makes every answer carry that rcode (``SERVFAIL`` for an SML having a
bad day), and :attr:`SmlStandin.mute` drops every query (an SML that does not answer at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Mapping, Sequence
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.NAPTR import NAPTR

from elma.loopback import Serving
from routing.sml import NAPTR_SERVICE_SMP, SML_ZONE_TEST, NaptrRecord, participant_dns_name
from sbdh.identifiers import ParticipantId

__all__ = ["SmlStandin", "smp_record"]

log = logging.getLogger("budstikke.standins.dns")

_HEADER_SIZE = 12
_UDP_DEFAULT_SIZE = 512
_TCP_IDLE_SECONDS = 10.0
_TCP_MAX_QUERIES = 100


def smp_record(smp_url: str, *, order: int = 100, preference: int = 10) -> NaptrRecord:
    """The NAPTR record the SML publishes for a participant whose SMP is at ``smp_url``."""
    return NaptrRecord(order, preference, "U", NAPTR_SERVICE_SMP, f"!^.*$!{smp_url}!", ".")


def _participant(participant: ParticipantId | str) -> ParticipantId:
    return (
        participant if isinstance(participant, ParticipantId) else ParticipantId.parse(participant)
    )


class SmlStandin(Serving):
    """An SML for the local network: participant -> NAPTR records, served over DNS."""

    def __init__(
        self,
        entries: Mapping[ParticipantId | str, str] | None = None,
        *,
        zone: str = SML_ZONE_TEST,
        host: str = "127.0.0.1",
        port: int = 0,
        ttl: int = 60,
    ) -> None:
        self.zone = dns.name.from_text(zone)
        self.host = host
        self.ttl = ttl
        #: answer every query with this rcode instead (e.g. ``dns.rcode.SERVFAIL``)
        self.outage: dns.rcode.Rcode | None = None
        #: drop every query without answering
        self.mute = False
        self._requested_port = port
        self._port: int | None = None
        self._records: dict[dns.name.Name, tuple[NaptrRecord, ...]] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        for participant, url in (entries or {}).items():
            self.register(participant, url)

    # -- registrations -----------------------------------------------------------------------

    def _name(self, participant: ParticipantId | str) -> dns.name.Name:
        text = participant_dns_name(_participant(participant), self.zone.to_text())
        return dns.name.from_text(text)

    def register(self, participant: ParticipantId | str, smp_url: str) -> None:
        """Publish ``smp_url`` as the participant's SMP (replacing what was there)."""
        self.set_records(participant, [smp_record(smp_url)])

    def set_records(self, participant: ParticipantId | str, records: Sequence[NaptrRecord]) -> None:
        """Publish exactly these NAPTR records for the participant (for tests of odd SMLs)."""
        self._records[self._name(participant)] = tuple(records)

    def unregister(self, participant: ParticipantId | str) -> None:
        self._records.pop(self._name(participant), None)

    def __contains__(self, participant: ParticipantId | str) -> bool:
        return self._name(participant) in self._records

    # -- answering (no I/O) ------------------------------------------------------------------

    def _soa(self) -> dns.rrset.RRset:
        rdata = SOA(  # type: ignore[no-untyped-call]  # dnspython leaves __init__ untyped
            dns.rdataclass.IN,
            dns.rdatatype.SOA,
            dns.name.from_text("ns", self.zone),
            dns.name.from_text("hostmaster", self.zone),
            1,
            3600,
            600,
            86400,
            self.ttl,
        )
        rrset = dns.rrset.RRset(self.zone, dns.rdataclass.IN, dns.rdatatype.SOA)
        rrset.add(rdata, self.ttl)
        return rrset

    def _naptr(self, name: dns.name.Name, records: Sequence[NaptrRecord]) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.NAPTR)
        for r in records:
            replacement = (
                dns.name.root if r.replacement in ("", ".") else dns.name.from_text(r.replacement)
            )
            rrset.add(
                NAPTR(  # type: ignore[no-untyped-call]
                    dns.rdataclass.IN,
                    dns.rdatatype.NAPTR,
                    r.order,
                    r.preference,
                    r.flags.encode("latin-1"),
                    r.service.encode("latin-1"),
                    r.regexp.encode("latin-1"),
                    replacement,
                ),
                self.ttl,
            )
        return rrset

    @staticmethod
    def _format_error(wire: bytes) -> bytes | None:
        """FORMERR for a query whose body cannot be read; ``None`` when even the header is
        missing, or the message is itself a response (never answer those: no loops)."""
        if len(wire) < _HEADER_SIZE:
            return None
        (query_id, flags) = struct.unpack("!HH", wire[:4])
        if flags & dns.flags.QR:
            return None
        response = dns.message.Message(id=query_id)
        response.flags = dns.flags.QR | (flags & dns.flags.RD)
        response.set_opcode(dns.opcode.from_flags(flags))
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()

    def answer(self, wire: bytes, *, max_size: int = 0) -> bytes | None:
        """The response to one query in wire format (``None``: send nothing).

        ``max_size`` is the largest answer the transport can take (UDP); 0 means no limit.
        """
        if self.mute:
            return None
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # any parse failure of untrusted bytes: FORMERR, never a crash
            return self._format_error(wire)
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.flags &= ~dns.flags.RA
        if self.outage is not None:
            response.set_rcode(self.outage)
        elif query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            self._resolve(query.question[0], response)
        if max_size == 0:
            return response.to_wire()
        limit = max(_UDP_DEFAULT_SIZE, query.payload if query.edns >= 0 else _UDP_DEFAULT_SIZE)
        limit = min(limit, max_size)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _resolve(self, question: dns.rrset.RRset, response: dns.message.Message) -> None:
        qname, qtype = question.name, question.rdtype
        if question.rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.zone):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return
        records = self._records.get(qname)
        if records is None:
            if qname != self.zone:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa())
            return
        if qtype in (dns.rdatatype.NAPTR, dns.rdatatype.ANY) and records:
            response.answer.append(self._naptr(qname, records))
        else:
            response.authority.append(self._soa())  # NODATA

    # -- serving -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the SML stand-in is not running")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(ip, port)`` to give :class:`routing.sml.SmlClient` as its nameserver."""
        return (self.host, self.port)

    async def start(self) -> tuple[str, int]:
        """Serve UDP and TCP on one port; returns ``(host, port)``."""
        loop = asyncio.get_running_loop()
        port = self._requested_port
        # with port 0 the UDP port is picked first, then TCP is bound to the same number;
        # in the rare case it is taken over TCP, try again with another one
        for _ in range(20):
            udp, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, port)
            )
            bound = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, bound)
            except OSError:
                udp.close()
                if self._requested_port:
                    raise
                continue
            self._udp, self._port = udp, bound
            log.info("SML stand-in for %s on %s:%d", self.zone, self.host, bound)
            return self.address
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None
        self._port = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            for _ in range(_TCP_MAX_QUERIES):
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE_SECONDS)
                    (length,) = struct.unpack("!H", head)
                    wire = await asyncio.wait_for(reader.readexactly(length), _TCP_IDLE_SECONDS)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                reply = self.answer(wire)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except Exception:  # a stand-in must keep serving whatever one connection does
            log.exception("SML stand-in: TCP connection failed")
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SmlStandin) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            reply = self.server.answer(data, max_size=65535)
        except Exception:  # never let one datagram end the server
            log.exception("SML stand-in: cannot answer a query")
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SML stand-in: UDP error %s", exc)
