"""Read SMP documents of all three formats into :mod:`elma.model` values.

The format is told by the root element's namespace; the bytes go through the project's one
hardened parser (:func:`sbdh.xmlsafe.parse_xml`) first. The reader is strict where routing
depends on it (identifiers, addresses, transport profiles, certificates, dates, booleans; each
required element present exactly once) and lenient elsewhere: extensions and elements it does
not know are skipped, and an empty description reads as ``None``.

Every problem is an :class:`~elma.errors.SmpDocumentError` whose rule names the check and whose
message names the element, as a path like ``/SignedServiceMetadata/ServiceMetadata/
ServiceInformation/ProcessList/Process[2]/ServiceEndpointList/Endpoint``.

These functions do **not** check signatures: route only on what :mod:`elma.verify` returns.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from lxml import etree

from elma.errors import SmpDocumentError
from elma.model import (
    DocumentTypeId,
    Endpoint,
    ParticipantId,
    Process,
    ProcessId,
    Redirect,
    ServiceGroup,
    ServiceMetadata,
    ServiceReference,
)
from elma.paths import document_type_from_href
from elma.spec import NS, SMP2_VERSION, SmpFormat
from sbdh.xmlsafe import DEFAULT_LIMITS, XmlLimits, parse_xml

__all__ = [
    "detect_format",
    "parse_service_group",
    "parse_service_metadata",
    "service_group_from_element",
    "service_metadata_from_element",
]

_T = TypeVar("_T")

#: (namespace, local name) of every root element we read, and what it is
_ROOTS: dict[tuple[str, str], tuple[SmpFormat, str]] = {
    (NS.SMP, "ServiceGroup"): (SmpFormat.PEPPOL, "ServiceGroup"),
    (NS.SMP, "SignedServiceMetadata"): (SmpFormat.PEPPOL, "ServiceMetadata"),
    (NS.SMP, "ServiceMetadata"): (SmpFormat.PEPPOL, "ServiceMetadata"),
    (NS.BDXR1, "ServiceGroup"): (SmpFormat.BDXR1, "ServiceGroup"),
    (NS.BDXR1, "SignedServiceMetadata"): (SmpFormat.BDXR1, "ServiceMetadata"),
    (NS.BDXR1, "ServiceMetadata"): (SmpFormat.BDXR1, "ServiceMetadata"),
    (NS.SMP2_GROUP, "ServiceGroup"): (SmpFormat.SMP2, "ServiceGroup"),
    (NS.SMP2_METADATA, "ServiceMetadata"): (SmpFormat.SMP2, "ServiceMetadata"),
}

_DATETIME = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:\d{2})?$"
)
_DATE = re.compile(r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?P<tz>Z|[+-]\d{2}:\d{2})?$")


# --------------------------------------------------------------------------- element access


def _q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _where(element: etree._Element) -> str:
    """``/A/B[2]/C``: local names, with a position where siblings share the name."""
    parts: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        parent = node.getparent()
        name = _local(node)
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def _fail(element: etree._Element, message: str, rule: str) -> SmpDocumentError:
    return SmpDocumentError(f"{_where(element)}: {message}", rule=rule)


def _children(parent: etree._Element, ns: str, local: str) -> list[etree._Element]:
    return [c for c in parent if c.tag == _q(ns, local)]


def _optional(parent: etree._Element, ns: str, local: str) -> etree._Element | None:
    found = _children(parent, ns, local)
    if len(found) > 1:
        raise _fail(found[1], f"{local} may appear only once", "smp-repeated-element")
    return found[0] if found else None


def _one(parent: etree._Element, ns: str, local: str) -> etree._Element:
    found = _optional(parent, ns, local)
    if found is None:
        raise _fail(parent, f"required element {local} ({ns}) is missing", "smp-missing-element")
    return found


def _many(parent: etree._Element, ns: str, local: str) -> list[etree._Element]:
    found = _children(parent, ns, local)
    if not found:
        raise _fail(parent, f"at least one {local} ({ns}) is required", "smp-missing-element")
    return found


def _text(element: etree._Element) -> str:
    """The element's text content, surrounding whitespace removed; no child elements allowed."""
    if any(isinstance(c.tag, str) for c in element):
        raise _fail(element, "must hold text only, not elements", "smp-unexpected-content")
    return "".join(element.itertext()).strip()


