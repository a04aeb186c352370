"""Judging an SBD: SBDH 1.3 structure, then the rules of the network it travels on.

:func:`validate_sbd` takes the bytes of an XML or JSON SBD and returns a
:class:`ValidationReport` listing every broken rule; :func:`check_sbd` raises instead and
returns the model. Rules come in layers:

* **xmlsafe** (``xml-dtd``, ``xml-size``, ...) - refused by the hardened parser; nothing else is
  judged then. JSON has its own (``json-well-formed``, ``json-duplicate-key``, ...).
* **structure** (``sbdh-*``) - the SBDH 1.3 content model, checked while reading
  (:mod:`sbdh.xmlform`), and the JSON shape (``json-structure``).
* **profile** - what a network adds. Violations of the profile come first in the report: they
  name the problem in the network's own terms, and the structure violation that often comes with
  them (a missing ``Sender`` is both ``too-few-senders`` and ``sbdh-missing-element``) follows.

Profiles (:class:`Profile`):

``PEPPOL``
    *Peppol Business Message Envelope (SBDH) 2.0*. Rule ids are those of the reference test
    files (``bad-<rule>.xml``): ``invalid-header-version``, ``too-few-senders``,
    ``too-many-senders``, ``invalid-sender-authority``, ``invalid-sender-value`` (and the
    receiver ones), ``invalid-standard``, ``invalid-type-version``, ``invalid-type``,
    ``invalid-instance-identifier``, ``invalid-creation-date-and-time``, ``no-business-scope``,
    ``too-few-scopes``, ``no-document-type-identifier``, ``invalid-document-type-identifier``,
    ``no-process-identifier``, ``invalid-process-identifier``, ``no-country-c1``, ``mls-to-empty``,
    ``mls-to-no-value``, ``mls-to-no-scheme``, ``mls-to-invalid-value``, ``mls-type-empty``,
    ``mls-type-invalid-value``, ``no-sbdh``, ``no-business-message``,
    ``invalid-business-message``; plus ``invalid-country-c1``, ``mls-to-invalid-scheme`` and
    ``duplicate-scope``. ``Standard``, ``Type`` and ``TypeVersion`` are checked against the
    payload root (namespace, local name) and the document type identifier (its namespace prefix
    and its ``::<version>`` suffix), as the envelope specification ties them; the payload's
    ``cbc:UBLVersionID`` is not compared (the reference "good" samples differ from it).
    A DOCUMENTID or PROCESSID scope without ``Identifier`` takes the default scheme.
    The two business-message ids follow the reference files: ``invalid-business-message`` when
    nothing follows the header, ``no-business-message`` when only text does.
``EFORMIDLING``
    eFormidling (NextMove): header version 1.0, one sender and one receiver with an authority and
    a valid organisation number (``0192``/``9908``, mod 11) or national id, the document
    identification filled in with a zoned ``CreationDateAndTime``, a ``ConversationId`` scope
    (``no-conversation-id``) whose ``Identifier`` names the process (``no-process-identifier``),
    a valid ``ExpectedResponseDateTime`` (``invalid-expected-response-date-time``), and a
    business message.
``GENERIC``
    SBDH 1.3 structure only; a bare ``StandardBusinessDocumentHeader`` document is acceptable.
``AUTO``
    Chosen from the document: eFormidling when the business message is a NextMove message or the
    ``Standard`` is an eFormidling one; generic for a bare header or a header with no Peppol
    sign (no ``iso6523-actorid-upis`` authority, no DOCUMENTID/PROCESSID); Peppol otherwise,
    including when the header is missing. Where the network is known (an AS4 inbox), pass the
    profile: a sender must not be able to pick the rules it is judged by.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from lxml import etree

from sbdh.errors import EnvelopeError, InvalidIdentifier, InvalidInput, Violation
from sbdh.identifiers import (
    ICD_NO_ORGNR,
    ICD_NO_ORGNR_LEGACY,
    PARTICIPANT_SCHEME,
    NationalId,
    ParticipantId,
)
from sbdh.jsonform import read_json
from sbdh.model import (
    DOCTYPE_SCHEME,
    DOCTYPE_SCHEME_WILDCARD,
    ENVELOPE_NS,
    HEADER_VERSION,
    NEXTMOVE_NS,
    PROCESS_SCHEME,
    BinaryContent,
    BusinessMessage,
    CorrelationInformation,
    DetachedPayload,
    MlsType,
    Partner,
    Payload,
    ScopeType,
    StandardBusinessDocument,
    StandardBusinessDocumentHeader,
    TextContent,
    XmlPayload,
    is_xs_datetime,
)
from sbdh.xmlform import Reading, read_sbd
from sbdh.xmlsafe import parse_xml

__all__ = [
    "Profile",
    "ValidationReport",
    "check_reading",
    "check_sbd",
    "validate_document",
    "validate_sbd",
]


class Profile(enum.StrEnum):
    AUTO = "auto"
    PEPPOL = "peppol"
    EFORMIDLING = "eformidling"
    GENERIC = "generic"


@dataclass(frozen=True)
class ValidationReport:
    """The verdict on one document: the profile applied and every violation, most specific first."""

    profile: Profile
    violations: tuple[Violation, ...] = ()
    #: the model, when the document could be read into one (valid or not)
    document: StandardBusinessDocument | None = field(default=None, compare=False, repr=False)

    @property
    def valid(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "profile": self.profile.value,
            "errors": [v.as_dict() for v in self.violations],
        }


# ISO 3166-1 alpha-2, officially assigned codes; plus the codes in use for Kosovo, which has
# none: "XK" (user-assigned, used by the EU) and "1A" (the EN 16931 country code list).
_ISO_3166_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW XK 1A
"""
_ISO_3166_ALPHA2 = frozenset(_ISO_3166_CODES.split())
#: the Standard prefixes of eFormidling document types
_EFORMIDLING_STANDARDS = ("urn:no:difi:", "urn:fdc:digdir.no:")
#: Peppol Policy for use of identifiers: longest document type and process identifier values
_MAX_DOCTYPE_LENGTH = 500
_MAX_PROCESS_LENGTH = 200
_EFORMIDLING_AUTHORITIES = ("iso6523-actorid-upis", "iso3166-1", "iso3166-1-alfa2")


