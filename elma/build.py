"""Write :mod:`elma.model` values as SMP documents of any of the three formats.

The format is the model's own (``ServiceMetadata.format`` / ``ServiceGroup.format``) unless
another is asked for, so one registry can answer Peppol, BDXR 1.0 and SMP 2.0 clients alike.
What a format cannot carry is handled like this:

* Peppol needs identifier schemes, and both 1.x formats need an endpoint certificate, a
  process id and, for a redirect, a ``CertificateUID``: without them :class:`SmpBuildError`.
* SMP 2.0 has no business-level-signature flag, minimum authentication level or technical
  information URL, and the 1.x formats have no process roles: these are left out.
* SMP 2.0 carries dates, not times: an activation or expiration that is not at midnight (in its
  own zone) is a :class:`SmpBuildError` rather than a silently moved boundary.

Signing is :mod:`elma.sign`; the documents built here are unsigned.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, time, timedelta

from lxml import etree

from elma.errors import SmpBuildError
from elma.model import (
    DocumentTypeId,
    Endpoint,
    ParticipantId,
    Process,
    ProcessId,
    Redirect,
    ServiceGroup,
    ServiceMetadata,
)
from elma.paths import service_metadata_path
from elma.spec import NS, SMP2_VERSION, SmpFormat

__all__ = [
    "build_service_group",
    "build_service_metadata",
    "service_group_element",
    "service_metadata_element",
]

_PKIX_CERT = "application/pkix-cert"


def _sub(parent: etree._Element, ns: str, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{local}")
    if text is not None:
        element.text = text
    return element


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def _xs_datetime(value: datetime) -> str:
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _xs_date(value: datetime, what: str) -> str:
    if value.timetz().replace(tzinfo=None) != time(0):
        raise SmpBuildError(
            f"SMP 2.0 carries dates only; {what} {value.isoformat()} is not at midnight",
            rule="smp-build-date",
        )
    offset = value.utcoffset() or timedelta(0)
    if not offset:
        zone = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return value.strftime("%Y-%m-%d") + zone


def _output(root: etree._Element) -> bytes:
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


# --------------------------------------------------------------------------- Peppol / BDXR 1.0


def _main_ns(smp_format: SmpFormat) -> str:
    return NS.SMP if smp_format is SmpFormat.PEPPOL else NS.BDXR1


def _ids_ns(smp_format: SmpFormat) -> str:
    return NS.IDS if smp_format is SmpFormat.PEPPOL else NS.BDXR1


def _nsmap(smp_format: SmpFormat) -> dict[str | None, str]:
    if smp_format is SmpFormat.PEPPOL:
        return {"smp": NS.SMP, "id": NS.IDS, "wsa": NS.WSA}
    return {"smp": NS.BDXR1}


def _v1_identifier(
    parent: etree._Element,
    smp_format: SmpFormat,
    local: str,
    identifier: ParticipantId | DocumentTypeId | ProcessId,
) -> None:
    element = _sub(parent, _ids_ns(smp_format), local, identifier.value)
    if identifier.scheme is not None:
        element.set("scheme", identifier.scheme)
    elif smp_format is SmpFormat.PEPPOL:
        raise SmpBuildError(
            f"Peppol SMP identifiers need a scheme; {local} {identifier.value!r} has none",
            rule="smp-build-scheme",
        )


def _v1_endpoint(parent: etree._Element, smp_format: SmpFormat, endpoint: Endpoint) -> None:
    ns = _main_ns(smp_format)
    node = _sub(parent, ns, "Endpoint")
    node.set("transportProfile", endpoint.transport_profile)
    if smp_format is SmpFormat.PEPPOL:
        reference = _sub(node, NS.WSA, "EndpointReference")
        _sub(reference, NS.WSA, "Address", endpoint.address)
    else:
        _sub(node, ns, "EndpointURI", endpoint.address)
    flag = "true" if endpoint.require_business_level_signature else "false"
    _sub(node, ns, "RequireBusinessLevelSignature", flag)
    if endpoint.minimum_authentication_level is not None:
        _sub(node, ns, "MinimumAuthenticationLevel", endpoint.minimum_authentication_level)
    if endpoint.service_activation is not None:
        _sub(node, ns, "ServiceActivationDate", _xs_datetime(endpoint.service_activation))
    if endpoint.service_expiration is not None:
        _sub(node, ns, "ServiceExpirationDate", _xs_datetime(endpoint.service_expiration))
    if endpoint.certificate is None:
        raise SmpBuildError(
            f"{smp_format.value} endpoints need a certificate; {endpoint.address} has none",
            rule="smp-build-certificate",
        )
    _sub(node, ns, "Certificate", _b64(endpoint.certificate))
    _sub(node, ns, "ServiceDescription", endpoint.description or "")
    _sub(node, ns, "TechnicalContactUrl", endpoint.technical_contact or "")
    if endpoint.technical_information is not None:
        _sub(node, ns, "TechnicalInformationUrl", endpoint.technical_information)


def _v1_process(parent: etree._Element, smp_format: SmpFormat, process: Process) -> None:
    if process.process_id is None or process.redirect is not None:
        raise SmpBuildError(
            f"{smp_format.value} processes need a process id and endpoints (a process without "
            "an id, or redirecting on its own, exists in SMP 2.0 only)",
            rule="smp-build-process",
        )
    ns = _main_ns(smp_format)
    node = _sub(parent, ns, "Process")
    _v1_identifier(node, smp_format, "ProcessIdentifier", process.process_id)
    endpoints = _sub(node, ns, "ServiceEndpointList")
    for endpoint in process.endpoints:
        _v1_endpoint(endpoints, smp_format, endpoint)


def _v1_redirect(parent: etree._Element, smp_format: SmpFormat, redirect: Redirect) -> None:
    if redirect.certificate_uid is None:
        raise SmpBuildError(
            f"a {smp_format.value} redirect names the target SMP's certificate (CertificateUID)",
            rule="smp-build-redirect",
        )
    ns = _main_ns(smp_format)
    node = _sub(parent, ns, "Redirect")
    node.set("href", redirect.href)
    _sub(node, ns, "CertificateUID", redirect.certificate_uid)


def _v1_metadata(
    metadata: ServiceMetadata, smp_format: SmpFormat, *, signed_wrapper: bool
) -> etree._Element:
    ns = _main_ns(smp_format)
    if signed_wrapper:
        wrapper = etree.Element(f"{{{ns}}}SignedServiceMetadata", nsmap=_nsmap(smp_format))
        root = _sub(wrapper, ns, "ServiceMetadata")
    else:
        wrapper = root = etree.Element(f"{{{ns}}}ServiceMetadata", nsmap=_nsmap(smp_format))
    if metadata.redirect is not None:
        _v1_redirect(root, smp_format, metadata.redirect)
        return wrapper
    if any(p.redirect is not None for p in metadata.processes):
        raise SmpBuildError(
            f"{smp_format.value} cannot redirect single processes; only SMP 2.0 can",
            rule="smp-build-redirect",
        )
    assert metadata.participant is not None
    assert metadata.document_type is not None
    information = _sub(root, ns, "ServiceInformation")
    _v1_identifier(information, smp_format, "ParticipantIdentifier", metadata.participant)
    _v1_identifier(information, smp_format, "DocumentIdentifier", metadata.document_type)
    process_list = _sub(information, ns, "ProcessList")
    for process in metadata.processes:
        _v1_process(process_list, smp_format, process)
    return wrapper


def _v1_group(group: ServiceGroup, smp_format: SmpFormat, base_url: str | None) -> etree._Element:
    ns = _main_ns(smp_format)
    root = etree.Element(f"{{{ns}}}ServiceGroup", nsmap=_nsmap(smp_format))
    _v1_identifier(root, smp_format, "ParticipantIdentifier", group.participant)
    collection = _sub(root, ns, "ServiceMetadataReferenceCollection")
    for reference in group.references:
        href = reference.href
        if href is None:
            if base_url is None or reference.document_type is None:
                raise SmpBuildError(
                    "a service metadata reference needs an href, or a document type and the "
                    "SMP's base URL to make one",
                    rule="smp-build-reference",
                )
            href = base_url.rstrip("/") + service_metadata_path(
                group.participant, reference.document_type, smp_format
            )
        _sub(collection, ns, "ServiceMetadataReference").set("href", href)
    return root


# --------------------------------------------------------------------------- OASIS SMP 2.0


def _smp2_nsmap(document_ns: str) -> dict[str | None, str]:
    return {None: document_ns, "smb": NS.SMP2_BASIC, "sma": NS.SMP2_AGGREGATE}


def _smp2_identifier(
    parent: etree._Element, local: str, identifier: ParticipantId | DocumentTypeId | ProcessId
) -> None:
    element = _sub(parent, NS.SMP2_BASIC, local, identifier.value)
    if identifier.scheme is not None:
        element.set("schemeID", identifier.scheme)


def _smp2_certificate(parent: etree._Element, der: bytes) -> None:
    certificate = _sub(parent, NS.SMP2_AGGREGATE, "Certificate")
    _sub(certificate, NS.SMP2_BASIC, "ContentBinaryObject", _b64(der)).set("mimeCode", _PKIX_CERT)


def _smp2_endpoint(parent: etree._Element, endpoint: Endpoint) -> None:
    node = _sub(parent, NS.SMP2_AGGREGATE, "Endpoint")
    _sub(node, NS.SMP2_BASIC, "TransportProfileID", endpoint.transport_profile)
    if endpoint.description is not None:
        _sub(node, NS.SMP2_BASIC, "Description", endpoint.description)
    if endpoint.technical_contact is not None:
        _sub(node, NS.SMP2_BASIC, "Contact", endpoint.technical_contact)
    _sub(node, NS.SMP2_BASIC, "AddressURI", endpoint.address)
    if endpoint.service_activation is not None:
        text = _xs_date(endpoint.service_activation, "activation")
        _sub(node, NS.SMP2_BASIC, "ActivationDate", text)
    if endpoint.service_expiration is not None:
        text = _xs_date(endpoint.service_expiration, "expiration")
        _sub(node, NS.SMP2_BASIC, "ExpirationDate", text)
    if endpoint.certificate is not None:
        _smp2_certificate(node, endpoint.certificate)


def _smp2_process(parent: etree._Element, process: Process) -> None:
    node = _sub(parent, NS.SMP2_AGGREGATE, "ProcessMetadata")
    if process.process_id is not None:
        process_node = _sub(node, NS.SMP2_AGGREGATE, "Process")
        _smp2_identifier(process_node, "ID", process.process_id)
        for role in process.roles:
            _sub(process_node, NS.SMP2_BASIC, "RoleID", role)
    for endpoint in process.endpoints:
        _smp2_endpoint(node, endpoint)
    if process.redirect is not None:
        redirect = _sub(node, NS.SMP2_AGGREGATE, "Redirect")
        _sub(redirect, NS.SMP2_BASIC, "PublisherURI", process.redirect.href)
        for der in process.redirect.certificates:
            _smp2_certificate(redirect, der)


def _smp2_metadata(metadata: ServiceMetadata) -> etree._Element:
    if metadata.redirect is not None:
        raise SmpBuildError(
            "SMP 2.0 has no whole-document redirect; put the redirect on each process",
            rule="smp-build-redirect",
        )
    assert metadata.participant is not None
    assert metadata.document_type is not None
    root = etree.Element(
        f"{{{NS.SMP2_METADATA}}}ServiceMetadata", nsmap=_smp2_nsmap(NS.SMP2_METADATA)
    )
    _sub(root, NS.SMP2_BASIC, "SMPVersionID", SMP2_VERSION)
    _smp2_identifier(root, "ID", metadata.document_type)
    _smp2_identifier(root, "ParticipantID", metadata.participant)
    for process in metadata.processes:
        _smp2_process(root, process)
    return root


def _smp2_group(group: ServiceGroup) -> etree._Element:
    root = etree.Element(f"{{{NS.SMP2_GROUP}}}ServiceGroup", nsmap=_smp2_nsmap(NS.SMP2_GROUP))
    _sub(root, NS.SMP2_BASIC, "SMPVersionID", SMP2_VERSION)
    _smp2_identifier(root, "ParticipantID", group.participant)
    for reference in group.references:
        if reference.document_type is None:
            raise SmpBuildError(
                f"an SMP 2.0 service reference needs a document type; {reference.href} has none",
                rule="smp-build-reference",
            )
        node = _sub(root, NS.SMP2_AGGREGATE, "ServiceReference")
        _smp2_identifier(node, "ID", reference.document_type)
        for process_id in reference.processes:
            _smp2_identifier(_sub(node, NS.SMP2_AGGREGATE, "Process"), "ID", process_id)
    return root


# --------------------------------------------------------------------------- entry points


def service_metadata_element(
    metadata: ServiceMetadata, smp_format: SmpFormat | None = None, *, signed_wrapper: bool = False
) -> etree._Element:
    """The document as an element tree. ``signed_wrapper`` puts a Peppol or BDXR 1.0
    ServiceMetadata inside a SignedServiceMetadata root, ready for :mod:`elma.sign`."""
    smp_format = smp_format or metadata.format
    if smp_format is SmpFormat.SMP2:
        return _smp2_metadata(metadata)
    return _v1_metadata(metadata, smp_format, signed_wrapper=signed_wrapper)


def service_group_element(
    group: ServiceGroup, smp_format: SmpFormat | None = None, *, base_url: str | None = None
) -> etree._Element:
    smp_format = smp_format or group.format
    if smp_format is SmpFormat.SMP2:
        return _smp2_group(group)
    return _v1_group(group, smp_format, base_url)


def build_service_metadata(metadata: ServiceMetadata, smp_format: SmpFormat | None = None) -> bytes:
    """An unsigned ServiceMetadata document (UTF-8, with XML declaration)."""
    return _output(service_metadata_element(metadata, smp_format))


def build_service_group(
    group: ServiceGroup, smp_format: SmpFormat | None = None, *, base_url: str | None = None
) -> bytes:
    """A ServiceGroup document. In the 1.x formats a reference without an href gets
    ``{base_url}/{participant}/services/{document type}``."""
    return _output(service_group_element(group, smp_format, base_url=base_url))
