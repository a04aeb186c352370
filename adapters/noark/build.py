"""Writing an arkivmelding: an :class:`Arkivmelding` in, ``arkivmelding.xml`` bytes out.

Elements are written in the order of eFormidling's ``arkivmelding.xsd``, with ``xsi:type``
where a saksmappe or journalpost stands in an element of its base type. By default the model
is first checked with the strict rules (:func:`~adapters.noark.validate.check_arkivmelding`),
so that what Budstikke writes is what eFormidling asks a sender for; ``check=False`` writes any
model as it is (for tests, and to pass on a received document's model).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from lxml import etree

from adapters.noark.errors import ArkivmeldingError, NoarkViolation
from adapters.noark.model import (
    ARKIVMELDING_NS,
    Arkivmelding,
    Basisregistrering,
    Dokumentbeskrivelse,
    Dokumentobjekt,
    Dokumentstatus,
    Journalpost,
    Journalposttype,
    Journalstatus,
    Klassifikasjon,
    Korrespondansepart,
    Mappe,
    Registrering,
    Saksmappe,
    Saksstatus,
    Skjerming,
    TilknyttetRegistreringSom,
    Variantformat,
)
from adapters.noark.validate import check_arkivmelding
from sbdh.model import XSI_NS
from sbdh.xmlform import is_xml_text

__all__ = ["build_arkivmelding", "format_date", "format_datetime", "minimal_arkivmelding"]

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_XSI_TYPE = f"{{{XSI_NS}}}type"
#: systemIDs of the minimal arkivmelding are UUIDv5 of the message id in this namespace, so the
#: same message always gives the same bytes
_SYSTEM_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:budstikke:noark:systemID")

Value = str | int | date | datetime | None


def format_datetime(value: datetime) -> str:
    """``xs:dateTime``: naive values stay without offset, UTC is written ``Z``."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_date(value: date) -> str:
    """``xs:date``."""
    return value.isoformat()


def build_arkivmelding(doc: Arkivmelding, *, check: bool = True) -> bytes:
    """The ``arkivmelding.xml`` of ``doc``, UTF-8 with an XML declaration.

    With ``check`` (the default) raises :class:`ArkivmeldingError` when ``doc`` breaks a strict
    rule (file presence aside: the files are not known here). Always raises it for text that
    XML 1.0 cannot carry (control characters), rule ``NOARK-VALUE``.
    """
    if check:
        check_arkivmelding(doc, None, strict=True)
    root = etree.Element(_q("arkivmelding"), nsmap={None: ARKIVMELDING_NS, "xsi": XSI_NS})
    _values(
        root,
        ("system", doc.system),
        ("meldingId", doc.melding_id),
        ("tidspunkt", doc.tidspunkt),
        ("antallFiler", doc.antall_filer),
    )
    for mappe in doc.mapper:
        _mappe(root, mappe)
    for registrering in doc.registreringer:
        _registrering(root, registrering, element="registrering")
    return _XML_DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=True)


def minimal_arkivmelding(
    *,
    message_id: str,
    title: str,
    files: Sequence[str],
    now: datetime,
    system: str = "Budstikke",
) -> bytes:
    """An arkivmelding whose journal entry lists ``files``, the first as the main document.

    One saksmappe with one outgoing journalpost (status Ekspedert) titled ``title``, one
    dokumentbeskrivelse per file. Valid against eFormidling's schema; the same arguments always
    give the same bytes (the systemIDs derive from ``message_id``).
    """
    if not files:
        raise ValueError("an arkivmelding describes at least one file")
    if len(set(files)) != len(files):
        raise ValueError("an arkivmelding describes each file once")

    def system_id(part: str) -> str:
        return str(uuid.uuid5(_SYSTEM_ID_NAMESPACE, f"{message_id}/{part}"))

    mappe_id = system_id("saksmappe")
    descriptions = tuple(
        Dokumentbeskrivelse(
            system_id=system_id(f"dokumentbeskrivelse/{number}"),
            dokumenttype="Brev",
            dokumentstatus=Dokumentstatus.FERDIGSTILT,
            tittel=name,
            opprettet_dato=now,
            opprettet_av=system,
            tilknyttet_registrering_som=(
                TilknyttetRegistreringSom.HOVEDDOKUMENT
                if number == 1
                else TilknyttetRegistreringSom.VEDLEGG
            ),
            dokumentnummer=number,
            tilknyttet_dato=now,
            tilknyttet_av=system,
            dokumentobjekter=(
                Dokumentobjekt(
                    referanse_dokumentfil=name,
                    versjonsnummer=1,
                    variantformat=Variantformat.PRODUKSJONSFORMAT,
                    opprettet_dato=now,
                    opprettet_av=system,
                ),
            ),
        )
        for number, name in enumerate(files, start=1)
    )
    journalpost = Journalpost(
        system_id=system_id("journalpost"),
        opprettet_dato=now,
        opprettet_av=system,
        arkivert_dato=now,
        arkivert_av=system,
        referanse_forelder_mappe=mappe_id,
        dokumentbeskrivelser=descriptions,
        tittel=title,
        journalposttype=Journalposttype.UTGAAENDE,
        journalstatus=Journalstatus.EKSPEDERT,
        journaldato=now.date(),
    )
    saksmappe = Saksmappe(
        system_id=mappe_id,
        tittel=title,
        opprettet_dato=now,
        opprettet_av=system,
        registreringer=(journalpost,),
        saksaar=now.year,
        sakssekvensnummer=1,
        saksdato=now.date(),
        administrativ_enhet=system,
        saksansvarlig=system,
        saksstatus=Saksstatus.UNDER_BEHANDLING,
    )
    return build_arkivmelding(
        Arkivmelding(
            system=system,
            melding_id=message_id,
            tidspunkt=now,
            antall_filer=len(files),
            mapper=(saksmappe,),
        )
    )