@dataclass(frozen=True)
class _Message:
    """What the rules need to know about the business message."""

    present: bool
    text_only: bool = False
    namespace: str | None = None
    local_name: str | None = None


def _message_of(payload: Payload | None) -> _Message:
    if payload is None:
        return _Message(False)
    if isinstance(payload, XmlPayload):
        return _Message(True, namespace=payload.namespace, local_name=payload.local_name)
    if isinstance(payload, BusinessMessage):
        return _Message(True, namespace=NEXTMOVE_NS, local_name=payload.type)
    if isinstance(payload, DetachedPayload):
        return _Message(True, namespace=payload.namespace, local_name=payload.local_name)
    name = "BinaryContent" if isinstance(payload, BinaryContent) else "TextContent"
    assert isinstance(payload, BinaryContent | TextContent)
    return _Message(True, namespace=ENVELOPE_NS, local_name=name)


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


# --------------------------------------------------------------------------- Peppol


def _peppol_partners(kind: str, partners: tuple[Partner, ...], out: list[Violation]) -> None:
    plural = f"{kind}s"
    if not partners:
        out.append(
            Violation(f"too-few-{plural}", f"a Peppol SBD needs exactly one {kind}, found none")
        )
        return
    if len(partners) > 1:
        out.append(
            Violation(
                f"too-many-{plural}",
                f"a Peppol SBD needs exactly one {kind}, found {len(partners)}",
            )
        )
        return
    identifier = partners[0].identifier
    authority = identifier.authority
    if authority is None or authority.lower() != PARTICIPANT_SCHEME:
        out.append(
            Violation(
                f"invalid-{kind}-authority",
                f"{kind} Authority must be {PARTICIPANT_SCHEME!r}, got {authority!r}",
            )
        )
    try:
        ParticipantId(identifier.value)
    except InvalidIdentifier as exc:
        out.append(
            Violation(
                f"invalid-{kind}-value",
                f"{kind} identifier {identifier.value!r} is not a valid participant id: {exc}",
            )
        )


def _doctype_parts(value: str) -> tuple[str, str, str] | None:
    syntax, sep, rest = value.partition("##")
    namespace, sep2, local_name = syntax.rpartition("::")
    if not (sep and sep2 and namespace and local_name and "::" in rest):
        return None
    return namespace, local_name, rest.rpartition("::")[2]


