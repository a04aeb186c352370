"""The arkivmelding: read, judged and written as eFormidling does, and nothing hostile gets in."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.noark import (
    ARKIVMELDING_NS,
    Arkivmelding,
    ArkivmeldingError,
    Basisregistrering,
    Dokumentbeskrivelse,
    Dokumentobjekt,
    Dokumentstatus,
    Journalpost,
    Journalposttype,
    Journalstatus,
    Klassifikasjon,
    Korrespondansepart,
    Korrespondanseparttype,
    Mappe,
    NoarkLimits,
    NoarkViolation,
    Registrering,
    Saksmappe,
    Saksstatus,
    Skjerming,
    SkjermingDokument,
    TilknyttetRegistreringSom,
    Variantformat,
    build_arkivmelding,
    check_arkivmelding,
    minimal_arkivmelding,
    parse_arkivmelding,
    validate_arkivmelding,
)
from sbdh.errors import EnvelopeError, InvalidInput, XmlSecurityError
from sbdh.xmlform import is_xml_text

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
SAK = "6c0a1bd0-2f6e-4b8a-9d0e-2a3f1c7e9b01"
JP = "0e9f2c44-7a1b-4c3d-8e5f-6a7b8c9d0e1f"
DB1 = "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516"
DB2 = "2c3d4e5f-6071-4829-ab1c-d2e3f4051627"
FILES = ("vedtak.pdf", "kart.png", "arkivmelding.xml")


def _objekt(name: str) -> Dokumentobjekt:
    return Dokumentobjekt(
        referanse_dokumentfil=name,
        versjonsnummer=1,
        variantformat=Variantformat.PRODUKSJONSFORMAT,
        opprettet_dato=NOW,
        opprettet_av="Kari Nordmann",
    )


def _beskrivelse(system_id: str, number: int, name: str) -> Dokumentbeskrivelse:
    return Dokumentbeskrivelse(
        system_id=system_id,
        dokumenttype="Vedtak" if number == 1 else "Kart",
        dokumentstatus=Dokumentstatus.FERDIGSTILT,
        tittel=f"Dokument {number}",
        beskrivelse="beskrivelse",
        forfattere=("Kari Nordmann",),
        opprettet_dato=NOW,
        opprettet_av="Kari Nordmann",
        tilknyttet_registrering_som=(
            TilknyttetRegistreringSom.HOVEDDOKUMENT
            if number == 1
            else TilknyttetRegistreringSom.VEDLEGG
        ),
        dokumentnummer=number,
        tilknyttet_dato=NOW,
        tilknyttet_av="Kari Nordmann",
        dokumentobjekter=(_objekt(name),),
    )


def good() -> Arkivmelding:
    """A complete arkivmelding that sets every field the model has (format aside)."""
    skjerming = Skjerming(
        tilgangsrestriksjon="13",
        skjermingshjemmel="Offl. § 13, fvl. § 13",
        skjerming_metadata=("tittel", "korrespondansepart"),
        skjerming_dokument=SkjermingDokument.DELER,
        skjermingsvarighet=60,
        skjerming_opphoerer_dato=date(2084, 5, 1),
    )
    journalpost = Journalpost(
        system_id=JP,
        opprettet_dato=NOW,
        opprettet_av="Kari Nordmann",
        arkivert_dato=NOW,
        arkivert_av="Kari Nordmann",
        registrerings_id="2024/17-3",
        referanse_forelder_mappe=SAK,
        skjerming=skjerming,
        dokumentbeskrivelser=(
            _beskrivelse(DB1, 1, "vedtak.pdf"),
            _beskrivelse(DB2, 2, "kart.png"),
        ),
        tittel="Vedtak om byggetillatelse, Storgata 1",
        offentlig_tittel="Vedtak om byggetillatelse, ******",
        beskrivelse="Rammetillatelse",
        noekkelord=("byggesak", "rammetillatelse"),
        forfattere=("Kari Nordmann",),
        journalaar=2024,
        journalsekvensnummer=1234,
        journalpostnummer=3,
        journalposttype=Journalposttype.UTGAAENDE,
        journalstatus=Journalstatus.EKSPEDERT,
        journaldato=date(2024, 5, 1),
        dokumentets_dato=date(2024, 4, 30),
        mottatt_dato=datetime(2024, 4, 2, 8, 30),
        sendt_dato=NOW,
        forfallsdato=date(2024, 6, 1),
        offentlighetsvurdert_dato=date(2024, 5, 1),
        antall_vedlegg=1,
        journalenhet="SENTRAL",
        korrespondanseparter=(
            Korrespondansepart(
                korrespondanseparttype=Korrespondanseparttype.MOTTAKER,
                korrespondansepart_navn="Ola Nordmann",
                postadresse=("Storgata 1", "c/o Hansen"),
                postnummer="0155",
                poststed="OSLO",
                land="NO",
                epostadresse="ola@example.org",
                telefonnummer=("+47 22 00 00 00",),
                kontaktperson="Ola",
                administrativ_enhet="Byggesak",
                saksbehandler="KNO",
            ),
        ),
    )
    saksmappe = Saksmappe(
        system_id=SAK,
        mappe_id="2024/17",
        tittel="Byggesak Storgata 1 & 3 <gnr. 1/2>",
        offentlig_tittel="Byggesak Storgata 1",
        beskrivelse="Oppføring av bolig",
        noekkelord=("byggesak",),
        opprettet_dato=NOW - timedelta(days=30),
        opprettet_av="Kari Nordmann",
        klassifikasjoner=(
            Klassifikasjon(
                referanse_klassifikasjonssystem="GBNR",
                klasse_id="1/2",
                tittel="Storgata 1",
                beskrivelse="Gnr. 1 bnr. 2",
                opprettet_dato=NOW,
                opprettet_av="Kari Nordmann",
            ),
        ),
        registreringer=(journalpost,),
        saksaar=2024,
        sakssekvensnummer=17,
        saksdato=date(2024, 4, 1),
        administrativ_enhet="Byggesak",
        saksansvarlig="Kari Nordmann",
        journalenhet="SENTRAL",
        saksstatus=Saksstatus.UNDER_BEHANDLING,
    )
    return Arkivmelding(
        system="Sak og arkiv",
        melding_id="3380ed76-5d4c-43e7-aa70-8ed8d97e4835",
        tidspunkt=NOW,
        antall_filer=2,
        mapper=(saksmappe,),
    )


# --------------------------------------------------------------------------- model edits


def _saksmappe(doc: Arkivmelding) -> Saksmappe:
    mappe = doc.mapper[0]
    assert isinstance(mappe, Saksmappe)
    return mappe


def _journalpost(doc: Arkivmelding) -> Journalpost:
    journalpost = _saksmappe(doc).registreringer[0]
    assert isinstance(journalpost, Journalpost)
    return journalpost


def with_saksmappe(doc: Arkivmelding, **changes: Any) -> Arkivmelding:
    return replace(doc, mapper=(replace(_saksmappe(doc), **changes),))


def with_journalpost(doc: Arkivmelding, **changes: Any) -> Arkivmelding:
    return with_saksmappe(doc, registreringer=(replace(_journalpost(doc), **changes),))


def with_beskrivelse(doc: Arkivmelding, index: int, **changes: Any) -> Arkivmelding:
    beskrivelser = list(_journalpost(doc).dokumentbeskrivelser)
    beskrivelser[index] = replace(beskrivelser[index], **changes)
    return with_journalpost(doc, dokumentbeskrivelser=tuple(beskrivelser))


def with_objekt(doc: Arkivmelding, index: int, **changes: Any) -> Arkivmelding:
    beskrivelse = _journalpost(doc).dokumentbeskrivelser[index]
    objekt = replace(beskrivelse.dokumentobjekter[0], **changes)
    return with_beskrivelse(doc, index, dokumentobjekter=(objekt,))


def rules(doc: Arkivmelding, files: tuple[str, ...] | None = FILES, **kwargs: Any) -> set[str]:
    return {v.rule for v in validate_arkivmelding(doc, files, **kwargs)}


def _parse_text(xml: str) -> Arkivmelding:
    return parse_arkivmelding(xml.encode())


def _document(body: str) -> str:
    return (
        f'<arkivmelding xmlns="{ARKIVMELDING_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<system>S</system><meldingId>m</meldingId>"
        f"<tidspunkt>2024-05-01T12:00:00</tidspunkt><antallFiler>1</antallFiler>{body}"
        "</arkivmelding>"
    )


# --------------------------------------------------------------------------- the good document


def test_the_good_document_passes_both_strengths() -> None:
    assert validate_arkivmelding(good(), FILES) == []
    assert validate_arkivmelding(good(), FILES, strict=False) == []
    check_arkivmelding(good(), FILES)


def test_accessors_find_what_integrasjonspunkt_reads() -> None:
    doc = good()
    assert doc.saksmappe is doc.mapper[0]
    assert doc.journalpost is _journalpost(doc)
    assert doc.tittel == "Vedtak om byggetillatelse, Storgata 1"
    assert doc.referanser() == ("vedtak.pdf", "kart.png")
    assert list(doc.iter_registreringer()) == [_journalpost(doc)]


def test_build_then_parse_gives_the_same_model() -> None:
    doc = good()
    assert parse_arkivmelding(build_arkivmelding(doc)) == doc


def test_build_writes_the_schema_order_and_xsi_types() -> None:
    text = build_arkivmelding(good()).decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<arkivmelding xmlns=')
    assert '<mappe xsi:type="saksmappe">' in text
    assert '<basisregistrering xsi:type="journalpost">' in text
    # registrering's own elements, then its documents, then basisregistrering's, journalpost's
    assert (
        text.index("<referanseForelderMappe>")
        < text.index("<dokumentbeskrivelse>")
        < text.index("<tittel>Vedtak om")
        < text.index("<journalposttype>")
    )
    assert "Storgata 1 &amp; 3 &lt;gnr. 1/2&gt;" in text
    assert "<tidspunkt>2024-05-01T12:00:00+02:00</tidspunkt>" in text
    assert "<mottattDato>2024-04-02T08:30:00</mottattDato>" in text


def test_utc_is_written_z() -> None:
    doc = replace(good(), tidspunkt=datetime(2024, 5, 1, 10, 0, tzinfo=UTC))
    assert b"<tidspunkt>2024-05-01T10:00:00Z</tidspunkt>" in build_arkivmelding(doc)


def test_bare_registreringer_round_trip_with_their_types() -> None:
    base = _journalpost(good())
    plain = Registrering(system_id=JP, referanse_arkivdel="arkivdel-1")
    basis = Basisregistrering(system_id=DB1, referanse_arkivdel="arkivdel-1", tittel="Notat")
    doc = Arkivmelding(
        system="S",
        melding_id="m",
        tidspunkt=NOW,
        antall_filer=2,
        registreringer=(base, plain, basis),
    )
    text = build_arkivmelding(doc, check=False).decode()
    assert '<registrering xsi:type="journalpost">' in text
    assert '<registrering xsi:type="basisregistrering">' in text
    assert "<registrering>" in text
    assert parse_arkivmelding(text.encode()) == doc


def test_nested_folders_round_trip() -> None:
    inner = replace(_saksmappe(good()), system_id=str(uuid.uuid4()))
    outer = Mappe(system_id=SAK, tittel="Arkiv", mapper=(inner,))
    doc = replace(good(), mapper=(outer,))
    assert parse_arkivmelding(build_arkivmelding(doc, check=False)) == doc
    assert [r.system_id for r in doc.iter_registreringer()] == [JP]


def test_format_is_read_but_not_written() -> None:
    xml = build_arkivmelding(good()).replace(
        b"<referanseDokumentfil>vedtak.pdf", b"<format>PDF</format><referanseDokumentfil>vedtak.pdf"
    )
    doc = parse_arkivmelding(xml)
    assert _journalpost(doc).dokumentbeskrivelser[0].dokumentobjekter[0].format == "PDF"
    assert b"<format>" not in build_arkivmelding(doc)


_XML_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40).filter(is_xml_text)


@settings(max_examples=60, deadline=None)
@given(
    title=_XML_TEXT.filter(str.strip),
    author=_XML_TEXT,
    name=st.from_regex(r"[a-zA-Z0-9_ æøå-]{1,30}\.pdf", fullmatch=True),
)
def test_text_survives_build_and_parse(title: str, author: str, name: str) -> None:
    name = name.strip()
    doc = with_journalpost(good(), tittel=title, opprettet_av=author)
    doc = with_objekt(doc, 0, referanse_dokumentfil=name)
    assert parse_arkivmelding(build_arkivmelding(doc)) == doc


# --------------------------------------------------------------------------- reading


def test_unknown_elements_and_other_namespaces_are_skipped() -> None:
    xml = build_arkivmelding(good()).replace(
        b"<journaldato>",
        b'<x:extra xmlns:x="urn:other">1</x:extra><!-- c --><virksomhetsspesifikkeMetadata>'
        b"<a>b</a></virksomhetsspesifikkeMetadata><journaldato>",
    )
    assert parse_arkivmelding(xml) == good()


def test_typed_fields_tolerate_white_space_and_absence() -> None:
    doc = _parse_text(
        _document(
            '<mappe xsi:type="saksmappe"><saksaar> 2016 </saksaar><saksdato/>'
            "<basisregistrering xsi:type='journalpost'><journaldato>2016-03-21+01:00</journaldato>"
            "<journalaar>\n2016\n</journalaar></basisregistrering></mappe>"
        )
    )
    mappe = _saksmappe(doc)
    assert mappe.saksaar == 2016
    assert mappe.saksdato is None
    journalpost = _journalpost(doc)
    assert journalpost.journaldato == date(2016, 3, 21)
    assert journalpost.journalaar == 2016


def test_xsi_type_is_resolved_as_a_qname() -> None:
    doc = _parse_text(
        _document(
            f'<mappe xmlns:am="{ARKIVMELDING_NS}" xsi:type="am:saksmappe">'
            '<basisregistrering xsi:type="journalpost"/></mappe>'
        )
    )
    assert isinstance(doc.mapper[0], Saksmappe)


@pytest.mark.parametrize(
    ("xml", "rule", "where"),
    [
        pytest.param("<arkivmelding/>", "NOARK-ROOT", "/arkivmelding", id="no-namespace"),
        pytest.param(
            f'<mappe xmlns="{ARKIVMELDING_NS}"/>', "NOARK-ROOT", "/mappe", id="wrong-root"
        ),
        pytest.param(
            _document('<mappe xsi:type="journalpost"/>'),
            "NOARK-XSI-TYPE",
            "/arkivmelding/mappe[1]",
            id="journalpost-as-mappe",
        ),
        pytest.param(
            _document('<mappe xsi:type="mappe"/><mappe xsi:type="x:saksmappe" xmlns:x="urn:x"/>'),
            "NOARK-XSI-TYPE",
            "/arkivmelding/mappe[2]",
            id="foreign-type",
        ),
        pytest.param(
            _document('<mappe><basisregistrering xsi:type="registrering"/></mappe>'),
            "NOARK-XSI-TYPE",
            "/arkivmelding/mappe[1]/basisregistrering[1]",
            id="registrering-in-mappe",
        ),
        pytest.param(
            _document("").replace("<antallFiler>1<", "<antallFiler>two<"),
            "NOARK-VALUE",
            "/arkivmelding/antallFiler",
            id="antallFiler-text",
        ),
        pytest.param(
            _document("").replace("<antallFiler>1<", "<antallFiler>4294967296<"),
            "NOARK-VALUE",
            "/arkivmelding/antallFiler",
            id="antallFiler-over-xs-int",
        ),
        pytest.param(
            _document("").replace("2024-05-01T12:00:00", "yesterday"),
            "NOARK-VALUE",
            "/arkivmelding/tidspunkt",
            id="tidspunkt",
        ),
        pytest.param(
            _document(
                '<mappe xsi:type="saksmappe"><basisregistrering xsi:type="journalpost">'
                "<journaldato>23.05.2017</journaldato></basisregistrering></mappe>"
            ),
            "NOARK-VALUE",
            "/arkivmelding/mappe[1]/basisregistrering[1]/journaldato",
            id="journaldato",
        ),
        pytest.param(
            _document(
                "<registrering><dokumentbeskrivelse><dokumentnummer>1.5</dokumentnummer>"
                "</dokumentbeskrivelse></registrering>"
            ),
            "NOARK-VALUE",
            "/arkivmelding/registrering[1]/dokumentbeskrivelse[1]/dokumentnummer",
            id="dokumentnummer",
        ),
        pytest.param(
            _document('<mappe xsi:type="saksmappe"><saksdato>2024-02-30</saksdato></mappe>'),
            "NOARK-VALUE",
            "/arkivmelding/mappe[1]/saksdato",
            id="no-such-day",
        ),
    ],
)
def test_unreadable_documents_name_their_rule_and_place(xml: str, rule: str, where: str) -> None:
    with pytest.raises(ArkivmeldingError) as caught:
        _parse_text(xml)
    violation = caught.value.violations[0]
    assert isinstance(violation, NoarkViolation)
    assert (violation.rule, violation.location) == (rule, where)
    assert violation.message.startswith(where + ": ")


def test_every_unreadable_value_is_listed_at_once() -> None:
    xml = _document(
        '<mappe xsi:type="saksmappe"><saksaar>x</saksaar><saksdato>y</saksdato></mappe>'
    ).replace("<antallFiler>1<", "<antallFiler>z<")
    with pytest.raises(ArkivmeldingError) as caught:
        _parse_text(xml)
    assert [v.rule for v in caught.value.violations] == ["NOARK-VALUE"] * 3


def test_the_error_is_an_envelope_error_with_problem_details() -> None:
    from access_point.api.problems import field_errors

    with pytest.raises(ArkivmeldingError) as caught:
        _parse_text("<arkivmelding/>")
    error = caught.value
    assert isinstance(error, EnvelopeError)
    assert isinstance(error, InvalidInput)
    assert (error.http_status, error.code, error.rule) == (
        400,
        "invalid-arkivmelding",
        "NOARK-ROOT",
    )
    assert error.violations[0].as_dict()["location"] == "/arkivmelding"
    [entry] = field_errors(error)
    assert entry.rule == "NOARK-ROOT"
    assert "/arkivmelding: the root element" in entry.message


# --------------------------------------------------------------------------- hostile input


_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE arkivmelding [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <system>&c;</system>
</arkivmelding>
"""

_EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE arkivmelding [<!ENTITY file SYSTEM "file:///etc/passwd">]>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <system>&file;</system>
</arkivmelding>
"""


@pytest.mark.parametrize(
    ("data", "limits", "rule"),
    [
        pytest.param(_BILLION_LAUGHS, NoarkLimits(), "xml-dtd", id="entity-expansion"),
        pytest.param(_EXTERNAL_ENTITY, NoarkLimits(), "xml-dtd", id="external-entity"),
        pytest.param(
            _document("<mappe/>" * 200).encode(), NoarkLimits(max_bytes=1000), "xml-size", id="size"
        ),
        pytest.param(
            _document("<mappe>" * 120 + "</mappe>" * 120).encode(),
            NoarkLimits(),
            "xml-depth",
            id="depth",
        ),
    ],
)
def test_hostile_xml_is_refused_by_the_hardened_parser(
    data: bytes, limits: NoarkLimits, rule: str
) -> None:
    with pytest.raises(XmlSecurityError) as caught:
        parse_arkivmelding(data, limits=limits)
    assert caught.value.rule == rule


def test_a_document_of_too_many_elements_is_refused_before_it_is_modelled() -> None:
    data = _document("<registrering><dokumentobjekt/></registrering>" * 60).encode()
    with pytest.raises(ArkivmeldingError) as caught:
        parse_arkivmelding(data, limits=NoarkLimits(max_elements=100))
    assert caught.value.rule == "NOARK-LIMIT"


def test_what_is_not_xml_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_arkivmelding(b"%PDF-1.4 not an arkivmelding")
    assert caught.value.rule == "xml-well-formed"


# --------------------------------------------------------------------------- the rules


def _lose_saksmappe(doc: Arkivmelding) -> Arkivmelding:
    return replace(doc, mapper=(_as(Mappe, _saksmappe(doc)),))


def _deep(doc: Arkivmelding) -> Arkivmelding:
    mappe: Mappe = _saksmappe(doc)
    for _ in range(3):
        mappe = Mappe(
            system_id=str(uuid.uuid4()),
            tittel="t",
            opprettet_dato=NOW,
            opprettet_av="a",
            mapper=(mappe,),
        )
    return replace(doc, mapper=(*doc.mapper, mappe))


def _another_journalpost(doc: Arkivmelding, **changes: Any) -> Journalpost:
    """A copy of the journalpost with fresh systemIDs (same files)."""
    journalpost = _journalpost(doc)
    return replace(
        journalpost,
        system_id=str(uuid.uuid4()),
        dokumentbeskrivelser=tuple(
            replace(b, system_id=str(uuid.uuid4())) for b in journalpost.dokumentbeskrivelser
        ),
        **changes,
    )


def _second_journalpost(doc: Arkivmelding) -> Arkivmelding:
    return with_saksmappe(doc, registreringer=(_journalpost(doc), _another_journalpost(doc)))


def _also_bare_registrering(doc: Arkivmelding) -> Arkivmelding:
    bare = _another_journalpost(doc, referanse_forelder_mappe=None, referanse_arkivdel="a")
    return replace(doc, registreringer=(bare,))


def _as(cls: type[Any], value: object) -> Any:
    """``value`` as an instance of its base class ``cls`` (the subclass's own fields dropped)."""
    return cls(**{name: getattr(value, name) for name in cls.__dataclass_fields__})


_Edit = Callable[[Arkivmelding], Arkivmelding]
_BAD: dict[str, list[tuple[str, _Edit, dict[str, Any]]]] = {
    "NOARK-SAKSMAPPE": [
        ("plain-mappe", _lose_saksmappe, {}),
        (
            "bare-registrering",
            lambda d: replace(d, mapper=(), registreringer=(_journalpost(d),)),
            {},
        ),
        ("empty", lambda d: replace(d, mapper=(), antall_filer=0), {}),
    ],
    "NOARK-JOURNALPOST": [
        (
            "basisregistrering",
            lambda d: with_saksmappe(d, registreringer=(_as(Basisregistrering, _journalpost(d)),)),
            {},
        ),
        (
            "no-registrering",
            lambda d: replace(with_saksmappe(d, registreringer=()), antall_filer=0),
            {},
        ),
    ],
    "NOARK-REFERANSEDOKUMENTFIL": [
        (
            "missing",
            lambda d: replace(with_objekt(d, 1, referanse_dokumentfil=None), antall_filer=1),
            {},
        ),
        (
            "empty",
            lambda d: replace(with_objekt(d, 1, referanse_dokumentfil=""), antall_filer=1),
            {},
        ),
    ],
    "NOARK-FILE-PATH": [
        ("parent", lambda d: with_objekt(d, 1, referanse_dokumentfil="../../etc/passwd"), {}),
        ("absolute", lambda d: with_objekt(d, 1, referanse_dokumentfil="/etc/passwd"), {}),
        ("windows", lambda d: with_objekt(d, 1, referanse_dokumentfil="C:\\boot.ini"), {}),
        ("backslash", lambda d: with_objekt(d, 1, referanse_dokumentfil="..\\kart.png"), {}),
        ("folder", lambda d: with_objekt(d, 1, referanse_dokumentfil="vedlegg/kart.png"), {}),
        ("url", lambda d: with_objekt(d, 1, referanse_dokumentfil="file:///etc/passwd"), {}),
    ],
    "NOARK-FILE-NAME": [
        ("blank", lambda d: with_objekt(d, 1, referanse_dokumentfil="  "), {}),
        ("dot", lambda d: with_objekt(d, 1, referanse_dokumentfil="."), {}),
        ("control", lambda d: with_objekt(d, 1, referanse_dokumentfil="kart\x1b.png"), {}),
        ("padded", lambda d: with_objekt(d, 1, referanse_dokumentfil=" kart.png"), {}),
        ("long", lambda d: with_objekt(d, 1, referanse_dokumentfil="k" * 252 + ".png"), {}),
    ],
    "NOARK-FILE-MISSING": [
        ("absent", lambda d: with_objekt(d, 1, referanse_dokumentfil="bilde.png"), {}),
        ("case", lambda d: with_objekt(d, 1, referanse_dokumentfil="Kart.png"), {}),
    ],
    "NOARK-LIMIT": [
        ("files", lambda d: d, {"limits": NoarkLimits(max_files=1)}),
        ("objects", lambda d: d, {"limits": NoarkLimits(max_dokumentobjekter=1)}),
        ("registreringer", _second_journalpost, {"limits": NoarkLimits(max_registreringer=1)}),
        ("depth", _deep, {"limits": NoarkLimits(max_mappe_depth=2)}),
    ],
    "NOARK-REQUIRED": [
        ("journaldato", lambda d: with_journalpost(d, journaldato=None), {}),
        ("systemID", lambda d: with_saksmappe(d, system_id=None), {}),
        ("blank-title", lambda d: with_beskrivelse(d, 0, tittel=" \n"), {}),
        ("meldingId", lambda d: replace(d, melding_id=None), {}),
        (
            "skjermingshjemmel",
            lambda d: with_journalpost(
                d, skjerming=Skjerming(tilgangsrestriksjon="13", skjerming_metadata=("tittel",))
            ),
            {},
        ),
        (
            "korrespondansepartNavn",
            lambda d: with_journalpost(
                d, korrespondanseparter=(Korrespondansepart(korrespondanseparttype="Avsender"),)
            ),
            {},
        ),
        (
            "klasseID",
            lambda d: with_saksmappe(
                d,
                klassifikasjoner=(Klassifikasjon(referanse_klassifikasjonssystem="x", tittel="t"),),
            ),
            {},
        ),
        ("versjonsnummer", lambda d: with_objekt(d, 0, versjonsnummer=None), {}),
    ],
    "NOARK-SYSTEMID": [
        ("not-a-uuid", lambda d: with_beskrivelse(d, 1, system_id="ac5efbd4c-413d"), {}),
        ("twice", lambda d: with_beskrivelse(d, 1, system_id=DB1.upper()), {}),
    ],
    "NOARK-CODE": [
        ("journalposttype", lambda d: with_journalpost(d, journalposttype="Utgaaende"), {}),
        ("variantformat", lambda d: with_objekt(d, 0, variantformat="PDF/A"), {}),
        ("saksstatus", lambda d: with_saksmappe(d, saksstatus="Lukket"), {}),
    ],
    "NOARK-MAPPE-OR-REGISTRERING": [
        ("both", _also_bare_registrering, {}),
    ],
    "NOARK-REFERANSE": [
        ("other-mappe", lambda d: with_journalpost(d, referanse_forelder_mappe=DB1), {}),
        ("none", lambda d: with_journalpost(d, referanse_forelder_mappe=None), {}),
        ("two", lambda d: with_journalpost(d, referanse_arkivdel="arkivdel"), {}),
    ],
    "NOARK-DOKUMENTBESKRIVELSE": [
        (
            "none",
            lambda d: replace(with_journalpost(d, dokumentbeskrivelser=()), antall_filer=0),
            {},
        ),
    ],
    "NOARK-HOVEDDOKUMENT": [
        ("none", lambda d: with_beskrivelse(d, 0, tilknyttet_registrering_som="Vedlegg"), {}),
        ("two", lambda d: with_beskrivelse(d, 1, tilknyttet_registrering_som="Hoveddokument"), {}),
    ],
    "NOARK-DOKUMENTNUMMER": [
        ("repeated", lambda d: with_beskrivelse(d, 1, dokumentnummer=1), {}),
    ],
    "NOARK-LOOSE-DOKUMENTOBJEKT": [
        ("loose", lambda d: with_journalpost(d, dokumentobjekter=(_objekt("kart.png"),)), {}),
    ],
    "NOARK-ANTALL-FILER": [
        ("too-many", lambda d: replace(d, antall_filer=5), {}),
        ("counting-arkivmelding-xml", lambda d: replace(d, antall_filer=3), {}),
        (
            "a-repeat-counts-once",
            lambda d: with_objekt(d, 1, referanse_dokumentfil="vedtak.pdf"),
            {},
        ),
    ],
}

_CASES = [
    pytest.param(rule, edit, kwargs, id=f"{rule}-{name}")
    for rule, cases in _BAD.items()
    for name, edit, kwargs in cases
]


@pytest.mark.parametrize(("rule", "edit", "kwargs"), _CASES)
def test_each_rule_fires_alone_on_a_document_that_breaks_it(
    rule: str, edit: _Edit, kwargs: dict[str, Any]
) -> None:
    violations = validate_arkivmelding(edit(good()), FILES, **kwargs)
    assert {v.rule for v in violations} == {rule}, violations
    for violation in violations:
        assert isinstance(violation, NoarkViolation)
        assert violation.location.startswith("/arkivmelding")
        assert violation.message.startswith(violation.location + ": ")
    with pytest.raises(ArkivmeldingError) as caught:
        check_arkivmelding(edit(good()), FILES, **kwargs)
    assert caught.value.rule == rule


_LENIENT_RULES = {
    "NOARK-SAKSMAPPE",
    "NOARK-JOURNALPOST",
    "NOARK-REFERANSEDOKUMENTFIL",
    "NOARK-FILE-PATH",
    "NOARK-FILE-NAME",
    "NOARK-FILE-MISSING",
    "NOARK-LIMIT",
}


@pytest.mark.parametrize(("rule", "edit", "kwargs"), _CASES)
def test_the_lenient_strength_keeps_only_what_a_receiver_relies_on(
    rule: str, edit: _Edit, kwargs: dict[str, Any]
) -> None:
    expected = {rule} if rule in _LENIENT_RULES else set()
    assert rules(edit(good()), strict=False, **kwargs) == expected


def test_the_file_faults_say_where_and_what() -> None:
    doc = with_objekt(good(), 1, referanse_dokumentfil="Kart.png")
    [violation] = validate_arkivmelding(doc, FILES)
    assert violation.location == (
        "/arkivmelding/mappe[1]/basisregistrering[1]/dokumentbeskrivelse[2]"
        "/dokumentobjekt[1]/referanseDokumentfil"
    )
    assert "'Kart.png' is not among the message's files" in violation.message
    assert "'kart.png' is: file names are compared exactly" in violation.message


def test_unicode_forms_are_compared_exactly_too() -> None:
    decomposed = "vedtak-a\u030a.pdf"  # å as a + combining ring
    doc = with_objekt(good(), 0, referanse_dokumentfil="vedtak-\u00e5.pdf")
    [violation] = validate_arkivmelding(doc, (decomposed, "kart.png"))
    assert violation.rule == "NOARK-FILE-MISSING"
    assert "compared exactly" in violation.message


def test_without_files_presence_is_not_checked() -> None:
    doc = with_objekt(good(), 1, referanse_dokumentfil="bilde.png")
    assert validate_arkivmelding(doc, None) == []
    assert rules(doc, ()) == {"NOARK-FILE-MISSING"}


def test_a_name_fault_is_not_also_reported_missing() -> None:
    doc = with_objekt(good(), 1, referanse_dokumentfil="../kart.png")
    assert [v.rule for v in validate_arkivmelding(doc, ())] == [
        "NOARK-FILE-MISSING",
        "NOARK-FILE-PATH",
    ]


def test_violations_come_in_document_order_and_are_capped() -> None:
    empty = [Dokumentbeskrivelse(dokumentobjekter=(Dokumentobjekt(),)) for _ in range(40)]
    doc = with_journalpost(good(), dokumentbeskrivelser=tuple(empty))
    violations = validate_arkivmelding(doc, FILES, limits=NoarkLimits(max_violations=25))
    assert len(violations) == 25
    assert violations[-1].rule == "NOARK-LIMIT"
    assert "more violations are not listed" in violations[-1].message
    positions = [
        int(v.location.split("dokumentbeskrivelse[")[1].split("]")[0])
        for v in violations[:-1]
        if "dokumentbeskrivelse[" in v.location
    ]
    assert positions == sorted(positions)
    assert positions[0] == 1


RECEIVED = _document(
    # what integrasjonspunkt writes for a message from KS SvarInn: antallFiler 0, a systemID
    # that is no UUID and is used twice, no dates, an xs:date with a timezone
    '<mappe xsi:type="saksmappe">'
    "<systemID>bd5efbd4c-413d-4e2c-bbc5-257ef4a65b23</systemID>"
    '<basisregistrering xsi:type="journalpost">'
    "<systemID>29efbd4c-413d-4e2c-bbc5-257ef4a65b38</systemID>"
    "<dokumentbeskrivelse><systemID>bd5efbd4c-413d-4e2c-bbc5-257ef4a65b23</systemID>"
    "<tittel>brev.html</tittel><dokumentobjekt><referanseDokumentfil>brev.html"
    "</referanseDokumentfil></dokumentobjekt></dokumentbeskrivelse>"
    "<dokumentbeskrivelse><systemID>bd5efbd4c-413d-4e2c-bbc5-257ef4a65b23</systemID>"
    "<tittel>vedlegg.txt</tittel><dokumentobjekt><referanseDokumentfil>vedlegg.txt"
    "</referanseDokumentfil></dokumentobjekt></dokumentbeskrivelse>"
    "<tittel>Melding fra SvarInn</tittel><journalaar>2016</journalaar>"
    "<journalposttype>Utgående dokument</journalposttype>"
    "<journaldato>2016-03-21+01:00</journaldato>"
    "<korrespondansepart><korrespondanseparttype>Avsender</korrespondanseparttype>"
    "<korrespondansepartNavn>Etaten</korrespondansepartNavn><land></land></korrespondansepart>"
    "</basisregistrering><saksaar>2016</saksaar></mappe>"
).replace("<antallFiler>1<", "<antallFiler>0<")


def test_a_received_document_that_is_not_schema_valid_passes_the_lenient_rules() -> None:
    doc = _parse_text(RECEIVED)
    files = ("arkivmelding.xml", "brev.html", "vedlegg.txt")
    assert validate_arkivmelding(doc, files, strict=False) == []
    assert rules(doc, ("arkivmelding.xml", "brev.html"), strict=False) == {"NOARK-FILE-MISSING"}
    strict = rules(doc, files)
    assert {"NOARK-REQUIRED", "NOARK-SYSTEMID", "NOARK-ANTALL-FILER"} <= strict
    assert doc.journalpost is not None
    assert doc.journalpost.korrespondanseparter[0].land == ""


# --------------------------------------------------------------------------- building


def test_build_refuses_an_incomplete_model_unless_told_not_to_check() -> None:
    doc = with_journalpost(good(), journalposttype=None)
    with pytest.raises(ArkivmeldingError) as caught:
        build_arkivmelding(doc)
    assert caught.value.rule == "NOARK-REQUIRED"
    assert b"<journalposttype>" not in build_arkivmelding(doc, check=False)


def test_build_refuses_text_that_xml_cannot_carry() -> None:
    doc = with_journalpost(good(), beskrivelse="bell \x07")
    with pytest.raises(ArkivmeldingError) as caught:
        build_arkivmelding(doc, check=False)
    assert caught.value.rule == "NOARK-VALUE"


def test_minimal_arkivmelding_describes_each_file_once() -> None:
    data = minimal_arkivmelding(
        message_id="m-1", title="Vedtak & <svar>", files=["vedtak.pdf", "kart.png"], now=NOW
    )
    doc = parse_arkivmelding(data)
    assert validate_arkivmelding(doc, ["arkivmelding.xml", "vedtak.pdf", "kart.png"]) == []
    assert doc.melding_id == "m-1"
    assert doc.system == "Budstikke"
    assert doc.antall_filer == 2
    assert doc.tittel == "Vedtak & <svar>"
    journalpost = doc.journalpost
    assert journalpost is not None
    assert journalpost.journalposttype == Journalposttype.UTGAAENDE
    assert [
        (
            b.dokumentnummer,
            b.tilknyttet_registrering_som,
            b.dokumentobjekter[0].referanse_dokumentfil,
        )
        for b in journalpost.dokumentbeskrivelser
    ] == [(1, "Hoveddokument", "vedtak.pdf"), (2, "Vedlegg", "kart.png")]


def test_minimal_arkivmelding_is_deterministic_per_message() -> None:
    def make(message_id: str) -> bytes:
        return minimal_arkivmelding(message_id=message_id, title="t", files=["a.pdf"], now=NOW)

    assert make("m-1") == make("m-1")
    assert make("m-1") != make("m-2")


@pytest.mark.parametrize("files", [[], ["a.pdf", "a.pdf"]])
def test_minimal_arkivmelding_needs_distinct_files(files: list[str]) -> None:
    with pytest.raises(ValueError, match="arkivmelding"):
        minimal_arkivmelding(message_id="m", title="t", files=files, now=NOW)


def test_minimal_arkivmelding_refuses_a_path_for_a_file() -> None:
    with pytest.raises(ArkivmeldingError) as caught:
        minimal_arkivmelding(message_id="m", title="t", files=["../a.pdf"], now=NOW)
    assert caught.value.rule == "NOARK-FILE-PATH"


# --------------------------------------------------------------------------- shared test data


@pytest.fixture(scope="module")
def schema(testdata: Path) -> Any:
    import xmlschema

    return xmlschema.XMLSchema(str(testdata / "eformidling/xsd/arkivmelding.xsd"))


def _schema_errors(schema: Any, data: bytes) -> list[str]:
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(data.decode())]