def _required_text(element: etree._Element) -> str:
    text = _text(element)
    if not text:
        raise _fail(element, "must not be empty", "smp-empty-value")
    return text


def _optional_text(parent: etree._Element, ns: str, local: str) -> str | None:
    found = _optional(parent, ns, local)
    if found is None:
        return None
    return _text(found) or None


def _attribute(element: etree._Element, name: str, *, required: bool) -> str | None:
    value = element.get(name)
    if value is None or not value.strip():
        if required:
            raise _fail(element, f"attribute {name} is missing or empty", "smp-missing-attribute")
        return None
    return value.strip()


def _build(element: etree._Element, make: Callable[[], _T]) -> _T:
    """Construct a model value; a model invariant it breaks becomes a document error here."""
    try:
        return make()
    except ValueError as exc:
        raise _fail(element, str(exc), "smp-invalid-value") from exc


# --------------------------------------------------------------------------- value types


def _tz(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59 or (hours == 14 and minutes):
        raise ValueError(f"time zone {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _datetime(element: etree._Element) -> datetime:
    """An ``xs:dateTime``; without a zone it is read as UTC."""
    text = _required_text(element)
    match = _DATETIME.match(text)
    try:
        if match is None:
            raise ValueError("not of the form YYYY-MM-DDThh:mm:ss[.fff][Z|±hh:mm]")
        micro = int((match["frac"] or "0")[:6].ljust(6, "0"))
        return datetime(
            int(match["y"]),
            int(match["mo"]),
            int(match["d"]),
            int(match["h"]),
            int(match["mi"]),
            int(match["s"]),
            micro,
            tzinfo=_tz(match["tz"]),
        )
    except ValueError as exc:
        raise _fail(element, f"{text!r} is not a valid date and time: {exc}", "smp-date") from exc


def _date(element: etree._Element) -> datetime:
    """An ``xs:date`` (SMP 2.0), as midnight of that day in its zone (UTC when it has none)."""
    text = _required_text(element)
    match = _DATE.match(text)
    try:
        if match is None:
            raise ValueError("not of the form YYYY-MM-DD[Z|±hh:mm]")
        return datetime(int(match["y"]), int(match["mo"]), int(match["d"]), tzinfo=_tz(match["tz"]))
    except ValueError as exc:
        raise _fail(element, f"{text!r} is not a valid date: {exc}", "smp-date") from exc


def _boolean(element: etree._Element) -> bool:
    text = _required_text(element)
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _fail(element, f"{text!r} is not a boolean (true, false, 1 or 0)", "smp-boolean")


def _base64(element: etree._Element) -> bytes:
    text = _required_text(element)
    if text.startswith("-----BEGIN"):
        # a PEM block where base64 DER belongs: take the body
        lines = [line for line in text.splitlines() if not line.strip().startswith("-----")]
        text = "".join(lines)
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(element, f"not valid base64: {exc}", "smp-base64") from exc


# --------------------------------------------------------------------------- format detection


def detect_format(root: etree._Element) -> tuple[SmpFormat, str]:
    """The format of an SMP root element and what it holds (``ServiceGroup`` or
    ``ServiceMetadata``); :class:`SmpDocumentError` (rule ``smp-root``) for anything else."""
    if not isinstance(root.tag, str):
        raise SmpDocumentError("the document has no root element", rule="smp-root")
    qname = etree.QName(root)
    found = _ROOTS.get((qname.namespace or "", qname.localname))
    if found is None:
        raise SmpDocumentError(
            f"root element {{{qname.namespace or ''}}}{qname.localname} is not an SMP "
            "ServiceGroup, ServiceMetadata or SignedServiceMetadata of the Peppol, OASIS BDXR "
            "1.0 or OASIS SMP 2.0 formats",
            rule="smp-root",
        )
    return found


def _expect(root: etree._Element, kind: str) -> SmpFormat:
    smp_format, holds = detect_format(root)
    if holds != kind:
        raise SmpDocumentError(
            f"root element {_local(root)} is a {holds}, expected a {kind}", rule="smp-root"
        )
    return smp_format


# --------------------------------------------------------------------------- Peppol / BDXR 1.0


def _ids_ns(smp_format: SmpFormat) -> str:
    return NS.IDS if smp_format is SmpFormat.PEPPOL else NS.BDXR1


def _main_ns(smp_format: SmpFormat) -> str:
    return NS.SMP if smp_format is SmpFormat.PEPPOL else NS.BDXR1


def _v1_identifier(element: etree._Element) -> tuple[str | None, str]:
    scheme = _attribute(element, "scheme", required=False)
    return scheme, _required_text(element)


def _v1_participant(parent: etree._Element, smp_format: SmpFormat) -> ParticipantId:
    node = _one(parent, _ids_ns(smp_format), "ParticipantIdentifier")
    scheme, value = _v1_identifier(node)
    return _build(node, lambda: ParticipantId(scheme, value))


def _v1_endpoint(node: etree._Element, smp_format: SmpFormat) -> Endpoint:
    ns = _main_ns(smp_format)
    profile = _attribute(node, "transportProfile", required=True)
    assert profile is not None
    if smp_format is SmpFormat.PEPPOL:
        reference = _one(node, NS.WSA, "EndpointReference")
        address = _required_text(_one(reference, NS.WSA, "Address"))
    else:
        address = _required_text(_one(node, ns, "EndpointURI"))
    signature_flag = _optional(node, ns, "RequireBusinessLevelSignature")
    if signature_flag is None and smp_format is SmpFormat.PEPPOL:
        raise _fail(
            node, "required element RequireBusinessLevelSignature is missing", "smp-missing-element"
        )
    activation = _optional(node, ns, "ServiceActivationDate")
    expiration = _optional(node, ns, "ServiceExpirationDate")
    certificate = _base64(_one(node, ns, "Certificate"))
    return _build(
        node,
        lambda: Endpoint(
            transport_profile=profile,
            address=address,
            certificate=certificate,
            service_activation=_datetime(activation) if activation is not None else None,
            service_expiration=_datetime(expiration) if expiration is not None else None,
            require_business_level_signature=(
                _boolean(signature_flag) if signature_flag is not None else False
            ),
            minimum_authentication_level=_optional_text(node, ns, "MinimumAuthenticationLevel"),
            description=_optional_text(node, ns, "ServiceDescription"),
            technical_contact=_optional_text(node, ns, "TechnicalContactUrl"),
            technical_information=_optional_text(node, ns, "TechnicalInformationUrl"),
        ),
    )


def _v1_process(node: etree._Element, smp_format: SmpFormat) -> Process:
    ns = _main_ns(smp_format)
    id_node = _one(node, _ids_ns(smp_format), "ProcessIdentifier")
    scheme, value = _v1_identifier(id_node)
    process_id = _build(id_node, lambda: ProcessId(scheme, value))
    endpoint_list = _one(node, ns, "ServiceEndpointList")
    endpoints = tuple(_v1_endpoint(e, smp_format) for e in _many(endpoint_list, ns, "Endpoint"))
    return _build(node, lambda: Process(process_id, endpoints))


def _v1_metadata(element: etree._Element, smp_format: SmpFormat) -> ServiceMetadata:
    ns = _main_ns(smp_format)
    information = _optional(element, ns, "ServiceInformation")
    redirect = _optional(element, ns, "Redirect")
    if (information is None) == (redirect is None):
        raise _fail(
            element,
            "must hold exactly one of ServiceInformation and Redirect",
            "smp-missing-element" if information is None else "smp-unexpected-content",
        )
    if redirect is not None:
        href = _attribute(redirect, "href", required=True)
        assert href is not None
        uid = _required_text(_one(redirect, ns, "CertificateUID"))
        value = _build(redirect, lambda: Redirect(href, certificate_uid=uid))
        return ServiceMetadata(None, None, redirect=value, format=smp_format)
    assert information is not None
    participant = _v1_participant(information, smp_format)
    doc_node = _one(information, _ids_ns(smp_format), "DocumentIdentifier")
    doc_scheme, doc_value = _v1_identifier(doc_node)
    document_type = _build(doc_node, lambda: DocumentTypeId(doc_scheme, doc_value))
    process_list = _one(information, ns, "ProcessList")
    processes = tuple(_v1_process(p, smp_format) for p in _many(process_list, ns, "Process"))
    return ServiceMetadata(participant, document_type, processes, format=smp_format)


def _v1_group(root: etree._Element, smp_format: SmpFormat) -> ServiceGroup:
    ns = _main_ns(smp_format)
    participant = _v1_participant(root, smp_format)
    collection = _one(root, ns, "ServiceMetadataReferenceCollection")
    references: list[ServiceReference] = []
    for node in _children(collection, ns, "ServiceMetadataReference"):
        href = _attribute(node, "href", required=True)
        assert href is not None
        references.append(ServiceReference(document_type_from_href(href), href=href))
    return ServiceGroup(participant, tuple(references), smp_format)


# --------------------------------------------------------------------------- OASIS SMP 2.0


def _smp2_identifier(element: etree._Element) -> tuple[str | None, str]:
    return _attribute(element, "schemeID", required=False), _required_text(element)


def _smp2_version(root: etree._Element) -> None:
    node = _one(root, NS.SMP2_BASIC, "SMPVersionID")
    version = _required_text(node)
    if version != SMP2_VERSION:
        raise _fail(node, f"SMP version {version!r} is not {SMP2_VERSION}", "smp-version")


def _smp2_participant(root: etree._Element) -> ParticipantId:
    node = _one(root, NS.SMP2_BASIC, "ParticipantID")
    scheme, value = _smp2_identifier(node)
    return _build(node, lambda: ParticipantId(scheme, value))


def _smp2_process_id(node: etree._Element) -> tuple[ProcessId, tuple[str, ...]]:
    id_node = _one(node, NS.SMP2_BASIC, "ID")
    scheme, value = _smp2_identifier(id_node)
    roles = tuple(_required_text(r) for r in _children(node, NS.SMP2_BASIC, "RoleID"))
    return _build(id_node, lambda: ProcessId(scheme, value)), roles


def _smp2_certificates(parent: etree._Element) -> tuple[bytes, ...]:
    return tuple(
        _base64(_one(c, NS.SMP2_BASIC, "ContentBinaryObject"))
        for c in _children(parent, NS.SMP2_AGGREGATE, "Certificate")
    )


def _smp2_endpoint(node: etree._Element) -> Endpoint:
    profile = _required_text(_one(node, NS.SMP2_BASIC, "TransportProfileID"))
    address_node = _one(node, NS.SMP2_BASIC, "AddressURI")
    address = _required_text(address_node)
    activation = _optional(node, NS.SMP2_BASIC, "ActivationDate")
    expiration = _optional(node, NS.SMP2_BASIC, "ExpirationDate")
    certificates = _smp2_certificates(node)
    return _build(
        node,
        lambda: Endpoint(
            transport_profile=profile,
            address=address,
            certificate=certificates[0] if certificates else None,
            service_activation=_date(activation) if activation is not None else None,
            service_expiration=_date(expiration) if expiration is not None else None,
            description=_optional_text(node, NS.SMP2_BASIC, "Description"),
            technical_contact=_optional_text(node, NS.SMP2_BASIC, "Contact"),
        ),
    )


def _smp2_process_metadata(node: etree._Element) -> list[Process]:
    endpoints = tuple(_smp2_endpoint(e) for e in _children(node, NS.SMP2_AGGREGATE, "Endpoint"))
    redirect_node = _optional(node, NS.SMP2_AGGREGATE, "Redirect")
    if bool(endpoints) == (redirect_node is not None):
        raise _fail(
            node,
            "must hold either one or more Endpoint elements or one Redirect",
            "smp-missing-element" if not endpoints else "smp-unexpected-content",
        )
    redirect = None
    if redirect_node is not None:
        uri = _required_text(_one(redirect_node, NS.SMP2_BASIC, "PublisherURI"))
        certificates = _smp2_certificates(redirect_node)
        redirect = _build(redirect_node, lambda: Redirect(uri, certificates=certificates))
    process_nodes = _children(node, NS.SMP2_AGGREGATE, "Process")
    if not process_nodes:
        return [_build(node, lambda: Process(None, endpoints, redirect=redirect))]
    processes: list[Process] = []
    for process_node in process_nodes:
        process_id, roles = _smp2_process_id(process_node)
        processes.append(
            _build(node, lambda: Process(process_id, endpoints, roles, redirect))  # noqa: B023
        )
    return processes


def _smp2_metadata(root: etree._Element) -> ServiceMetadata:
    _smp2_version(root)
    doc_node = _one(root, NS.SMP2_BASIC, "ID")
    scheme, value = _smp2_identifier(doc_node)
    document_type = _build(doc_node, lambda: DocumentTypeId(scheme, value))
    participant = _smp2_participant(root)
    processes: list[Process] = []
    for node in _many(root, NS.SMP2_AGGREGATE, "ProcessMetadata"):
        processes.extend(_smp2_process_metadata(node))
    return ServiceMetadata(participant, document_type, tuple(processes), format=SmpFormat.SMP2)


def _smp2_group(root: etree._Element) -> ServiceGroup:
    _smp2_version(root)
    participant = _smp2_participant(root)
    references: list[ServiceReference] = []
    for node in _children(root, NS.SMP2_AGGREGATE, "ServiceReference"):
        id_node = _one(node, NS.SMP2_BASIC, "ID")
        scheme, value = _smp2_identifier(id_node)
        document_type = _build(id_node, lambda: DocumentTypeId(scheme, value))  # noqa: B023
        processes = tuple(
            _smp2_process_id(p)[0] for p in _children(node, NS.SMP2_AGGREGATE, "Process")
        )
        references.append(ServiceReference(document_type, processes=processes))
    return ServiceGroup(participant, tuple(references), SmpFormat.SMP2)


# --------------------------------------------------------------------------- entry points


def service_metadata_from_element(root: etree._Element) -> ServiceMetadata:
    """Read an already parsed (and, for routing, verified) service metadata element."""
    smp_format = _expect(root, "ServiceMetadata")
    if smp_format is SmpFormat.SMP2:
        return _smp2_metadata(root)
    if _local(root) == "SignedServiceMetadata":
        root = _one(root, _main_ns(smp_format), "ServiceMetadata")
    return _v1_metadata(root, smp_format)


def service_group_from_element(root: etree._Element) -> ServiceGroup:
    """Read an already parsed service group element."""
    smp_format = _expect(root, "ServiceGroup")
    if smp_format is SmpFormat.SMP2:
        return _smp2_group(root)
    return _v1_group(root, smp_format)


def parse_service_metadata(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> ServiceMetadata:
    """Read a ServiceMetadata or SignedServiceMetadata of any of the three formats.

    The signature, if any, is **not** checked here: see
    :func:`elma.verify.verify_service_metadata`.
    Raises :class:`~sbdh.errors.XmlSecurityError` / :class:`~sbdh.errors.InvalidInput` from the
    hardened parser and :class:`SmpDocumentError` for a document of the wrong shape.
    """
    return service_metadata_from_element(parse_xml(data, limits))


def parse_service_group(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> ServiceGroup:
    """Read a ServiceGroup of any of the three formats."""
    return service_group_from_element(parse_xml(data, limits))