def _peppol_identification(
    header: StandardBusinessDocumentHeader, message: _Message, out: list[Violation]
) -> None:
    ident = header.document_identification
    doc_ids = header.scopes_of(ScopeType.DOCUMENTID)
    doc_id = doc_ids[0].instance_identifier if len(doc_ids) == 1 else None
    parts = _doctype_parts(doc_id) if doc_id else None
    standard, version, doc_type = ident.standard, ident.type_version, ident.type
    if _blank(standard):
        out.append(Violation("invalid-standard", "DocumentIdentification/Standard is empty"))
    elif message.present and message.namespace is not None and standard != message.namespace:
        out.append(
            Violation(
                "invalid-standard",
                f"Standard {standard!r} is not the business message namespace "
                f"{message.namespace!r}",
            )
        )
    elif parts is not None and parts[0] != standard:
        out.append(
            Violation(
                "invalid-standard",
                f"Standard {standard!r} is not the namespace of the document type identifier",
            )
        )
    if _blank(version) or ":" in version:
        out.append(
            Violation("invalid-type-version", f"TypeVersion {version!r} is empty or has a colon")
        )
    elif doc_id and not doc_id.endswith("::" + version):
        out.append(
            Violation(
                "invalid-type-version",
                f"TypeVersion {version!r} is not the version of the document type identifier",
            )
        )
    if _blank(doc_type):
        out.append(Violation("invalid-type", "DocumentIdentification/Type is empty"))
    elif message.present and message.local_name is not None and doc_type != message.local_name:
        out.append(
            Violation(
                "invalid-type",
                f"Type {doc_type!r} is not the business message element {message.local_name!r}",
            )
        )
    elif parts is not None and parts[1] != doc_type:
        out.append(
            Violation(
                "invalid-type", f"Type {doc_type!r} is not named by the document type identifier"
            )
        )
    if _blank(ident.instance_identifier):
        out.append(
            Violation(
                "invalid-instance-identifier", "DocumentIdentification/InstanceIdentifier is empty"
            )
        )
    if not is_xs_datetime(ident.creation_date_and_time.strip(), require_timezone=True):
        out.append(
            Violation(
                "invalid-creation-date-and-time",
                f"CreationDateAndTime {ident.creation_date_and_time!r} is not an xs:dateTime with "
                "a timezone",
            )
        )


