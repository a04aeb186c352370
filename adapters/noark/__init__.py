"""The NOARK case-system edge: the arkivmelding and its kvittering, read, judged and written.

An arkivmelding (NOARK 5, the variant eFormidling defines in its ``arkivmelding.xsd``) is the
``arkivmelding.xml`` of an eFormidling message: the case file (saksmappe), the journal entry
(journalpost) and the description of each document with the name of its file. The receiving
case system answers with an ``arkivmelding_kvittering``. Pure core: bytes and values in, bytes
and frozen values out.

=================  ============================================================================
``model``          the arkivmelding as frozen values, NOARK code lists as enums
``parse``          untrusted bytes → model, through the hardened XML parser
``validate``       the rules (``NOARK-...``): strict for senders, lenient for receivers
``build``          model → ``arkivmelding.xml``; the minimal arkivmelding ``budstikke send`` writes
``kvittering``     the arkivmelding_kvittering: model, XML and JSON forms, AppReceipt reading
``limits``         how much is read and accepted
``errors``         :class:`ArkivmeldingError` (an ``EnvelopeError``) and :class:`NoarkViolation`
=================  ============================================================================

Typical use::

    doc = parse_arkivmelding(data)                       # raises on hostile or unreadable XML
    violations = validate_arkivmelding(doc, file_names)  # [] when it passes
    answer = build_kvittering(kvittering_for(message_id, violations))
"""

from __future__ import annotations

from adapters.noark.build import build_arkivmelding, minimal_arkivmelding
from adapters.noark.errors import ArkivmeldingError, NoarkViolation
from adapters.noark.kvittering import (
    KVITTERING_PROCESS,
    KVITTERING_STANDARD,
    KVITTERING_TYPE,
    Kvittering,
    KvitteringMessage,
    ReceiptType,
    build_kvittering,
    kvittering_for,
    kvittering_from_json,
    kvittering_from_message,
    parse_kvittering,
)
from adapters.noark.limits import DEFAULT_LIMITS, NoarkLimits
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
from adapters.noark.parse import parse_arkivmelding
from adapters.noark.validate import check_arkivmelding, validate_arkivmelding

__all__ = [
    "ARKIVMELDING_NS",
    "DEFAULT_LIMITS",
    "KVITTERING_PROCESS",
    "KVITTERING_STANDARD",
    "KVITTERING_TYPE",
    "Arkivmelding",
    "ArkivmeldingError",
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
    "Kvittering",
    "KvitteringMessage",
    "Mappe",
    "NoarkLimits",
    "NoarkViolation",
    "ReceiptType",
    "Registrering",
    "Saksmappe",
    "Saksstatus",
    "Skjerming",
    "SkjermingDokument",
    "TilknyttetRegistreringSom",
    "Variantformat",
    "build_arkivmelding",
    "build_kvittering",
    "check_arkivmelding",
    "kvittering_for",
    "kvittering_from_json",
    "kvittering_from_message",
    "minimal_arkivmelding",
    "parse_arkivmelding",
    "parse_kvittering",
    "validate_arkivmelding",
]