# --------------------------------------------------------------------------- writing


def _q(name: str) -> str:
    return f"{{{ARKIVMELDING_NS}}}{name}"


def _text(value: str | int | date | datetime) -> str:
    if isinstance(value, datetime):  # before date: a datetime is a date
        return format_datetime(value)
    if isinstance(value, date):
        return format_date(value)
    return str(value)


def _values(parent: etree._Element, *fields: tuple[str, Value]) -> None:
    """One child per field whose value is not None, in the order given."""
    for name, value in fields:
        if value is None:
            continue
        text = _text(value)
        if not is_xml_text(text):
            raise ArkivmeldingError(
                [
                    NoarkViolation.at(
                        "NOARK-VALUE",
                        f"//{name}",
                        f"{text!r} holds characters that XML 1.0 cannot carry",
                    )
                ]
            )
        etree.SubElement(parent, _q(name)).text = text


def _repeated(parent: etree._Element, name: str, values: Iterable[str]) -> None:
    _values(parent, *((name, value) for value in values))


def _typed(parent: etree._Element, element: str, xsi_type: str | None) -> etree._Element:
    child = etree.SubElement(parent, _q(element))
    if xsi_type is not None:
        child.set(_XSI_TYPE, xsi_type)
    return child


def _mappe(parent: etree._Element, mappe: Mappe) -> None:
    node = _typed(parent, "mappe", "saksmappe" if isinstance(mappe, Saksmappe) else None)
    _values(
        node,
        ("systemID", mappe.system_id),
        ("mappeID", mappe.mappe_id),
        ("ReferanseForeldermappe", mappe.referanse_foreldermappe),
        ("tittel", mappe.tittel),
        ("offentligTittel", mappe.offentlig_tittel),
        ("beskrivelse", mappe.beskrivelse),
    )
    _repeated(node, "noekkelord", mappe.noekkelord)
    _values(
        node,
        ("opprettetDato", mappe.opprettet_dato),
        ("opprettetAv", mappe.opprettet_av),
        ("avsluttetDato", mappe.avsluttet_dato),
        ("avsluttetAv", mappe.avsluttet_av),
    )
    _skjerming(node, mappe.skjerming)
    for klasse in mappe.klassifikasjoner:
        _klassifikasjon(node, klasse)
    for sub in mappe.mapper:
        _mappe(node, sub)
    for registrering in mappe.registreringer:
        _registrering(node, registrering, element="basisregistrering")
    if isinstance(mappe, Saksmappe):
        _values(
            node,
            ("saksaar", mappe.saksaar),
            ("sakssekvensnummer", mappe.sakssekvensnummer),
            ("saksdato", mappe.saksdato),
            ("administrativEnhet", mappe.administrativ_enhet),
            ("saksansvarlig", mappe.saksansvarlig),
            ("journalenhet", mappe.journalenhet),
            ("saksstatus", mappe.saksstatus),
        )


def _klassifikasjon(parent: etree._Element, klasse: Klassifikasjon) -> None:
    node = etree.SubElement(parent, _q("klassifikasjon"))
    _values(
        node,
        ("referanseKlassifikasjonssystem", klasse.referanse_klassifikasjonssystem),
        ("klasseID", klasse.klasse_id),
        ("tittel", klasse.tittel),
        ("beskrivelse", klasse.beskrivelse),
        ("opprettetDato", klasse.opprettet_dato),
        ("opprettetAv", klasse.opprettet_av),
    )


def _skjerming(parent: etree._Element, skjerming: Skjerming | None) -> None:
    if skjerming is None:
        return
    node = etree.SubElement(parent, _q("skjerming"))
    _values(
        node,
        ("tilgangsrestriksjon", skjerming.tilgangsrestriksjon),
        ("skjermingshjemmel", skjerming.skjermingshjemmel),
    )
    _repeated(node, "skjermingMetadata", skjerming.skjerming_metadata)
    _values(
        node,
        ("skjermingDokument", skjerming.skjerming_dokument),
        ("skjermingsvarighet", skjerming.skjermingsvarighet),
        ("skjermingOpphoererDato", skjerming.skjerming_opphoerer_dato),
    )