def _peppol_scopes(header: StandardBusinessDocumentHeader, out: list[Violation]) -> None:
    if header.business_scope is None:
        out.append(
            Violation(
                "no-business-scope",
                "a Peppol SBD needs a BusinessScope (DOCUMENTID, PROCESSID, COUNTRY_C1)",
            )
        )
        return
    if len(header.scopes) < 3:
        out.append(
            Violation(
                "too-few-scopes",
                "a Peppol SBD needs at least 3 scopes (DOCUMENTID, PROCESSID, COUNTRY_C1), "
                f"found {len(header.scopes)}",
            )
        )
    for scope_type in (
        ScopeType.DOCUMENTID,
        ScopeType.PROCESSID,
        ScopeType.COUNTRY_C1,
        ScopeType.MLS_TO,
        ScopeType.MLS_TYPE,
    ):
        if len(header.scopes_of(scope_type)) > 1:
            out.append(
                Violation("duplicate-scope", f"the {scope_type} scope appears more than once")
            )

    doc = header.scope(ScopeType.DOCUMENTID)
    if doc is None:
        out.append(Violation("no-document-type-identifier", "the DOCUMENTID scope is missing"))
    else:
        value, scheme = doc.instance_identifier, doc.identifier
        if value is None or _blank(value):
            out.append(
                Violation("invalid-document-type-identifier", "the DOCUMENTID value is empty")
            )
        elif len(value) > _MAX_DOCTYPE_LENGTH:
            out.append(
                Violation(
                    "invalid-document-type-identifier",
                    f"the DOCUMENTID value is longer than {_MAX_DOCTYPE_LENGTH} characters",
                )
            )
        elif scheme is not None and scheme not in (DOCTYPE_SCHEME, DOCTYPE_SCHEME_WILDCARD):
            out.append(
                Violation(
                    "invalid-document-type-identifier",
                    f"DOCUMENTID scheme {scheme!r} is not {DOCTYPE_SCHEME!r} or "
                    f"{DOCTYPE_SCHEME_WILDCARD!r}",
                )
            )
        elif _doctype_parts(value) is None:
            out.append(
                Violation(
                    "invalid-document-type-identifier",
                    f"DOCUMENTID {value!r} is not <namespace>::<name>##<customization>::<version>",
                )
            )

    process = header.scope(ScopeType.PROCESSID)
    if process is None:
        out.append(Violation("no-process-identifier", "the PROCESSID scope is missing"))
    else:
        value, scheme = process.instance_identifier, process.identifier
        if value is None or _blank(value):
            out.append(Violation("invalid-process-identifier", "the PROCESSID value is empty"))
        elif len(value) > _MAX_PROCESS_LENGTH:
            out.append(
                Violation(
                    "invalid-process-identifier",
                    f"the PROCESSID value is longer than {_MAX_PROCESS_LENGTH} characters",
                )
            )
        elif scheme is not None and scheme != PROCESS_SCHEME:
            out.append(
                Violation(
                    "invalid-process-identifier",
                    f"PROCESSID scheme {scheme!r} is not {PROCESS_SCHEME!r}",
                )
            )

    country = header.scope(ScopeType.COUNTRY_C1)
    if country is None:
        out.append(
            Violation("no-country-c1", "the COUNTRY_C1 scope (the sender's country) is missing")
        )
    elif country.instance_identifier not in _ISO_3166_ALPHA2:
        out.append(
            Violation(
                "invalid-country-c1",
                f"COUNTRY_C1 {country.instance_identifier!r} is not an ISO 3166-1 alpha-2 code",
            )
        )

    mls_to = header.scope(ScopeType.MLS_TO)
    if mls_to is not None:
        value, scheme = mls_to.instance_identifier, mls_to.identifier
        if _blank(value) and _blank(scheme):
            out.append(Violation("mls-to-empty", "the MLS_TO scope has neither value nor scheme"))
        elif value is None or _blank(value):
            out.append(Violation("mls-to-no-value", "the MLS_TO scope has no participant id"))
        elif scheme is None or _blank(scheme):
            out.append(Violation("mls-to-no-scheme", "the MLS_TO scope has no identifier scheme"))
        elif scheme.lower() != PARTICIPANT_SCHEME:
            out.append(
                Violation(
                    "mls-to-invalid-scheme",
                    f"MLS_TO scheme {scheme!r} is not {PARTICIPANT_SCHEME!r}",
                )
            )
        else:
            try:
                ParticipantId(value, scheme)
            except InvalidIdentifier as exc:
                out.append(
                    Violation(
                        "mls-to-invalid-value",
                        f"MLS_TO {value!r} is not a valid participant id: {exc}",
                    )
                )

    mls_type = header.scope(ScopeType.MLS_TYPE)
    if mls_type is not None:
        value = mls_type.instance_identifier
        if value is None or _blank(value):
            out.append(Violation("mls-type-empty", "the MLS_TYPE scope has no value"))
        elif value not in {m.value for m in MlsType}:
            out.append(
                Violation(
                    "mls-type-invalid-value",
                    f"MLS_TYPE {value!r} is not one of {', '.join(m.value for m in MlsType)}",
                )
            )


def _business_message(message: _Message, out: list[Violation]) -> None:
    if message.present:
        return
    if message.text_only:
        out.append(
            Violation("no-business-message", "the SBD carries text, not a business message element")
        )
    else:
        out.append(
            Violation(
                "invalid-business-message",
                "the SBD ends after its header: the business message is missing",
            )
        )


def _header_version(header: StandardBusinessDocumentHeader, out: list[Violation]) -> None:
    if header.header_version != HEADER_VERSION:
        out.append(
            Violation(
                "invalid-header-version",
                f"HeaderVersion must be {HEADER_VERSION!r}, got {header.header_version!r}",
            )
        )


def _peppol(header: StandardBusinessDocumentHeader | None, message: _Message) -> list[Violation]:
    out: list[Violation] = []
    if header is None:
        return out
    _header_version(header, out)
    _peppol_partners("sender", header.senders, out)
    _peppol_partners("receiver", header.receivers, out)
    _peppol_identification(header, message, out)
    _peppol_scopes(header, out)
    _business_message(message, out)
    return out


# --------------------------------------------------------------------------- eFormidling


