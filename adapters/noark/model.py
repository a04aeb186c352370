"""The arkivmelding (NOARK 5, the eFormidling variant) and its receipt as frozen values.

The classes mirror the types of eFormidling's ``arkivmelding.xsd`` and keep their names, in
snake case, so that each field maps to one element: ``Journalpost.journalposttype`` is
``<journalposttype>``. The hierarchy follows the schema's type extensions::

    Mappe ─── Saksmappe                      (xsi:type="saksmappe")
    Registrering ─── Basisregistrering ─── Journalpost

A document holds either folders (``mapper``, each with sub-folders or registrations) or bare
registrations (``registreringer``). eFormidling itself only accepts the first form with a
saksmappe that holds a journalpost (see :mod:`adapters.noark.validate`).

Only what an exchange needs is modelled: identity, titles, dates, the case and journal
numbers, correspondence parties, classification, screening, and the document descriptions with
their file references. Meeting records, remarks, cross references, gradings, precedents,
write-offs, document flow and ``virksomhetsspesifikkeMetadata`` are skipped when read and never
written.

Every field may be None (or empty): a document read from the network is modelled as it came,
and :func:`~adapters.noark.validate.validate_arkivmelding` says what it lacks. Strings are kept
as received (``xs:string`` preserves whitespace); integers, dates and times are typed. A date's
timezone (``2016-03-21+01:00``, which integrasjonspunkt itself writes) is dropped: a calendar
date in a Norwegian archive has no use for it.

Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

__all__ = [
    "ARKIVMELDING_NS",
    "Arkivmelding",
    "Basisregistrering",
    "Dokumentbeskrivelse",
    "Dokumentobjekt",
    "Dokumentstatus",
    "Journalpost",
    "Journalposttype",
    "Journalstatus",
    "Klassifikasjon",
    "Korrespondansepart",
    "Korrespondanseparttype",
    "Mappe",
    "Registrering",
    "Saksmappe",
    "Saksstatus",
    "Skjerming",
    "SkjermingDokument",
    "TilknyttetRegistreringSom",
    "Variantformat",
]

ARKIVMELDING_NS = "http://www.arkivverket.no/standarder/noark5/arkivmelding"


# --------------------------------------------------------------------------- code lists
# The NOARK 5 v3.1 metadata catalogue's enumerations, values as the catalogue spells them.


class Journalposttype(enum.StrEnum):
    """M082."""

    INNGAAENDE = "Inngående dokument"
    UTGAAENDE = "Utgående dokument"
    ORGANINTERNT_MED_OPPFOELGING = "Organinternt dokument for oppfølging"
    ORGANINTERNT_UTEN_OPPFOELGING = "Organinternt dokument uten oppfølging"
    SAKSFRAMLEGG = "Saksframlegg"


class Journalstatus(enum.StrEnum):
    """M053."""

    JOURNALFOERT = "Journalført"
    FERDIGSTILT_FRA_SAKSBEHANDLER = "Ferdigstilt fra saksbehandler"
    GODKJENT_AV_LEDER = "Godkjent av leder"
    EKSPEDERT = "Ekspedert"
    ARKIVERT = "Arkivert"
    UTGAAR = "Utgår"


class Saksstatus(enum.StrEnum):
    """M052."""

    UNDER_BEHANDLING = "Under behandling"
    AVSLUTTET = "Avsluttet"
    UTGAAR = "Utgår"


class Dokumentstatus(enum.StrEnum):
    """M054."""

    UNDER_REDIGERING = "Dokumentet er under redigering"
    FERDIGSTILT = "Dokumentet er ferdigstilt"


class TilknyttetRegistreringSom(enum.StrEnum):
    """M217: a registration has one main document; the rest are attachments."""

    HOVEDDOKUMENT = "Hoveddokument"
    VEDLEGG = "Vedlegg"


class Variantformat(enum.StrEnum):
    """M700."""

    PRODUKSJONSFORMAT = "Produksjonsformat"
    ARKIVFORMAT = "Arkivformat"
    SKJERMET = "Dokument hvor deler av innholdet er skjermet"


class Korrespondanseparttype(enum.StrEnum):
    """M087."""

    AVSENDER = "Avsender"
    MOTTAKER = "Mottaker"
    KOPIMOTTAKER = "Kopimottaker"
    GRUPPEMOTTAKER = "Gruppemottaker"
    INTERN_AVSENDER = "Intern avsender"
    INTERN_MOTTAKER = "Intern mottaker"


class SkjermingDokument(enum.StrEnum):
    """M503."""

    HELE = "Skjerming av hele dokumentet"
    DELER = "Skjerming av deler av dokumentet"


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, kw_only=True)
class Skjerming:
    """Screening (access restriction) of a folder, registration or document description."""

    tilgangsrestriksjon: str | None = None
    skjermingshjemmel: str | None = None
    skjerming_metadata: tuple[str, ...] = ()
    skjerming_dokument: str | None = None
    skjermingsvarighet: int | None = None
    skjerming_opphoerer_dato: date | None = None


@dataclass(frozen=True, kw_only=True)
class Klassifikasjon:
    """A folder's class in a classification system (function, object, ...)."""

    referanse_klassifikasjonssystem: str | None = None
    klasse_id: str | None = None
    tittel: str | None = None
    beskrivelse: str | None = None
    opprettet_dato: datetime | None = None
    opprettet_av: str | None = None


