"""Judging an arkivmelding: is it complete, does it fit its files, is it safe to act on?

Two strengths, because eFormidling asks different things of the two ends:

* ``strict=True`` (default): what eFormidling asks of a *sender* (its "eFormidling 2"
  requirements: valid against ``arkivmelding.xsd``, a saksmappe with a journalpost) and what
  NOARK 5 says of the content. Budstikke applies it to what its users send and to what it
  builds itself.
* ``strict=False``: what a *receiver* can count on. eFormidling warns that received
  arkivmeldinger need not be schema-valid (those converted from BEST/EDU or KS SvarInn lack
  data, and integrasjonspunkt writes them with an ``antallFiler`` of 0, malformed or repeated
  systemIDs), so only what the receiving side relies on is checked: the saksmappe and
  journalpost integrasjonspunkt reads, every file reference present, safe and within limits.

Rules, each with a stable id (``S`` = strict only):

==============================  ==  ======================================================
``NOARK-SAKSMAPPE``                 no saksmappe directly in the arkivmelding
``NOARK-JOURNALPOST``               the first saksmappe holds no journalpost
``NOARK-REFERANSEDOKUMENTFIL``      a dokumentobjekt without a file reference
``NOARK-FILE-PATH``                 a file reference that is a path: absolute, ``..``, separators
``NOARK-FILE-NAME``                 a file reference that is no usable name: empty, ``.``,
                                    control characters, white space at either end, too long
``NOARK-FILE-MISSING``              a referenced file is not among the message's files
``NOARK-LIMIT``                     over a limit of :class:`~adapters.noark.limits.NoarkLimits`
``NOARK-REQUIRED``              S   an element the schema requires is missing (or a title empty)
``NOARK-SYSTEMID``              S   a systemID that is not a UUID, or used twice
``NOARK-CODE``                  S   a value outside its NOARK 5 code list (journalposttype ...)
``NOARK-MAPPE-OR-REGISTRERING`` S   folders and registrations side by side (the schema's choice)
``NOARK-REFERANSE``             S   a registration without exactly one parent reference, or
                                    one whose referanseForelderMappe is not its folder
``NOARK-DOKUMENTBESKRIVELSE``   S   a registration without any dokumentbeskrivelse
``NOARK-HOVEDDOKUMENT``         S   a registration's documents without exactly one main document
``NOARK-DOKUMENTNUMMER``        S   a dokumentnummer used twice in one registration
``NOARK-LOOSE-DOKUMENTOBJEKT``  S   a dokumentobjekt outside any dokumentbeskrivelse (eFormidling
                                    ignores it, and its file would not reach the case system)
``NOARK-ANTALL-FILER``          S   antallFiler is not the number of distinct files referred to
==============================  ==  ======================================================

File names are compared as integrasjonspunkt compares them: exactly, case and Unicode form
included (``test.pdf`` is not ``Test.pdf``); a near miss is named in the message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from enum import StrEnum

from adapters.noark.errors import ArkivmeldingError, NoarkViolation
from adapters.noark.limits import DEFAULT_LIMITS, NoarkLimits
from adapters.noark.model import (
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
    Korrespondanseparttype,
    Mappe,
    Registrering,
    Saksmappe,
    Saksstatus,
    Skjerming,
    SkjermingDokument,
    TilknyttetRegistreringSom,
    Variantformat,
)

__all__ = ["check_arkivmelding", "file_name_fault", "validate_arkivmelding"]

_GUID = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\})$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATORS = re.compile(r"[/\\]")
_PLAIN = "a message's files have plain names"

# The elements the schema requires, per type: (model field, element name).
_ARKIVMELDING_REQUIRED = (
    ("system", "system"),
    ("melding_id", "meldingId"),
    ("tidspunkt", "tidspunkt"),
    ("antall_filer", "antallFiler"),
)
_MAPPE_REQUIRED = (
    ("system_id", "systemID"),
    ("tittel", "tittel"),
    ("opprettet_dato", "opprettetDato"),
    ("opprettet_av", "opprettetAv"),
)
_SAKSMAPPE_REQUIRED = (
    ("saksdato", "saksdato"),
    ("administrativ_enhet", "administrativEnhet"),
    ("saksansvarlig", "saksansvarlig"),
    ("saksstatus", "saksstatus"),
)
_REGISTRERING_REQUIRED = (
    ("system_id", "systemID"),
    ("opprettet_dato", "opprettetDato"),
    ("opprettet_av", "opprettetAv"),
    ("arkivert_dato", "arkivertDato"),
    ("arkivert_av", "arkivertAv"),
)
_BASISREGISTRERING_REQUIRED = (("tittel", "tittel"),)
_JOURNALPOST_REQUIRED = (
    ("journalposttype", "journalposttype"),
    ("journalstatus", "journalstatus"),
    ("journaldato", "journaldato"),
)
_DOKUMENTBESKRIVELSE_REQUIRED = (
    ("system_id", "systemID"),
    ("dokumenttype", "dokumenttype"),
    ("dokumentstatus", "dokumentstatus"),
    ("tittel", "tittel"),
    ("opprettet_dato", "opprettetDato"),
    ("opprettet_av", "opprettetAv"),
    ("tilknyttet_registrering_som", "tilknyttetRegistreringSom"),
    ("dokumentnummer", "dokumentnummer"),
    ("tilknyttet_dato", "tilknyttetDato"),
    ("tilknyttet_av", "tilknyttetAv"),
)
_DOKUMENTOBJEKT_REQUIRED = (
    ("versjonsnummer", "versjonsnummer"),
    ("variantformat", "variantformat"),
    ("opprettet_dato", "opprettetDato"),
    ("opprettet_av", "opprettetAv"),
)
_KORRESPONDANSEPART_REQUIRED = (
    ("korrespondanseparttype", "korrespondanseparttype"),
    ("korrespondansepart_navn", "korrespondansepartNavn"),
)
_KLASSIFIKASJON_REQUIRED = (
    ("referanse_klassifikasjonssystem", "referanseKlassifikasjonssystem"),
    ("klasse_id", "klasseID"),
    ("tittel", "tittel"),
)
_SKJERMING_REQUIRED = (
    ("tilgangsrestriksjon", "tilgangsrestriksjon"),
    ("skjermingshjemmel", "skjermingshjemmel"),
    ("skjerming_metadata", "skjermingMetadata"),
)


def validate_arkivmelding(
    doc: Arkivmelding,
    files: Collection[str] | None,
    *,
    strict: bool = True,
    limits: NoarkLimits = DEFAULT_LIMITS,
) -> list[NoarkViolation]:
    """Every rule ``doc`` breaks, in document order; empty when it passes.

    ``files`` are the names of the message's files (``arkivmelding.xml`` among them or not);
    None skips the presence check, for a document built before its files are known.
    """
    check = _Check(files, strict=strict, limits=limits)
    check.arkivmelding(doc)
    return check.result()


def check_arkivmelding(
    doc: Arkivmelding,
    files: Collection[str] | None,
    *,
    strict: bool = True,
    limits: NoarkLimits = DEFAULT_LIMITS,
) -> None:
    """Raise :class:`ArkivmeldingError` listing every violation, if there is any."""
    violations = validate_arkivmelding(doc, files, strict=strict, limits=limits)
    if violations:
        raise ArkivmeldingError(violations)


def file_name_fault(name: str, *, max_length: int = 255) -> tuple[str, str] | None:
    """Why ``name`` is not a plain file name of a message, as (rule, explanation); or None."""
    if not name.strip():
        return "NOARK-FILE-NAME", "is empty"
    if _CONTROL.search(name):
        return "NOARK-FILE-NAME", f"{name!r} holds control characters"
    if name[0] in "/\\" or _DRIVE.match(name):
        return "NOARK-FILE-PATH", f"{name!r} is an absolute path; {_PLAIN}"
    parts = _SEPARATORS.split(name)
    if ".." in (part.strip() for part in parts):
        return "NOARK-FILE-PATH", f"{name!r} climbs out of the message's files ('..')"
    if len(parts) > 1:
        return "NOARK-FILE-PATH", f"{name!r} holds a path separator; {_PLAIN}"
    if name.strip() == ".":
        return "NOARK-FILE-NAME", f"{name!r} is not a file name"
    if name != name.strip():
        return (
            "NOARK-FILE-NAME",
            f"{name!r} has white space at its start or end; file names are compared exactly",
        )
    if len(name) > max_length:
        return "NOARK-FILE-NAME", f"the name is {len(name)} characters; at most {max_length}"
    return None


def _guid_key(value: str) -> str:
    return value.strip().strip("{}").lower()


def _codes(enum: type[StrEnum]) -> frozenset[str]:
    return frozenset(member.value for member in enum)


class _Check:
    """One walk over the model, collecting violations in document order."""

    def __init__(self, files: Collection[str] | None, *, strict: bool, limits: NoarkLimits) -> None:
        self.files = None if files is None else frozenset(files)
        self.strict = strict
        self.limits = limits
        self.violations: list[NoarkViolation] = []
        #: (location of referanseDokumentfil, name) for every file reference
        self.references: list[tuple[str, str]] = []
        self.system_ids: dict[str, str] = {}
        self.registreringer = 0
        self.too_deep = False

    def fault(self, rule: str, location: str, text: str) -> None:
        self.violations.append(NoarkViolation.at(rule, location, text))

    def result(self) -> list[NoarkViolation]:
        listed = self.limits.max_violations
        if len(self.violations) <= listed:
            return list(self.violations)
        rest = len(self.violations) - (listed - 1)
        return [
            *self.violations[: listed - 1],
            NoarkViolation.at(
                "NOARK-LIMIT", "/arkivmelding", f"{rest} more violations are not listed"
            ),
        ]

    # ------------------------------------------------------------------ small checks

    def required(self, obj: object, location: str, fields: Sequence[tuple[str, str]]) -> None:
        if not self.strict:
            return
        for attr, element in fields:
            value = getattr(obj, attr)
            if value is None or value == ():
                self.fault("NOARK-REQUIRED", location, f"{element} is required and missing")

    def not_blank(self, value: str | None, location: str, element: str) -> None:
        if self.strict and value is not None and not value.strip():
            self.fault("NOARK-REQUIRED", f"{location}/{element}", f"{element} is empty")

    def code(self, value: str | None, enum: type[StrEnum], location: str, element: str) -> None:
        if not self.strict or value is None:
            return
        allowed = _codes(enum)
        if value not in allowed:
            self.fault(
                "NOARK-CODE",
                f"{location}/{element}",
                f"{value!r} is not a NOARK 5 {element}; one of: "
                + ", ".join(repr(v) for v in sorted(allowed)),
            )

    def system_id(self, value: str | None, location: str) -> None:
        if not self.strict or value is None:
            return
        where = f"{location}/systemID"
        if not _GUID.match(value):
            self.fault("NOARK-SYSTEMID", where, f"{value!r} is not a UUID")
            return
        first = self.system_ids.setdefault(_guid_key(value), where)
        if first != where:
            self.fault("NOARK-SYSTEMID", where, f"{value!r} is already the systemID of {first}")

    def skjerming(self, skjerming: Skjerming | None, location: str) -> None:
        if skjerming is None:
            return
        where = f"{location}/skjerming"
        self.required(skjerming, where, _SKJERMING_REQUIRED)
        self.code(skjerming.skjerming_dokument, SkjermingDokument, where, "skjermingDokument")

    # ------------------------------------------------------------------ the document

    def arkivmelding(self, doc: Arkivmelding) -> None:
        root = "/arkivmelding"
        self.required(doc, root, _ARKIVMELDING_REQUIRED)
        self.not_blank(doc.system, root, "system")
        self.not_blank(doc.melding_id, root, "meldingId")
        if self.strict and doc.mapper and doc.registreringer:
            self.fault(
                "NOARK-MAPPE-OR-REGISTRERING",
                root,
                "holds both mappe and registrering; the schema allows one kind or the other",
            )
        for index, mappe in enumerate(doc.mapper, start=1):
            self.mappe(mappe, f"{root}/mappe[{index}]", depth=1)
        for index, registrering in enumerate(doc.registreringer, start=1):
            self.registrering(registrering, f"{root}/registrering[{index}]", parent=None)
        self.eformidling(doc)
        self.file_references(doc)

    def eformidling(self, doc: Arkivmelding) -> None:
        """The saksmappe and journalpost integrasjonspunkt reads (its ArkivmeldingUtil)."""
        position = next(
            (i for i, m in enumerate(doc.mapper, start=1) if isinstance(m, Saksmappe)), None
        )
        if position is None:
            if doc.mapper:
                found = 'its mappe are not saksmapper (xsi:type="saksmappe")'
            elif doc.registreringer:
                found = "it holds bare registreringer"
            else:
                found = "it holds neither mappe nor registrering"
            self.fault(
                "NOARK-SAKSMAPPE",
                "/arkivmelding",
                f"eFormidling needs a saksmappe directly in the arkivmelding; {found}",
            )
            return
        saksmappe = doc.mapper[position - 1]
        if not any(isinstance(r, Journalpost) for r in saksmappe.registreringer):
            self.fault(
                "NOARK-JOURNALPOST",
                f"/arkivmelding/mappe[{position}]",
                'the saksmappe holds no journalpost (basisregistrering xsi:type="journalpost"); '
                "eFormidling exchanges the first saksmappe's first journalpost",
            )

    def mappe(self, mappe: Mappe, location: str, *, depth: int) -> None:
        if depth > self.limits.max_mappe_depth:
            if not self.too_deep:
                self.too_deep = True
                self.fault(
                    "NOARK-LIMIT",
                    location,
                    f"folders nest deeper than {self.limits.max_mappe_depth} levels",
                )
            return
        self.required(mappe, location, _MAPPE_REQUIRED)
        self.not_blank(mappe.tittel, location, "tittel")
        self.system_id(mappe.system_id, location)
        if isinstance(mappe, Saksmappe):
            self.required(mappe, location, _SAKSMAPPE_REQUIRED)
            self.code(mappe.saksstatus, Saksstatus, location, "saksstatus")
        self.skjerming(mappe.skjerming, location)
        for index, klasse in enumerate(mappe.klassifikasjoner, start=1):
            self.klassifikasjon(klasse, f"{location}/klassifikasjon[{index}]")
        if self.strict and mappe.mapper and mappe.registreringer:
            self.fault(
                "NOARK-MAPPE-OR-REGISTRERING",
                location,
                "holds both mappe and basisregistrering; the schema allows one kind or the other",
            )
        for index, sub in enumerate(mappe.mapper, start=1):
            self.mappe(sub, f"{location}/mappe[{index}]", depth=depth + 1)
        for index, registrering in enumerate(mappe.registreringer, start=1):
            self.registrering(registrering, f"{location}/basisregistrering[{index}]", parent=mappe)

    def klassifikasjon(self, klasse: Klassifikasjon, location: str) -> None:
        self.required(klasse, location, _KLASSIFIKASJON_REQUIRED)

    def registrering(
        self, registrering: Registrering, location: str, *, parent: Mappe | None
    ) -> None:
        self.registreringer += 1
        if self.registreringer == self.limits.max_registreringer + 1:
            self.fault(
                "NOARK-LIMIT",
                location,
                f"more than {self.limits.max_registreringer} registreringer",
            )
        self.required(registrering, location, _REGISTRERING_REQUIRED)
        self.system_id(registrering.system_id, location)
        if isinstance(registrering, Basisregistrering):
            self.required(registrering, location, _BASISREGISTRERING_REQUIRED)
            self.not_blank(registrering.tittel, location, "tittel")
        if isinstance(registrering, Journalpost):
            self.journalpost(registrering, location)
        self.parent_reference(registrering, location, parent)
        self.skjerming(registrering.skjerming, location)
        self.documents(registrering, location)

    def journalpost(self, journalpost: Journalpost, location: str) -> None:
        self.required(journalpost, location, _JOURNALPOST_REQUIRED)
        self.code(journalpost.journalposttype, Journalposttype, location, "journalposttype")
        self.code(journalpost.journalstatus, Journalstatus, location, "journalstatus")
        for index, part in enumerate(journalpost.korrespondanseparter, start=1):
            self.korrespondansepart(part, f"{location}/korrespondansepart[{index}]")

    def korrespondansepart(self, part: Korrespondansepart, location: str) -> None:
        self.required(part, location, _KORRESPONDANSEPART_REQUIRED)
        self.code(
            part.korrespondanseparttype,
            Korrespondanseparttype,
            location,
            "korrespondanseparttype",
        )

    def parent_reference(
        self, registrering: Registrering, location: str, parent: Mappe | None
    ) -> None:
        if not self.strict:
            return
        given = [
            element
            for element, value in (
                ("referanseForelderMappe", registrering.referanse_forelder_mappe),
                ("referanseArkivdel", registrering.referanse_arkivdel),
                ("referanseKlasse", registrering.referanse_klasse),
            )
            if value is not None
        ]
        if len(given) != 1:
            has = "none" if not given else " and ".join(given)
            self.fault(
                "NOARK-REFERANSE",
                location,
                "needs exactly one of referanseForelderMappe, referanseArkivdel and "
                f"referanseKlasse; it has {has}",
            )
            return
        reference = registrering.referanse_forelder_mappe
        if (
            reference is not None
            and parent is not None
            and parent.system_id is not None
            and _guid_key(reference) != _guid_key(parent.system_id)
        ):
            self.fault(
                "NOARK-REFERANSE",
                f"{location}/referanseForelderMappe",
                f"{reference!r} is not the systemID of the mappe it sits in ({parent.system_id!r})",
            )

    def documents(self, registrering: Registrering, location: str) -> None:
        beskrivelser = registrering.dokumentbeskrivelser
        if self.strict and not beskrivelser:
            self.fault(
                "NOARK-DOKUMENTBESKRIVELSE",
                location,
                "has no dokumentbeskrivelse: it describes no document",
            )
        if self.strict and beskrivelser:
            main = sum(
                1
                for b in beskrivelser
                if b.tilknyttet_registrering_som == TilknyttetRegistreringSom.HOVEDDOKUMENT
            )
            if main != 1:
                self.fault(
                    "NOARK-HOVEDDOKUMENT",
                    location,
                    f"has {main} dokumentbeskrivelser tilknyttet som Hoveddokument; "
                    "a registration has exactly one main document, the rest are Vedlegg",
                )
            seen: set[int] = set()
            for index, beskrivelse in enumerate(beskrivelser, start=1):
                number = beskrivelse.dokumentnummer
                if number is not None and number in seen:
                    self.fault(
                        "NOARK-DOKUMENTNUMMER",
                        f"{location}/dokumentbeskrivelse[{index}]/dokumentnummer",
                        f"dokumentnummer {number} is used twice in this registration",
                    )
                if number is not None:
                    seen.add(number)
        for index, beskrivelse in enumerate(beskrivelser, start=1):
            self.dokumentbeskrivelse(beskrivelse, f"{location}/dokumentbeskrivelse[{index}]")
        for index, objekt in enumerate(registrering.dokumentobjekter, start=1):
            where = f"{location}/dokumentobjekt[{index}]"
            if self.strict:
                self.fault(
                    "NOARK-LOOSE-DOKUMENTOBJEKT",
                    where,
                    "a dokumentobjekt outside any dokumentbeskrivelse: eFormidling ignores it; "
                    "put it in a dokumentbeskrivelse",
                )
            self.dokumentobjekt(objekt, where)

    def dokumentbeskrivelse(self, beskrivelse: Dokumentbeskrivelse, location: str) -> None:
        self.required(beskrivelse, location, _DOKUMENTBESKRIVELSE_REQUIRED)
        self.not_blank(beskrivelse.tittel, location, "tittel")
        self.system_id(beskrivelse.system_id, location)
        self.code(beskrivelse.dokumentstatus, Dokumentstatus, location, "dokumentstatus")
        self.code(
            beskrivelse.tilknyttet_registrering_som,
            TilknyttetRegistreringSom,
            location,
            "tilknyttetRegistreringSom",
        )
        self.skjerming(beskrivelse.skjerming, location)
        for index, objekt in enumerate(beskrivelse.dokumentobjekter, start=1):
            self.dokumentobjekt(objekt, f"{location}/dokumentobjekt[{index}]")

    def dokumentobjekt(self, objekt: Dokumentobjekt, location: str) -> None:
        self.required(objekt, location, _DOKUMENTOBJEKT_REQUIRED)
        self.code(objekt.variantformat, Variantformat, location, "variantformat")
        name = objekt.referanse_dokumentfil
        if name is None or not name:
            self.fault(
                "NOARK-REFERANSEDOKUMENTFIL",
                location,
                "referanseDokumentfil is "
                + ("missing" if name is None else "empty")
                + ": the dokumentobjekt names no file of the message",
            )
            return
        self.references.append((f"{location}/referanseDokumentfil", name))

    # ------------------------------------------------------------------ files

    def file_references(self, doc: Arkivmelding) -> None:
        limits = self.limits
        for location, name in self.references:
            fault = file_name_fault(name, max_length=limits.max_file_name_length)
            if fault is not None:
                self.fault(fault[0], location, fault[1])
            elif self.files is not None and name not in self.files:
                self.fault("NOARK-FILE-MISSING", location, self.missing(name))
        distinct = {name for _, name in self.references}
        if len(self.references) > limits.max_dokumentobjekter:
            self.fault(
                "NOARK-LIMIT",
                "/arkivmelding",
                f"{len(self.references)} file references; at most "
                f"{limits.max_dokumentobjekter} are accepted",
            )
        if len(distinct) > limits.max_files:
            self.fault(
                "NOARK-LIMIT",
                "/arkivmelding",
                f"refers to {len(distinct)} files; at most {limits.max_files} are accepted",
            )
        if self.strict and doc.antall_filer is not None and doc.antall_filer != len(distinct):
            self.fault(
                "NOARK-ANTALL-FILER",
                "/arkivmelding/antallFiler",
                f"antallFiler is {doc.antall_filer}, but the arkivmelding refers to "
                f"{len(distinct)} distinct file(s) (arkivmelding.xml itself not counted)",
            )

    def missing(self, name: str) -> str:
        assert self.files is not None
        text = f"{name!r} is not among the message's files"
        folded = unicodedata.normalize("NFC", name).casefold()
        near = sorted(f for f in self.files if unicodedata.normalize("NFC", f).casefold() == folded)
        if near:
            text += f" ({near[0]!r} is: file names are compared exactly)"
        return text