def _eformidling_partners(kind: str, partners: tuple[Partner, ...], out: list[Violation]) -> None:
    plural = f"{kind}s"
    if len(partners) != 1:
        rule = f"too-few-{plural}" if not partners else f"too-many-{plural}"
        out.append(
            Violation(rule, f"an eFormidling SBD has exactly one {kind}, found {len(partners)}")
        )
        return
    identifier = partners[0].identifier
    if identifier.authority not in _EFORMIDLING_AUTHORITIES:
        out.append(
            Violation(
                f"invalid-{kind}-authority",
                f"{kind} Authority {identifier.authority!r} is not one of "
                f"{', '.join(_EFORMIDLING_AUTHORITIES)}",
            )
        )
        return
    value = identifier.value
    try:
        if value.startswith(("NO:", "no:")):
            NationalId(value[3:])  # the person form in the DPI schemas
        elif len(value) == 11 and value.isdigit():
            NationalId(value)
        else:
            participant = ParticipantId(value)
            if participant.icd not in (ICD_NO_ORGNR, ICD_NO_ORGNR_LEGACY):
                raise InvalidIdentifier(
                    f"ICD {participant.icd} is not a Norwegian organisation number",
                    rule="participant-icd",
                )
    except InvalidIdentifier as exc:
        # NationalId masks itself; never echo a rejected value that may be one
        shown = (
            value if not value.replace("NO:", "").isdigit() or len(value) < 11 else "(national id)"
        )
        out.append(
            Violation(
                f"invalid-{kind}-value",
                f"{kind} {shown!r} is neither an organisation number nor a national id: {exc}",
            )
        )


def _eformidling(
    header: StandardBusinessDocumentHeader | None, message: _Message
) -> list[Violation]:
    out: list[Violation] = []
    if header is None:
        return out
    _header_version(header, out)
    _eformidling_partners("sender", header.senders, out)
    _eformidling_partners("receiver", header.receivers, out)
    ident = header.document_identification
    for rule, value, name in (
        ("invalid-standard", ident.standard, "Standard"),
        ("invalid-type-version", ident.type_version, "TypeVersion"),
        ("invalid-type", ident.type, "Type"),
        ("invalid-instance-identifier", ident.instance_identifier, "InstanceIdentifier"),
    ):
        if _blank(value):
            out.append(Violation(rule, f"DocumentIdentification/{name} is empty"))
    if not is_xs_datetime(ident.creation_date_and_time.strip(), require_timezone=True):
        out.append(
            Violation(
                "invalid-creation-date-and-time",
                f"CreationDateAndTime {ident.creation_date_and_time!r} is not an xs:dateTime "
                "with a timezone",
            )
        )
    if header.business_scope is None:
        out.append(Violation("no-business-scope", "an eFormidling SBD needs a BusinessScope"))
    else:
        conversations = header.scopes_of(ScopeType.CONVERSATION_ID)
        if len(conversations) > 1:
            out.append(
                Violation("duplicate-scope", "the ConversationId scope appears more than once")
            )
        if not conversations or _blank(conversations[0].instance_identifier):
            out.append(
                Violation("no-conversation-id", "the ConversationId scope is missing or empty")
            )
        if conversations and _blank(conversations[0].identifier):
            out.append(
                Violation(
                    "no-process-identifier",
                    "the ConversationId scope does not name the process (Identifier)",
                )
            )
        for scope in header.scopes:
            for info in scope.scope_information:
                expected = (
                    info.expected_response_date_time
                    if isinstance(info, CorrelationInformation)
                    else None
                )
                if expected is not None and not is_xs_datetime(expected.strip()):
                    out.append(
                        Violation(
                            "invalid-expected-response-date-time",
                            f"ExpectedResponseDateTime {expected!r} is not an xs:dateTime",
                        )
                    )
    _business_message(message, out)
    return out


# --------------------------------------------------------------------------- entry points


def _resolve(
    profile: Profile,
    header: StandardBusinessDocumentHeader | None,
    payload: Payload | None,
    *,
    bare_header: bool = False,
) -> Profile:
    if profile is not Profile.AUTO:
        return profile
    if header is None:
        return Profile.GENERIC if bare_header else Profile.PEPPOL
    nextmove = isinstance(payload, BusinessMessage) or (
        isinstance(payload, DetachedPayload) and payload.namespace == NEXTMOVE_NS
    )
    if nextmove or header.document_identification.standard.startswith(_EFORMIDLING_STANDARDS):
        return Profile.EFORMIDLING
    authorities = {
        (p.identifier.authority or "").lower() for p in header.senders + header.receivers
    }
    peppol_scopes = header.scopes_of(ScopeType.DOCUMENTID) + header.scopes_of(ScopeType.PROCESSID)
    if PARTICIPANT_SCHEME in authorities or peppol_scopes:
        return Profile.PEPPOL
    return Profile.GENERIC