@dataclass(frozen=True, kw_only=True)
class Korrespondansepart:
    """A sender or receiver of a journal entry."""

    korrespondanseparttype: str | None = None
    korrespondansepart_navn: str | None = None
    postadresse: tuple[str, ...] = ()
    postnummer: str | None = None
    poststed: str | None = None
    land: str | None = None
    epostadresse: str | None = None
    telefonnummer: tuple[str, ...] = ()
    kontaktperson: str | None = None
    administrativ_enhet: str | None = None
    saksbehandler: str | None = None


@dataclass(frozen=True, kw_only=True)
class Dokumentobjekt:
    """One version of a document in one format: the reference to a file of the message.

    ``format`` is read from documents that carry it (NOARK 5 arkivstruktur, the FIKS variant)
    but never written: the eFormidling schema removed it from ``dokumentobjekt``.
    """

    referanse_dokumentfil: str | None = None
    versjonsnummer: int | None = 1
    variantformat: str | None = Variantformat.PRODUKSJONSFORMAT
    opprettet_dato: datetime | None = None
    opprettet_av: str | None = None
    format: str | None = None


@dataclass(frozen=True, kw_only=True)
class Dokumentbeskrivelse:
    """A document of a registration: main document or attachment, with its file(s)."""

    system_id: str | None = None
    dokumenttype: str | None = None
    dokumentstatus: str | None = None
    tittel: str | None = None
    beskrivelse: str | None = None
    forfattere: tuple[str, ...] = ()
    opprettet_dato: datetime | None = None
    opprettet_av: str | None = None
    tilknyttet_registrering_som: str | None = None
    dokumentnummer: int | None = None
    tilknyttet_dato: datetime | None = None
    tilknyttet_av: str | None = None
    skjerming: Skjerming | None = None
    dokumentobjekter: tuple[Dokumentobjekt, ...] = ()


# --------------------------------------------------------------------------- registrations