SAMPLES = ["arkivmelding_ok.xml", "arkivmelding_ok_domain.xml"]


@pytest.mark.testdata
@pytest.mark.parametrize("name", SAMPLES)
def test_the_eformidling_samples_parse_and_pass_both_strengths(testdata: Path, name: str) -> None:
    doc = parse_arkivmelding((testdata / "eformidling/samples" / name).read_bytes())
    assert doc.melding_id == "3380ed76-5d4c-43e7-aa70-8ed8d97e4835"
    assert doc.antall_filer == 1
    assert isinstance(doc.saksmappe, Saksmappe)
    assert doc.journalpost is not None
    assert doc.journalpost.journalstatus == Journalstatus.JOURNALFOERT
    assert doc.referanser() == ("test.pdf",)
    assert len(doc.saksmappe.klassifikasjoner) == 2
    files = ("arkivmelding.xml", "test.pdf")
    assert validate_arkivmelding(doc, files) == []
    assert validate_arkivmelding(doc, files, strict=False) == []
    assert rules(doc, ("arkivmelding.xml", "Test.pdf")) == {"NOARK-FILE-MISSING"}


@pytest.mark.testdata
@pytest.mark.parametrize("name", SAMPLES)
def test_a_sample_rebuilt_from_its_model_is_schema_valid_and_reads_back_the_same(
    testdata: Path, schema: Any, name: str
) -> None:
    original = (testdata / "eformidling/samples" / name).read_bytes()
    assert _schema_errors(schema, original) == []
    doc = parse_arkivmelding(original)
    rebuilt = build_arkivmelding(doc)
    assert _schema_errors(schema, rebuilt) == []
    assert parse_arkivmelding(rebuilt) == doc