def _profile_rules(
    profile: Profile, header: StandardBusinessDocumentHeader | None, message: _Message
) -> list[Violation]:
    if profile is Profile.PEPPOL:
        return _peppol(header, message)
    if profile is Profile.EFORMIDLING:
        return _eformidling(header, message)
    return []


def _merge(first: list[Violation], then: tuple[Violation, ...]) -> tuple[Violation, ...]:
    seen = set(first)
    return tuple(first) + tuple(v for v in then if v not in seen)


def validate_document(
    document: StandardBusinessDocument, profile: Profile = Profile.AUTO
) -> ValidationReport:
    """Judge a model (built in code or read elsewhere) by ``profile``'s rules."""
    chosen = _resolve(profile, document.header, document.payload)
    violations = _profile_rules(chosen, document.header, _message_of(document.payload))
    return ValidationReport(chosen, tuple(violations), document)


def _is_json(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _judge(data: bytes, profile: Profile) -> ValidationReport:
    """Judge parsed input; lets the parser's :class:`InvalidInput` through."""
    if _is_json(data):
        reading = read_json(data)
        document = reading.document
        header = document.header if document else None
        payload = document.payload if document else None
        chosen = _resolve(profile, header, payload)
        found = _profile_rules(chosen, header, _message_of(payload))
        return ValidationReport(chosen, _merge(found, reading.violations), document)
    return _judge_reading(read_sbd(parse_xml(data)), profile)


def _judge_reading(xml: Reading, profile: Profile) -> ValidationReport:
    """Judge what the XML reader found (of a parsed document, or of a streamed one)."""
    payload = xml.document.payload if xml.document else None
    chosen = _resolve(profile, xml.header, payload, bare_header=xml.bare_header)
    rules: list[Violation] = []
    if chosen in (Profile.PEPPOL, Profile.EFORMIDLING):
        if xml.bare_header:
            rules.append(
                Violation("sbdh-root", "a StandardBusinessDocumentHeader on its own is not an SBD")
            )
        elif not xml.has_header and not any(v.rule == "sbdh-root" for v in xml.violations):
            rules.append(Violation("no-sbdh", "the SBD has no StandardBusinessDocumentHeader"))
        if xml.payload_element is None:
            message = _Message(False, text_only=xml.text_instead_of_message)
        else:
            qname = etree.QName(xml.payload_element)
            message = _Message(True, namespace=qname.namespace, local_name=qname.localname)
        rules += _profile_rules(chosen, xml.header, message)
    return ValidationReport(chosen, _merge(rules, xml.violations), xml.document)


def validate_sbd(data: bytes, profile: Profile = Profile.AUTO) -> ValidationReport:
    """Judge an XML or JSON SBD (told apart by the first character). Never raises for bad input:
    refusals of the hardened parser are violations too, under the parser's own rule id."""
    try:
        return _judge(data, profile)
    except InvalidInput as exc:
        chosen = profile if profile is not Profile.AUTO else Profile.GENERIC
        return ValidationReport(chosen, (Violation(exc.rule or exc.code, exc.message),))


def check_sbd(data: bytes, profile: Profile = Profile.AUTO) -> StandardBusinessDocument:
    """Like :func:`validate_sbd`, but return the model and raise on any problem.

    Raises :class:`~sbdh.errors.XmlSecurityError` / :class:`~sbdh.errors.InvalidInput` for input
    the parsers refuse and :class:`~sbdh.errors.EnvelopeError` (with every violation) for an SBD
    that breaks a rule.
    """
    return _checked(_judge(data, profile))


def check_reading(reading: Reading, profile: Profile = Profile.AUTO) -> StandardBusinessDocument:
    """Like :func:`check_sbd`, for a document the XML reader has read already: what
    :mod:`sbdh.stream` makes of an SBD too large to parse whole (its business message a
    :class:`~sbdh.model.DetachedPayload`, judged by its root element's name as any other)."""
    return _checked(_judge_reading(reading, profile))


def _checked(report: ValidationReport) -> StandardBusinessDocument:
    if not report.valid:
        raise EnvelopeError(report.violations)
    if report.document is None:
        raise EnvelopeError(
            [Violation("sbdh-root", "the document is a header on its own, not an SBD")]
        )
    return report.document
