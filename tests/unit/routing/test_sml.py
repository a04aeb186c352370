"""The SML lookup: the hashed DNS name, U-NAPTR records (hostile ones included), and the client
against the local SML stand-in over real UDP/TCP sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from adapters.standins.dns import SmlStandin, smp_record
from routing.errors import ParticipantNotRegistered, RegistryResponseError, RegistryUnavailable
from routing.sml import (
    SML_ZONE_PRODUCTION,
    SML_ZONE_TEST,
    MemorySml,
    NaptrRecord,
    SmlClient,
    SmlLookup,
    participant_dns_name,
    participant_hash_label,
    smp_url_from_naptr,
)
from sbdh.errors import NoRoute, TransientDeliveryError
from sbdh.identifiers import ParticipantId

ORG = ParticipantId("0192:991825827")
OTHER = ParticipantId("0192:974760673")


# -- the DNS name --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "label"),
    [
        # Peppol Policy for use of Identifiers 4.4.0, POLICY 7 example (as in phax peppol-commons)
        ("0088:123abc", "y7dzfxaf3d4cjz4kcgrxtec6twvcga4ky7zwa5boif6mswd4tdrq"),
        ("0088:123ABC", "y7dzfxaf3d4cjz4kcgrxtec6twvcga4ky7zwa5boif6mswd4tdrq"),
        # Peppol SML specification example
        ("0010:5798000000001", "xukhfqabqziki3ykvr2fhr4snfa3pf5vpq6k4tonv3lmvsy5arvq"),
        ("9915:test", "eh5boavaktmbgzyh2a63dz4qov33fvp5nsdvqklucfraayoodw6a"),
    ],
)
def test_hash_label_matches_the_published_vectors(value: str, label: str) -> None:
    assert participant_hash_label(value) == label


def test_dns_name_in_the_test_and_production_zones() -> None:
    pid = ParticipantId("0088:123ABC")
    label = "y7dzfxaf3d4cjz4kcgrxtec6twvcga4ky7zwa5boif6mswd4tdrq"
    assert participant_dns_name(pid, SML_ZONE_TEST) == (
        f"{label}.iso6523-actorid-upis.participant.sml.test.tech.peppol.org"
    )
    assert participant_dns_name(pid) == (
        f"{label}.iso6523-actorid-upis.participant.sml.prod.tech.peppol.org"
    )
    assert SML_ZONE_PRODUCTION == "participant.sml.prod.tech.peppol.org"


def test_dns_name_lower_cases_scheme_and_zone_and_drops_the_root_dot() -> None:
    pid = ParticipantId("0192:991825827", "ISO6523-ACTORID-UPIS")
    name = participant_dns_name(pid, "Participant.SML.Test.Tech.Peppol.org.")
    assert name.endswith(".iso6523-actorid-upis.participant.sml.test.tech.peppol.org")
    assert name.split(".")[0] == participant_hash_label("0192:991825827")
    assert len(name.split(".")[0]) == 52  # 256 bits in base32 without padding


# -- applying NAPTR records ----------------------------------------------------------------------


def _rec(regexp: str, *, order: int = 100, pref: int = 10, flags: str = "U") -> NaptrRecord:
    return NaptrRecord(order, pref, flags, "Meta:SMP", regexp, ".")


def test_the_regexp_gives_the_smp_url() -> None:
    assert smp_url_from_naptr([_rec("!^.*$!https://smp.example/!")]) == "https://smp.example/"
    assert smp_url_from_naptr([_rec("!^.*$!https://smp.example:8443/smp!", flags="u")]) == (
        "https://smp.example:8443/smp"
    )


def test_order_then_preference_decides() -> None:
    records = [
        _rec("!^.*$!https://third.example/!", order=20, pref=1),
        _rec("!^.*$!https://second.example/!", order=10, pref=20),
        _rec("!^.*$!https://first.example/!", order=10, pref=5),
    ]
    assert smp_url_from_naptr(records) == "https://first.example/"


def test_other_services_are_ignored() -> None:
    records = [
        NaptrRecord(1, 1, "U", "Meta:SMP2", "!^.*$!https://wrong.example/!"),
        NaptrRecord(1, 1, "U", "E2U+sip", "!^.*$!https://wrong.example/!"),
        _rec("!^.*$!https://right.example/!", order=50),
    ]
    assert smp_url_from_naptr(records) == "https://right.example/"


def test_no_smp_record_means_not_registered() -> None:
    with pytest.raises(ParticipantNotRegistered) as info:
        smp_url_from_naptr([NaptrRecord(1, 1, "U", "E2U+sip", "!^.*$!https://x.example/!")])
    assert isinstance(info.value, NoRoute)
    assert info.value.rule == "sml-no-smp-record"


def test_http_only_when_allowed() -> None:
    record = _rec("!^.*$!http://localhost:8080/smp/!")
    with pytest.raises(RegistryResponseError, match="scheme must be https"):
        smp_url_from_naptr([record])
    assert smp_url_from_naptr([record], allow_http=True) == "http://localhost:8080/smp/"


HOSTILE = [
    "!^.*$!https://evil.example/\\1!",  # back-reference
    "!^(.*)$!https://evil.example/!",  # another expression
    "!.*!https://evil.example/!",
    "!^.*$!https://evil.example/!i",  # trailing flag
    "#^.*$#https://evil.example/#",  # other delimiter
    "^.*$!https://evil.example/",
    "!^.*$!!",
    "!^.*$!javascript:alert(1)!",
    "!^.*$!file:///etc/passwd!",
    "!^.*$!ftp://evil.example/!",
    "!^.*$!https://user:secret@evil.example/!",
    "!^.*$!https://evil.example/ x!",
    "!^.*$!https://evil.example/\n!",
    "!^.*$!https://evil.example/?next=x!",
    "!^.*$!https://evil.example/#x!",
    "!^.*$!https:///no-host!",
    "!^.*$!https://evil.example:0/!",
    "!^.*$!https://evil.example:99999/!",
    "!^.*$!https://ev_il.example/!",
    "!^.*$!https://smp.ex\u00e4mple/!",
    "!^.*$!https://evil.example\\@good.example/!",
    "!^.*$!//evil.example/!",
    "!^.*$!https://evil.example/" + "a" * 3000 + "!",
    "",
]


@pytest.mark.parametrize("regexp", HOSTILE)
def test_hostile_regexps_never_give_a_url(regexp: str) -> None:
    with pytest.raises(RegistryResponseError) as info:
        smp_url_from_naptr([_rec(regexp)])
    assert info.value.rule == "sml-naptr"


@pytest.mark.parametrize(
    "record",
    [
        _rec("!^.*$!https://x.example/!", flags="S"),
        _rec("!^.*$!https://x.example/!", flags=""),
        NaptrRecord(1, 1, "U", "Meta:SMP", "!^.*$!https://x.example/!", "smp.x.example."),
    ],
)
def test_records_that_are_not_terminal_u_naptr_are_refused(record: NaptrRecord) -> None:
    with pytest.raises(RegistryResponseError):
        smp_url_from_naptr([record])


def test_a_bad_record_is_skipped_for_a_good_one_further_down() -> None:
    records = [
        _rec("!^.*$!https://evil.example/\\1!", order=1),
        _rec("!^.*$!https://good.example/!", order=2),
    ]
    assert smp_url_from_naptr(records) == "https://good.example/"


async def test_memory_sml_has_the_lookup_shape() -> None:
    sml = MemorySml({ORG: "https://smp.example/"})
    assert isinstance(sml, SmlLookup)
    assert await sml.smp_url(ParticipantId("0192:991825827")) == "https://smp.example/"
    with pytest.raises(ParticipantNotRegistered):
        await sml.smp_url(OTHER)


# -- the client against the stand-in, over real sockets ------------------------------------------


@pytest.fixture
async def sml() -> AsyncIterator[SmlStandin]:
    async with SmlStandin({ORG: "https://smp.local.example/"}, zone=SML_ZONE_TEST) as server:
        yield server


def _client(server: SmlStandin, *, timeout: float = 2.0, allow_http: bool = False) -> SmlClient:
    return SmlClient(
        zone=SML_ZONE_TEST, nameserver=server.address, timeout=timeout, allow_http=allow_http
    )


async def test_client_finds_a_registered_participant(sml: SmlStandin) -> None:
    assert sml.port > 0
    assert await _client(sml).smp_url(ORG) == "https://smp.local.example/"


async def test_lookup_ignores_the_case_of_the_participant(sml: SmlStandin) -> None:
    sml.register("0088:ABCDEF", "https://smp.other.example/")
    assert await _client(sml).smp_url(ParticipantId("0088:abcdef")) == (
        "https://smp.other.example/"
    )


async def test_unregistered_participant_is_nxdomain_and_no_route(sml: SmlStandin) -> None:
    with pytest.raises(ParticipantNotRegistered) as info:
        await _client(sml).smp_url(OTHER)
    assert isinstance(info.value, NoRoute)
    assert info.value.rule == "sml-nxdomain"
    assert not info.value.retry


async def test_registrations_change_while_running(sml: SmlStandin) -> None:
    client = _client(sml, allow_http=True)
    sml.register(OTHER, "http://127.0.0.1:9999/smp/")
    assert await client.smp_url(OTHER) == "http://127.0.0.1:9999/smp/"
    sml.unregister(OTHER)
    assert OTHER not in sml
    with pytest.raises(ParticipantNotRegistered):
        await client.smp_url(OTHER)


async def test_records_are_applied_in_order_over_the_wire(sml: SmlStandin) -> None:
    sml.set_records(
        ORG,
        [
            smp_record("https://later.example/", order=200),
            NaptrRecord(50, 1, "U", "Meta:SMP", "!^.*$!https://evil.example/\\1!"),
            smp_record("https://first.example/", order=100, preference=1),
            smp_record("https://second.example/", order=100, preference=9),
        ],
    )
    assert await _client(sml).smp_url(ORG) == "https://first.example/"


async def test_hostile_record_over_the_wire_is_a_bad_response(sml: SmlStandin) -> None:
    sml.set_records(ORG, [NaptrRecord(1, 1, "U", "Meta:SMP", '!^.*$!https://x.example/"\\;!')])
    with pytest.raises(RegistryResponseError):
        await _client(sml).smp_url(ORG)


async def test_large_answers_fall_back_to_tcp(sml: SmlStandin) -> None:
    records = [
        smp_record(f"https://smp-{i:02d}.{'x' * 40}.example/", order=100 + i) for i in range(30)
    ]
    sml.set_records(ORG, records)
    assert await _client(sml).smp_url(ORG) == f"https://smp-00.{'x' * 40}.example/"


async def test_servfail_is_transient(sml: SmlStandin) -> None:
    sml.outage = dns.rcode.SERVFAIL
    with pytest.raises(RegistryUnavailable) as info:
        await _client(sml).smp_url(ORG)
    assert isinstance(info.value, TransientDeliveryError)
    assert info.value.retry


async def test_no_answer_is_a_transient_timeout(sml: SmlStandin) -> None:
    sml.mute = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RegistryUnavailable) as info:
        await _client(sml, timeout=0.5).smp_url(ORG)
    assert info.value.rule == "sml-timeout"
    assert loop.time() - started < 3


async def test_server_down_is_transient() -> None:
    server = SmlStandin({ORG: "https://smp.example/"})
    address = await server.start()
    await server.stop()
    client = SmlClient(zone=SML_ZONE_TEST, nameserver=address, timeout=0.5)
    with pytest.raises(RegistryUnavailable):
        await client.smp_url(ORG)


async def test_names_outside_the_zone_are_refused(sml: SmlStandin) -> None:
    client = SmlClient(zone=SML_ZONE_PRODUCTION, nameserver=sml.address, timeout=1.0)
    with pytest.raises(RegistryUnavailable):
        await client.smp_url(ORG)


# -- the stand-in refuses malformed queries and keeps serving --------------------------------------


def _query(name: str, rdtype: dns.rdatatype.RdataType = dns.rdatatype.NAPTR) -> dns.message.Message:
    return dns.message.make_query(name, rdtype)


def test_answer_to_garbage_is_formerr_or_nothing() -> None:
    server = SmlStandin({ORG: "https://smp.example/"})
    assert server.answer(b"") is None
    assert server.answer(b"\x01\x02\x03") is None
    reply = server.answer(b"\x12\x34\x01\x00" + b"\x00\x01" + b"\xff" * 30)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.id == 0x1234
    assert message.rcode() == dns.rcode.FORMERR


def test_responses_are_never_answered() -> None:
    server = SmlStandin()
    query = _query("x." + SML_ZONE_TEST)
    query.flags |= dns.flags.QR
    assert server.answer(query.to_wire()) is None


def test_other_opcodes_are_not_implemented() -> None:
    server = SmlStandin()
    query = _query(participant_dns_name(ORG, SML_ZONE_TEST))
    query.set_opcode(dns.opcode.NOTIFY)
    reply = server.answer(query.to_wire())
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOTIMP


def test_other_types_get_nodata_with_the_soa() -> None:
    server = SmlStandin({ORG: "https://smp.example/"})
    reply = server.answer(
        _query(participant_dns_name(ORG, SML_ZONE_TEST), dns.rdatatype.A).to_wire()
    )
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.NOERROR
    assert not message.answer
    assert message.authority[0].rdtype == dns.rdatatype.SOA
    assert message.flags & dns.flags.AA


async def test_garbage_over_udp_does_not_stop_the_server(sml: SmlStandin) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\x00", sml.address)
        sock.sendto(b"\xab\xcd\x01\x00\x00\x05" + b"\x00" * 200, sml.address)
        reply, _ = await asyncio.get_running_loop().run_in_executor(None, sock.recvfrom, 4096)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    assert await _client(sml).smp_url(ORG) == "https://smp.local.example/"


async def test_garbage_over_tcp_does_not_stop_the_server(sml: SmlStandin) -> None:
    reader, writer = await asyncio.open_connection(*sml.address)
    junk = b"\xab\xcd\x01\x00\x00\x05" + b"\xff" * 20
    writer.write(len(junk).to_bytes(2, "big") + junk)
    await writer.drain()
    length = int.from_bytes(await reader.readexactly(2), "big")
    reply = await reader.readexactly(length)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    writer.write(b"\x00\x05hello")  # not even a header: the connection is closed
    await writer.drain()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert await _client(sml).smp_url(ORG) == "https://smp.local.example/"