def _registrering(parent: etree._Element, registrering: Registrering, *, element: str) -> None:
    if isinstance(registrering, Journalpost):
        xsi_type: str | None = "journalpost"
    elif isinstance(registrering, Basisregistrering) and element != "basisregistrering":
        xsi_type = "basisregistrering"
    else:
        xsi_type = None
    node = _typed(parent, element, xsi_type)
    _values(
        node,
        ("systemID", registrering.system_id),
        ("opprettetDato", registrering.opprettet_dato),
        ("opprettetAv", registrering.opprettet_av),
        ("arkivertDato", registrering.arkivert_dato),
        ("arkivertAv", registrering.arkivert_av),
        ("registreringsID", registrering.registrerings_id),
        ("referanseForelderMappe", registrering.referanse_forelder_mappe),
        ("referanseArkivdel", registrering.referanse_arkivdel),
        ("referanseKlasse", registrering.referanse_klasse),
    )
    _skjerming(node, registrering.skjerming)
    for beskrivelse in registrering.dokumentbeskrivelser:
        _dokumentbeskrivelse(node, beskrivelse)
    for objekt in registrering.dokumentobjekter:
        _dokumentobjekt(node, objekt)
    if isinstance(registrering, Basisregistrering):
        _values(
            node,
            ("tittel", registrering.tittel),
            ("offentligTittel", registrering.offentlig_tittel),
            ("beskrivelse", registrering.beskrivelse),
        )
        _repeated(node, "noekkelord", registrering.noekkelord)
        _repeated(node, "forfatter", registrering.forfattere)
    if isinstance(registrering, Journalpost):
        _values(
            node,
            ("journalaar", registrering.journalaar),
            ("journalsekvensnummer", registrering.journalsekvensnummer),
            ("journalpostnummer", registrering.journalpostnummer),
            ("journalposttype", registrering.journalposttype),
            ("journalstatus", registrering.journalstatus),
            ("journaldato", registrering.journaldato),
            ("dokumentetsDato", registrering.dokumentets_dato),
            ("mottattDato", registrering.mottatt_dato),
            ("sendtDato", registrering.sendt_dato),
            ("forfallsdato", registrering.forfallsdato),
            ("offentlighetsvurdertDato", registrering.offentlighetsvurdert_dato),
            ("antallVedlegg", registrering.antall_vedlegg),
            ("journalenhet", registrering.journalenhet),
        )
        for part in registrering.korrespondanseparter:
            _korrespondansepart(node, part)


def _korrespondansepart(parent: etree._Element, part: Korrespondansepart) -> None:
    node = etree.SubElement(parent, _q("korrespondansepart"))
    _values(
        node,
        ("korrespondanseparttype", part.korrespondanseparttype),
        ("korrespondansepartNavn", part.korrespondansepart_navn),
    )
    _repeated(node, "postadresse", part.postadresse)
    _values(
        node,
        ("postnummer", part.postnummer),
        ("poststed", part.poststed),
        ("land", part.land),
        ("epostadresse", part.epostadresse),
    )
    _repeated(node, "telefonnummer", part.telefonnummer)
    _values(
        node,
        ("kontaktperson", part.kontaktperson),
        ("administrativEnhet", part.administrativ_enhet),
        ("saksbehandler", part.saksbehandler),
    )


def _dokumentbeskrivelse(parent: etree._Element, beskrivelse: Dokumentbeskrivelse) -> None:
    node = etree.SubElement(parent, _q("dokumentbeskrivelse"))
    _values(
        node,
        ("systemID", beskrivelse.system_id),
        ("dokumenttype", beskrivelse.dokumenttype),
        ("dokumentstatus", beskrivelse.dokumentstatus),
        ("tittel", beskrivelse.tittel),
        ("beskrivelse", beskrivelse.beskrivelse),
    )
    _repeated(node, "forfatter", beskrivelse.forfattere)
    _values(
        node,
        ("opprettetDato", beskrivelse.opprettet_dato),
        ("opprettetAv", beskrivelse.opprettet_av),
        ("tilknyttetRegistreringSom", beskrivelse.tilknyttet_registrering_som),
        ("dokumentnummer", beskrivelse.dokumentnummer),
        ("tilknyttetDato", beskrivelse.tilknyttet_dato),
        ("tilknyttetAv", beskrivelse.tilknyttet_av),
    )
    _skjerming(node, beskrivelse.skjerming)
    for objekt in beskrivelse.dokumentobjekter:
        _dokumentobjekt(node, objekt)


def _dokumentobjekt(parent: etree._Element, objekt: Dokumentobjekt) -> None:
    node = etree.SubElement(parent, _q("dokumentobjekt"))
    _values(
        node,
        ("versjonsnummer", objekt.versjonsnummer),
        ("variantformat", objekt.variantformat),
        ("opprettetDato", objekt.opprettet_dato),
        ("opprettetAv", objekt.opprettet_av),
        ("referanseDokumentfil", objekt.referanse_dokumentfil),
    )