@pytest.mark.testdata
def test_an_sbd_is_not_an_arkivmelding(testdata: Path) -> None:
    data = (testdata / "eformidling/samples/StandardBusinessDocument.xml").read_bytes()
    with pytest.raises(ArkivmeldingError) as caught:
        parse_arkivmelding(data)
    assert caught.value.rule == "NOARK-ROOT"


@pytest.mark.testdata
def test_what_budstikke_builds_is_valid_against_the_eformidling_schema(schema: Any) -> None:
    assert _schema_errors(schema, build_arkivmelding(good())) == []
    minimal = minimal_arkivmelding(
        message_id="m", title="Vedtak", files=["vedtak.pdf", "kart.png", "svar.txt"], now=NOW
    )
    assert _schema_errors(schema, minimal) == []
    naive = minimal_arkivmelding(
        message_id="m", title="Vedtak", files=["vedtak.pdf"], now=datetime(2024, 5, 1, 12, 0)
    )
    assert _schema_errors(schema, naive) == []


@pytest.mark.testdata
@settings(max_examples=25, deadline=None)
@given(title=_XML_TEXT.filter(str.strip), number=st.integers(0, 10**9))
def test_built_documents_stay_schema_valid(schema: Any, title: str, number: int) -> None:
    doc = with_journalpost(good(), tittel=title, journalpostnummer=number)
    assert _schema_errors(schema, build_arkivmelding(doc)) == []


@pytest.mark.testdata
@pytest.mark.parametrize(("rule", "edit", "kwargs"), _CASES)
def test_what_the_schema_refuses_the_strict_rules_refuse(
    schema: Any, rule: str, edit: _Edit, kwargs: dict[str, Any]
) -> None:
    """The cross-check the other way: whenever a crafted document is schema-invalid, the
    strict rules say so too (they add eFormidling's and NOARK's rules the schema lacks)."""
    doc = edit(good())
    try:
        data = build_arkivmelding(doc, check=False)
    except ArkivmeldingError:
        return  # text XML cannot carry: no document to give the schema
    if _schema_errors(schema, data):
        assert validate_arkivmelding(doc, None, **kwargs)
