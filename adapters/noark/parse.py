"""Reading an arkivmelding: untrusted bytes in, an :class:`Arkivmelding` out.

The bytes go through the one hardened parser (:func:`sbdh.xmlsafe.parse_xml`: no DTD, no
entities, size and depth limits), then the element count is checked against the limits before
anything is built. Reading is tolerant of what eFormidling tolerates on receipt: missing
elements become None, elements of other namespaces and elements Budstikke does not model are
skipped, element order is not checked. It refuses, with :class:`ArkivmeldingError` listing every
fault, only what no model can hold:

* ``NOARK-ROOT``: the root is not ``{…/noark5/arkivmelding}arkivmelding``;
* ``NOARK-XSI-TYPE``: an ``xsi:type`` that is not an arkivmelding type allowed at its place;
* ``NOARK-VALUE``: an integer, date or date-time field whose text is not one;
* ``NOARK-LIMIT``: more elements than :attr:`NoarkLimits.max_elements`.

Whether the document is *complete* is :func:`~adapters.noark.validate.validate_arkivmelding`'s
question.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from lxml import etree

from adapters.noark.errors import ArkivmeldingError, NoarkViolation
from adapters.noark.limits import DEFAULT_LIMITS, NoarkLimits
from adapters.noark.model import (
    ARKIVMELDING_NS,
    Arkivmelding,
    Basisregistrering,
    Dokumentbeskrivelse,
    Dokumentobjekt,
    Journalpost,
    Klassifikasjon,
    Korrespondansepart,
    Mappe,
    Registrering,
    Saksmappe,
    Skjerming,
)
from sbdh.errors import InvalidInput
from sbdh.model import XSI_NS, parse_xs_datetime
from sbdh.xmlsafe import parse_xml

__all__ = ["parse_arkivmelding", "read_arkivmelding"]

_XSI_TYPE = f"{{{XSI_NS}}}type"
_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")
_XS_DATE = re.compile(
    r"^(?P<year>-?[0-9]{4,})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?$"
)
_XS_INT_RANGE = range(-(2**31), 2**31)
#: xsi:type values allowed at each place, and the type an element has without one
_MAPPE_TYPES = frozenset({"mappe", "saksmappe"})
_TOP_REGISTRERING_TYPES = frozenset({"registrering", "basisregistrering", "journalpost"})
_MAPPE_REGISTRERING_TYPES = frozenset({"basisregistrering", "journalpost"})


def parse_arkivmelding(data: bytes, *, limits: NoarkLimits = DEFAULT_LIMITS) -> Arkivmelding:
    """Parse untrusted arkivmelding bytes.

    Raises :class:`~sbdh.errors.XmlSecurityError` (DTD, entities, size, depth) or
    :class:`~sbdh.errors.InvalidInput` (not well-formed) from the hardened parser, and
    :class:`ArkivmeldingError` for the faults listed in the module docstring.
    """
    return read_arkivmelding(parse_xml(data, limits.xml), limits=limits)


def read_arkivmelding(
    root: etree._Element, *, limits: NoarkLimits = DEFAULT_LIMITS
) -> Arkivmelding:
    """The model of an already parsed (by :func:`~sbdh.xmlsafe.parse_xml`) arkivmelding."""
    qname = etree.QName(root)
    if qname.localname != "arkivmelding" or qname.namespace != ARKIVMELDING_NS:
        found = f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname
        raise ArkivmeldingError(
            [
                NoarkViolation.at(
                    "NOARK-ROOT",
                    f"/{qname.localname}",
                    f"the root element is {found}; an arkivmelding is "
                    f"{{{ARKIVMELDING_NS}}}arkivmelding",
                )
            ]
        )
    count = sum(1 for _ in root.iter())
    if count > limits.max_elements:
        raise ArkivmeldingError(
            [
                NoarkViolation.at(
                    "NOARK-LIMIT",
                    "/arkivmelding",
                    f"the document has {count} elements; at most {limits.max_elements} are read",
                )
            ]
        )
    reader = _Reader()
    document = reader.arkivmelding(_Node(root, "/arkivmelding"))
    if reader.violations:
        raise ArkivmeldingError(reader.violations)
    return document


_NS_PREFIX = f"{{{ARKIVMELDING_NS}}}"
_NS_PREFIX_LEN = len(_NS_PREFIX)


class _Node:
    """An element's arkivmelding children, grouped by name, and the element's location."""

    def __init__(self, element: etree._Element, path: str) -> None:
        self.element = element
        self.path = path
        self.children: dict[str, list[etree._Element]] = {}
        for child in element:
            tag = child.tag
            # comments and processing instructions have no string tag; the prefix test on the
            # Clark name is what etree.QName would say, without building one per element
            if isinstance(tag, str) and tag.startswith(_NS_PREFIX):
                self.children.setdefault(tag[_NS_PREFIX_LEN:], []).append(child)

    def text(self, name: str) -> str | None:
        found = self.children.get(name)
        return _text(found[0]) if found else None

    def texts(self, name: str) -> tuple[str, ...]:
        return tuple(_text(child) for child in self.children.get(name, ()))

    def all(self, name: str) -> list[_Node]:
        return [
            _Node(child, f"{self.path}/{name}[{index}]")
            for index, child in enumerate(self.children.get(name, ()), start=1)
        ]

    def one(self, name: str) -> _Node | None:
        found = self.children.get(name)
        return _Node(found[0], f"{self.path}/{name}") if found else None


def _text(element: etree._Element) -> str:
    return "".join(element.itertext())


class _Reader:
    """One pass over the tree, collecting the faults that keep a value out of the model."""

    def __init__(self) -> None:
        self.violations: list[NoarkViolation] = []

    def _fault(self, rule: str, location: str, text: str) -> None:
        self.violations.append(NoarkViolation.at(rule, location, text))

    # ------------------------------------------------------------------ typed values

    def integer(self, node: _Node, name: str, *, xs_int: bool = False) -> int | None:
        text = node.text(name)
        if text is None or not text.strip():
            return None
        if not _INTEGER.match(text.strip()):
            self._fault("NOARK-VALUE", f"{node.path}/{name}", f"{text!r} is not an integer")
            return None
        value = int(text.strip())
        if xs_int and value not in _XS_INT_RANGE:
            self._fault("NOARK-VALUE", f"{node.path}/{name}", f"{value} is out of xs:int range")
            return None
        return value

    def datetime(self, node: _Node, name: str) -> datetime | None:
        text = node.text(name)
        if text is None or not text.strip():
            return None
        try:
            return parse_xs_datetime(text.strip())
        except InvalidInput:
            self._fault(
                "NOARK-VALUE",
                f"{node.path}/{name}",
                f"{text!r} is not a date and time (xs:dateTime, 2024-05-01T12:00:00+02:00)",
            )
            return None

    def date(self, node: _Node, name: str) -> date | None:
        text = node.text(name)
        if text is None or not text.strip():
            return None
        match = _XS_DATE.match(text.strip())
        try:
            if match is None:
                raise ValueError("not the form YYYY-MM-DD")
            return date(int(match["year"]), int(match["month"]), int(match["day"]))
        except ValueError:
            self._fault(
                "NOARK-VALUE",
                f"{node.path}/{name}",
                f"{text!r} is not a date (xs:date, 2024-05-01)",
            )
            return None

    def xsi_type(self, node: _Node, allowed: frozenset[str], default: str) -> str | None:
        """The element's type: its xsi:type (an arkivmelding type allowed here) or ``default``."""
        value = node.element.get(_XSI_TYPE)
        if value is None:
            return default
        prefix, _, local = value.strip().rpartition(":")
        namespace = node.element.nsmap.get(prefix or None)
        if local in allowed and namespace in (ARKIVMELDING_NS, None):
            return local
        self._fault(
            "NOARK-XSI-TYPE",
            node.path,
            f"xsi:type {value!r} is not allowed here; the arkivmelding types allowed are "
            + ", ".join(sorted(allowed)),
        )
        return None

    # ------------------------------------------------------------------ structure

    def arkivmelding(self, node: _Node) -> Arkivmelding:
        mapper = (self.mappe(child) for child in node.all("mappe"))
        registreringer = (
            self.registrering(child, _TOP_REGISTRERING_TYPES, "registrering")
            for child in node.all("registrering")
        )
        return Arkivmelding(
            system=node.text("system"),
            melding_id=node.text("meldingId"),
            tidspunkt=self.datetime(node, "tidspunkt"),
            antall_filer=self.integer(node, "antallFiler", xs_int=True),
            mapper=tuple(m for m in mapper if m is not None),
            registreringer=tuple(r for r in registreringer if r is not None),
        )

    def mappe(self, node: _Node) -> Mappe | None:
        kind = self.xsi_type(node, _MAPPE_TYPES, "mappe")
        if kind is None:
            return None
        mapper = (self.mappe(child) for child in node.all("mappe"))
        registreringer = (
            self.registrering(child, _MAPPE_REGISTRERING_TYPES, "basisregistrering")
            for child in node.all("basisregistrering")
        )
        common: dict[str, Any] = {
            "system_id": node.text("systemID"),
            "mappe_id": node.text("mappeID"),
            "referanse_foreldermappe": node.text("ReferanseForeldermappe"),
            "tittel": node.text("tittel"),
            "offentlig_tittel": node.text("offentligTittel"),
            "beskrivelse": node.text("beskrivelse"),
            "noekkelord": node.texts("noekkelord"),
            "opprettet_dato": self.datetime(node, "opprettetDato"),
            "opprettet_av": node.text("opprettetAv"),
            "avsluttet_dato": self.datetime(node, "avsluttetDato"),
            "avsluttet_av": node.text("avsluttetAv"),
            "skjerming": self.skjerming(node),
            "klassifikasjoner": tuple(self.klassifikasjon(c) for c in node.all("klassifikasjon")),
            "mapper": tuple(m for m in mapper if m is not None),
            "registreringer": tuple(r for r in registreringer if isinstance(r, Basisregistrering)),
        }
        if kind == "mappe":
            return Mappe(**common)
        return Saksmappe(
            **common,
            saksaar=self.integer(node, "saksaar"),
            sakssekvensnummer=self.integer(node, "sakssekvensnummer"),
            saksdato=self.date(node, "saksdato"),
            administrativ_enhet=node.text("administrativEnhet"),
            saksansvarlig=node.text("saksansvarlig"),
            journalenhet=node.text("journalenhet"),
            saksstatus=node.text("saksstatus"),
        )

    def registrering(
        self, node: _Node, allowed: frozenset[str], default: str
    ) -> Registrering | None:
        kind = self.xsi_type(node, allowed, default)
        if kind is None:
            return None
        fields: dict[str, Any] = {
            "system_id": node.text("systemID"),
            "opprettet_dato": self.datetime(node, "opprettetDato"),
            "opprettet_av": node.text("opprettetAv"),
            "arkivert_dato": self.datetime(node, "arkivertDato"),
            "arkivert_av": node.text("arkivertAv"),
            "registrerings_id": node.text("registreringsID"),
            "referanse_forelder_mappe": node.text("referanseForelderMappe"),
            "referanse_arkivdel": node.text("referanseArkivdel"),
            "referanse_klasse": node.text("referanseKlasse"),
            "skjerming": self.skjerming(node),
            "dokumentbeskrivelser": tuple(
                self.dokumentbeskrivelse(c) for c in node.all("dokumentbeskrivelse")
            ),
            "dokumentobjekter": tuple(self.dokumentobjekt(c) for c in node.all("dokumentobjekt")),
        }
        if kind == "registrering":
            return Registrering(**fields)
        fields.update(
            tittel=node.text("tittel"),
            offentlig_tittel=node.text("offentligTittel"),
            beskrivelse=node.text("beskrivelse"),
            noekkelord=node.texts("noekkelord"),
            forfattere=node.texts("forfatter"),
        )
        if kind == "basisregistrering":
            return Basisregistrering(**fields)
        return Journalpost(
            **fields,
            journalaar=self.integer(node, "journalaar"),
            journalsekvensnummer=self.integer(node, "journalsekvensnummer"),
            journalpostnummer=self.integer(node, "journalpostnummer"),
            journalposttype=node.text("journalposttype"),
            journalstatus=node.text("journalstatus"),
            journaldato=self.date(node, "journaldato"),
            dokumentets_dato=self.date(node, "dokumentetsDato"),
            mottatt_dato=self.datetime(node, "mottattDato"),
            sendt_dato=self.datetime(node, "sendtDato"),
            forfallsdato=self.date(node, "forfallsdato"),
            offentlighetsvurdert_dato=self.date(node, "offentlighetsvurdertDato"),
            antall_vedlegg=self.integer(node, "antallVedlegg"),
            journalenhet=node.text("journalenhet"),
            korrespondanseparter=tuple(
                self.korrespondansepart(c) for c in node.all("korrespondansepart")
            ),
        )

    def dokumentbeskrivelse(self, node: _Node) -> Dokumentbeskrivelse:
        return Dokumentbeskrivelse(
            system_id=node.text("systemID"),
            dokumenttype=node.text("dokumenttype"),
            dokumentstatus=node.text("dokumentstatus"),
            tittel=node.text("tittel"),
            beskrivelse=node.text("beskrivelse"),
            forfattere=node.texts("forfatter"),
            opprettet_dato=self.datetime(node, "opprettetDato"),
            opprettet_av=node.text("opprettetAv"),
            tilknyttet_registrering_som=node.text("tilknyttetRegistreringSom"),
            dokumentnummer=self.integer(node, "dokumentnummer"),
            tilknyttet_dato=self.datetime(node, "tilknyttetDato"),
            tilknyttet_av=node.text("tilknyttetAv"),
            skjerming=self.skjerming(node),
            dokumentobjekter=tuple(self.dokumentobjekt(c) for c in node.all("dokumentobjekt")),
        )

    def dokumentobjekt(self, node: _Node) -> Dokumentobjekt:
        return Dokumentobjekt(
            referanse_dokumentfil=node.text("referanseDokumentfil"),
            versjonsnummer=self.integer(node, "versjonsnummer"),
            variantformat=node.text("variantformat"),
            opprettet_dato=self.datetime(node, "opprettetDato"),
            opprettet_av=node.text("opprettetAv"),
            format=node.text("format"),
        )

    def korrespondansepart(self, node: _Node) -> Korrespondansepart:
        return Korrespondansepart(
            korrespondanseparttype=node.text("korrespondanseparttype"),
            korrespondansepart_navn=node.text("korrespondansepartNavn"),
            postadresse=node.texts("postadresse"),
            postnummer=node.text("postnummer"),
            poststed=node.text("poststed"),
            land=node.text("land"),
            epostadresse=node.text("epostadresse"),
            telefonnummer=node.texts("telefonnummer"),
            kontaktperson=node.text("kontaktperson"),
            administrativ_enhet=node.text("administrativEnhet"),
            saksbehandler=node.text("saksbehandler"),
        )

    def klassifikasjon(self, node: _Node) -> Klassifikasjon:
        return Klassifikasjon(
            referanse_klassifikasjonssystem=node.text("referanseKlassifikasjonssystem"),
            klasse_id=node.text("klasseID"),
            tittel=node.text("tittel"),
            beskrivelse=node.text("beskrivelse"),
            opprettet_dato=self.datetime(node, "opprettetDato"),
            opprettet_av=node.text("opprettetAv"),
        )

    def skjerming(self, parent: _Node) -> Skjerming | None:
        node = parent.one("skjerming")
        if node is None:
            return None
        return Skjerming(
            tilgangsrestriksjon=node.text("tilgangsrestriksjon"),
            skjermingshjemmel=node.text("skjermingshjemmel"),
            skjerming_metadata=node.texts("skjermingMetadata"),
            skjerming_dokument=node.text("skjermingDokument"),
            skjermingsvarighet=self.integer(node, "skjermingsvarighet"),
            skjerming_opphoerer_dato=self.date(node, "skjermingOpphoererDato"),
        )