@dataclass(frozen=True, kw_only=True)
class Registrering:
    """The schema's base registration (``registrering``); it has no title.

    Exactly one of the three references should be set (the schema's choice). ``dokumentobjekter``
    are document objects placed directly in the registration, outside any description: the
    schema allows them, eFormidling ignores them.
    """

    system_id: str | None = None
    opprettet_dato: datetime | None = None
    opprettet_av: str | None = None
    arkivert_dato: datetime | None = None
    arkivert_av: str | None = None
    registrerings_id: str | None = None
    referanse_forelder_mappe: str | None = None
    referanse_arkivdel: str | None = None
    referanse_klasse: str | None = None
    skjerming: Skjerming | None = None
    dokumentbeskrivelser: tuple[Dokumentbeskrivelse, ...] = ()
    dokumentobjekter: tuple[Dokumentobjekt, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Basisregistrering(Registrering):
    """A registration with a title (``basisregistrering``)."""

    tittel: str | None = None
    offentlig_tittel: str | None = None
    beskrivelse: str | None = None
    noekkelord: tuple[str, ...] = ()
    forfattere: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Journalpost(Basisregistrering):
    """A journal entry (``xsi:type="journalpost"``): what eFormidling exchanges."""

    journalaar: int | None = None
    journalsekvensnummer: int | None = None
    journalpostnummer: int | None = None
    journalposttype: str | None = None
    journalstatus: str | None = None
    journaldato: date | None = None
    dokumentets_dato: date | None = None
    mottatt_dato: datetime | None = None
    sendt_dato: datetime | None = None
    forfallsdato: date | None = None
    offentlighetsvurdert_dato: date | None = None
    antall_vedlegg: int | None = None
    journalenhet: str | None = None
    korrespondanseparter: tuple[Korrespondansepart, ...] = ()


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True, kw_only=True)
class Mappe:
    """A folder. It holds sub-folders or registrations, not both (the schema's choice)."""

    system_id: str | None = None
    mappe_id: str | None = None
    referanse_foreldermappe: str | None = None
    tittel: str | None = None
    offentlig_tittel: str | None = None
    beskrivelse: str | None = None
    noekkelord: tuple[str, ...] = ()
    opprettet_dato: datetime | None = None
    opprettet_av: str | None = None
    avsluttet_dato: datetime | None = None
    avsluttet_av: str | None = None
    skjerming: Skjerming | None = None
    klassifikasjoner: tuple[Klassifikasjon, ...] = ()
    mapper: tuple[Mappe, ...] = ()
    registreringer: tuple[Basisregistrering, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Saksmappe(Mappe):
    """A case file (``xsi:type="saksmappe"``)."""

    saksaar: int | None = None
    sakssekvensnummer: int | None = None
    saksdato: date | None = None
    administrativ_enhet: str | None = None
    saksansvarlig: str | None = None
    journalenhet: str | None = None
    saksstatus: str | None = None


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True, kw_only=True)
class Arkivmelding:
    """The arkivmelding: who wrote it, when, how many files it describes, and its content."""

    system: str | None = None
    melding_id: str | None = None
    tidspunkt: datetime | None = None
    antall_filer: int | None = None
    mapper: tuple[Mappe, ...] = ()
    registreringer: tuple[Registrering, ...] = ()

    @property
    def saksmappe(self) -> Saksmappe | None:
        """The first top-level saksmappe: the one integrasjonspunkt reads."""
        return next((m for m in self.mapper if isinstance(m, Saksmappe)), None)

    @property
    def journalpost(self) -> Journalpost | None:
        """The first journalpost of :attr:`saksmappe`: the one integrasjonspunkt reads."""
        saksmappe = self.saksmappe
        if saksmappe is None:
            return None
        return next((r for r in saksmappe.registreringer if isinstance(r, Journalpost)), None)

    @property
    def tittel(self) -> str | None:
        """The journal entry's title, else the case file's: what a case worker sees first."""
        for candidate in (self.journalpost, self.saksmappe):
            if candidate is not None and candidate.tittel and candidate.tittel.strip():
                return candidate.tittel.strip()
        return None

    def iter_registreringer(self) -> Iterator[Registrering]:
        """Every registration, in document order, however deep its folder."""
        yield from self.registreringer
        stack = list(reversed(self.mapper))
        while stack:
            mappe = stack.pop()
            yield from mappe.registreringer
            stack.extend(reversed(mappe.mapper))

    def referanser(self) -> tuple[str, ...]:
        """Every ``referanseDokumentfil`` in document order (repeats kept), loose objects too."""
        names: list[str] = []
        for registrering in self.iter_registreringer():
            for beskrivelse in registrering.dokumentbeskrivelser:
                names.extend(
                    o.referanse_dokumentfil
                    for o in beskrivelse.dokumentobjekter
                    if o.referanse_dokumentfil is not None
                )
            names.extend(
                o.referanse_dokumentfil
                for o in registrering.dokumentobjekter
                if o.referanse_dokumentfil is not None
            )
        return tuple(names)
