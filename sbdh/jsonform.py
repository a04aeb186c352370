"""The JSON form of the Standard Business Document, as eFormidling's NextMove REST API uses it.

::

    {"standardBusinessDocument": {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"authority": "iso6523-actorid-upis", "value": "0192:..."},
                        "contactInformation": [{"contact": "...", "emailAddress": "..."}]}],
            "receiver": [...],
            "documentIdentification": {"standard": ..., "typeVersion": ...,
                                       "instanceIdentifier": ..., "type": ...,
                                       "multipleType": "false", "creationDateAndTime": ...},
            "manifest": {"numberOfItems": "1",
                         "manifestItem": [{"mimeTypeQualifierCode": ...,
                                           "uniformResourceIdentifier": ...,
                                           "description": ..., "languageCode": ...}]},
            "businessScope": {"scope": [{"type": ..., "instanceIdentifier": ..., "identifier": ...,
                                         "scopeInformation": [...]}]}},
        "<business message>": ...}}

Names are the SBDH element names in camelCase; repeating elements are arrays even with one item.
Every header value is a JSON string holding the XML lexical form (``multipleType`` and
``numberOfItems`` too), so nothing is reformatted on the way between the forms.

``scopeInformation`` items: eFormidling's own form is the bare object
``{"expectedResponseDateTime": ...}`` (XML: the ``ScopeInformation`` element); the schema's
``CorrelationInformation`` and ``BusinessService`` elements are ``{"correlationInformation":
{...}}`` and ``{"businessService": {"businessServiceName": ..., "serviceTransaction":
{"<attribute>": "<value>"}}}``.

The business message is the one member beside the header:

* ``"<type>": {...}`` - an eFormidling business message (``digital``, ``arkivmelding``, ...), the
  JSON tree as sent; see :mod:`sbdh.xmlform` for its XML form and what it refuses;
* ``"xmlDocument": "<ubl:Invoice ...>...</ubl:Invoice>"`` - any other XML business document (a
  Peppol UBL invoice), as a string holding its canonical XML (inclusive C14N, every namespace it
  can use declared on its root);
* ``"binaryContent": {"mimeType": ..., "encoding": ..., "value": "<base64>"}`` and
  ``"textContent": {"mimeType": ..., "value": ...}`` - the Peppol envelope wrapper;
* ``"detachedDocument": {"namespace": ..., "localName": ..., "sbdSize": <bytes>,
  "sbdSha256": "<hex>"}`` - a marker, not content: the business message of an SBD too large to
  hold (:class:`~sbdh.model.DetachedPayload`), whose bytes the access point keeps as a file.
  Only the access point writes it; its API refuses it from clients.

These four names are reserved: they never name an eFormidling business message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sbdh.errors import EnvelopeError, InvalidInput, Violation
from sbdh.model import (
    BinaryContent,
    BusinessMessage,
    BusinessScope,
    BusinessService,
    ContactInformation,
    CorrelationInformation,
    DetachedPayload,
    DocumentIdentification,
    JsonObject,
    Manifest,
    ManifestItem,
    Partner,
    PartnerIdentifier,
    Payload,
    Scope,
    ScopeInformation,
    ScopeInformationForm,
    StandardBusinessDocument,
    StandardBusinessDocumentHeader,
    TextContent,
    XmlPayload,
)
from sbdh.xmlform import check_business_message, is_xml_text, read_sbd, sbd_to_xml
from sbdh.xmlsafe import DEFAULT_LIMITS, parse_xml

__all__ = ["JsonReading", "read_json", "sbd_from_json", "sbd_to_json"]

ROOT_KEY = "standardBusinessDocument"
HEADER_KEY = "standardBusinessDocumentHeader"
#: the business-message names that carry the non-eFormidling payloads
XML_DOCUMENT_KEY = "xmlDocument"
BINARY_CONTENT_KEY = "binaryContent"
TEXT_CONTENT_KEY = "textContent"
DETACHED_DOCUMENT_KEY = "detachedDocument"

_CORRELATION_FIELDS = (
    ("requestingDocumentCreationDateTime", "requesting_document_creation_date_time"),
    ("requestingDocumentInstanceIdentifier", "requesting_document_instance_identifier"),
    ("expectedResponseDateTime", "expected_response_date_time"),
)


# --------------------------------------------------------------------------- writing


def _drop_none(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


def _partner(partner: Partner) -> dict[str, Any]:
    result: dict[str, Any] = {
        "identifier": _drop_none(
            [("authority", partner.identifier.authority), ("value", partner.identifier.value)]
        )
    }
    if partner.contact_information:
        result["contactInformation"] = [
            _drop_none(
                [
                    ("contact", c.contact),
                    ("emailAddress", c.email_address),
                    ("faxNumber", c.fax_number),
                    ("telephoneNumber", c.telephone_number),
                    ("contactTypeIdentifier", c.contact_type_identifier),
                ]
            )
            for c in partner.contact_information
        ]
    return result


def _scope_information(info: ScopeInformation) -> dict[str, Any]:
    if isinstance(info, BusinessService):
        body = _drop_none([("businessServiceName", info.business_service_name)])
        if info.service_transaction is not None:
            body["serviceTransaction"] = dict(info.service_transaction)
        return {"businessService": body}
    fields = _drop_none([(key, getattr(info, attr)) for key, attr in _CORRELATION_FIELDS])
    if info.form is ScopeInformationForm.SCOPE_INFORMATION:
        return fields
    return {"correlationInformation": fields}


def _header(header: StandardBusinessDocumentHeader) -> dict[str, Any]:
    ident = header.document_identification
    result: dict[str, Any] = {
        "headerVersion": header.header_version,
        "sender": [_partner(p) for p in header.senders],
        "receiver": [_partner(p) for p in header.receivers],
        "documentIdentification": _drop_none(
            [
                ("standard", ident.standard),
                ("typeVersion", ident.type_version),
                ("instanceIdentifier", ident.instance_identifier),
                ("type", ident.type),
                ("multipleType", ident.multiple_type),
                ("creationDateAndTime", ident.creation_date_and_time),
            ]
        ),
    }
    if header.manifest is not None:
        result["manifest"] = {
            "numberOfItems": header.manifest.number_of_items,
            "manifestItem": [
                _drop_none(
                    [
                        ("mimeTypeQualifierCode", item.mime_type_qualifier_code),
                        ("uniformResourceIdentifier", item.uniform_resource_identifier),
                        ("description", item.description),
                        ("languageCode", item.language_code),
                    ]
                )
                for item in header.manifest.items
            ],
        }
    if header.business_scope is not None:
        scopes = []
        for scope in header.business_scope.scopes:
            entry = _drop_none(
                [
                    ("type", scope.type),
                    ("instanceIdentifier", scope.instance_identifier),
                    ("identifier", scope.identifier),
                ]
            )
            if scope.scope_information:
                entry["scopeInformation"] = [_scope_information(i) for i in scope.scope_information]
            scopes.append(entry)
        result["businessScope"] = {"scope": scopes}
    return result


def _payload(payload: Payload) -> tuple[str, Any]:
    if isinstance(payload, BusinessMessage):
        check_business_message(payload)
        return payload.type, payload.body.to_python()
    if isinstance(payload, XmlPayload):
        return XML_DOCUMENT_KEY, payload.text()
    if isinstance(payload, DetachedPayload):
        return DETACHED_DOCUMENT_KEY, _drop_none(
            [
                ("namespace", payload.namespace),
                ("localName", payload.local_name),
                ("sbdSize", payload.sbd_size),
                ("sbdSha256", payload.sbd_sha256),
            ]
        )
    if isinstance(payload, BinaryContent):
        return BINARY_CONTENT_KEY, _drop_none(
            [
                ("mimeType", payload.mime_type),
                ("encoding", payload.encoding),
                ("value", payload.value),
            ]
        )
    return TEXT_CONTENT_KEY, {"mimeType": payload.mime_type, "value": payload.value}


def sbd_to_python(document: StandardBusinessDocument, *, wrapped: bool = True) -> dict[str, Any]:
    """The JSON form as ``dict``/``list`` values, ready for :func:`json.dumps`.

    ``wrapped`` puts the document under ``standardBusinessDocument``, as the DPI messages do;
    the NextMove REST API sends and returns it bare (``{"standardBusinessDocumentHeader": …,
    "<type>": …}``).
    """
    body: dict[str, Any] = {HEADER_KEY: _header(document.header)}
    if document.payload is not None:
        key, value = _payload(document.payload)
        body[key] = value
    return {ROOT_KEY: body} if wrapped else body


def sbd_to_json(
    document: StandardBusinessDocument, *, indent: int | None = 2, wrapped: bool = True
) -> bytes:
    """The JSON form of ``document``, UTF-8 (see :func:`sbd_to_python` for ``wrapped``)."""
    text = json.dumps(sbd_to_python(document, wrapped=wrapped), ensure_ascii=False, indent=indent)
    return text.encode("utf-8")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class JsonReading:
    """What a tolerant read of a JSON SBD found (the JSON counterpart of ``xmlform.Reading``)."""

    document: StandardBusinessDocument | None
    violations: tuple[Violation, ...]


class _Reader:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def fail(self, path: str, message: str, rule: str = "json-structure") -> None:
        self.violations.append(Violation(rule, f"{path}: {message}"))

    def obj(self, value: object, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, f"must be an object, not {_kind(value)}")
            return None
        return value

    def known(self, value: dict[str, Any], path: str, keys: tuple[str, ...]) -> None:
        for key in value:
            if key not in keys:
                self.fail(path, f"unknown member {key!r} (allowed: {', '.join(keys)})")

    def string(self, value: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        if key not in value:
            if required:
                self.fail(path, f"{key} is required")
            return None
        item = value[key]
        if not isinstance(item, str):
            self.fail(f"{path}/{key}", f"must be a string, not {_kind(item)}")
            return None
        if not is_xml_text(item):
            # the XML form could not carry it: refuse here rather than fail when writing XML
            self.fail(f"{path}/{key}", "holds characters that XML 1.0 cannot carry")
            return None
        return item

    def array(self, value: dict[str, Any], key: str, path: str, *, required: bool) -> list[Any]:
        if key not in value:
            if required:
                self.fail(path, f"{key} is required")
            return []
        item = value[key]
        if not isinstance(item, list):
            self.fail(f"{path}/{key}", f"must be an array, not {_kind(item)}")
            return []
        return item

    def each(
        self, items: list[Any], path: str, read: Callable[[dict[str, Any], str], Any]
    ) -> list[Any]:
        results = []
        for index, item in enumerate(items):
            obj = self.obj(item, f"{path}/{index}")
            if obj is not None:
                result = read(obj, f"{path}/{index}")
                if result is not None:
                    results.append(result)
        return results

    # -- header

    def header(self, value: dict[str, Any], path: str) -> StandardBusinessDocumentHeader | None:
        self.known(
            value,
            path,
            (
                "headerVersion",
                "sender",
                "receiver",
                "documentIdentification",
                "manifest",
                "businessScope",
            ),
        )
        version = self.string(value, "headerVersion", path, required=True)
        senders = self.each(
            self.array(value, "sender", path, required=True), f"{path}/sender", self.partner
        )
        receivers = self.each(
            self.array(value, "receiver", path, required=True), f"{path}/receiver", self.partner
        )
        ident = None
        if "documentIdentification" not in value:
            self.fail(path, "documentIdentification is required")
        else:
            obj = self.obj(value["documentIdentification"], f"{path}/documentIdentification")
            ident = self.identification(obj, f"{path}/documentIdentification") if obj else None
        manifest = None
        if "manifest" in value:
            obj = self.obj(value["manifest"], f"{path}/manifest")
            manifest = self.manifest(obj, f"{path}/manifest") if obj is not None else None
        scope = None
        if "businessScope" in value:
            obj = self.obj(value["businessScope"], f"{path}/businessScope")
            if obj is not None:
                self.known(obj, f"{path}/businessScope", ("scope",))
                scopes = self.each(
                    self.array(obj, "scope", f"{path}/businessScope", required=False),
                    f"{path}/businessScope/scope",
                    self.scope,
                )
                scope = BusinessScope(tuple(scopes))
        if version is None or ident is None:
            return None
        return StandardBusinessDocumentHeader(
            version, tuple(senders), tuple(receivers), ident, manifest, scope
        )

    def partner(self, value: dict[str, Any], path: str) -> Partner | None:
        self.known(value, path, ("identifier", "contactInformation"))
        if "identifier" not in value:
            self.fail(path, "identifier is required")
            return None
        ident = self.obj(value["identifier"], f"{path}/identifier")
        if ident is None:
            return None
        self.known(ident, f"{path}/identifier", ("authority", "value"))
        identifier = PartnerIdentifier(
            self.string(ident, "value", f"{path}/identifier", required=True) or "",
            self.string(ident, "authority", f"{path}/identifier", required=False),
        )
        contacts = self.each(
            self.array(value, "contactInformation", path, required=False),
            f"{path}/contactInformation",
            self.contact,
        )
        return Partner(identifier, tuple(contacts))

    def contact(self, value: dict[str, Any], path: str) -> ContactInformation:
        keys = ("contact", "emailAddress", "faxNumber", "telephoneNumber", "contactTypeIdentifier")
        self.known(value, path, keys)
        contact = self.string(value, "contact", path, required=True) or ""
        rest = [self.string(value, key, path, required=False) for key in keys[1:]]
        return ContactInformation(contact, *rest)

    def identification(self, value: dict[str, Any], path: str) -> DocumentIdentification | None:
        keys = (
            "standard",
            "typeVersion",
            "instanceIdentifier",
            "type",
            "multipleType",
            "creationDateAndTime",
        )
        self.known(value, path, keys)
        required = [
            self.string(value, key, path, required=True)
            for key in (
                "standard",
                "typeVersion",
                "instanceIdentifier",
                "type",
                "creationDateAndTime",
            )
        ]
        multiple = self.string(value, "multipleType", path, required=False)
        if any(item is None for item in required):
            return None
        standard, version, instance, doc_type, created = (item or "" for item in required)
        return DocumentIdentification(standard, version, instance, doc_type, created, multiple)

    def manifest(self, value: dict[str, Any], path: str) -> Manifest | None:
        self.known(value, path, ("numberOfItems", "manifestItem"))
        number = self.string(value, "numberOfItems", path, required=True)
        keys = ("mimeTypeQualifierCode", "uniformResourceIdentifier", "description", "languageCode")

        def item(obj: dict[str, Any], item_path: str) -> ManifestItem:
            self.known(obj, item_path, keys)
            return ManifestItem(
                self.string(obj, keys[0], item_path, required=True) or "",
                self.string(obj, keys[1], item_path, required=True) or "",
                self.string(obj, keys[2], item_path, required=False),
                self.string(obj, keys[3], item_path, required=False),
            )

        items = self.each(
            self.array(value, "manifestItem", path, required=True), f"{path}/manifestItem", item
        )
        if number is None or not items:
            return None
        return Manifest(number, tuple(items))

    def scope(self, value: dict[str, Any], path: str) -> Scope:
        self.known(value, path, ("type", "instanceIdentifier", "identifier", "scopeInformation"))
        infos = self.each(
            self.array(value, "scopeInformation", path, required=False),
            f"{path}/scopeInformation",
            self.scope_information,
        )
        return Scope(
            self.string(value, "type", path, required=True) or "",
            self.string(value, "instanceIdentifier", path, required=False),
            self.string(value, "identifier", path, required=False),
            tuple(infos),
        )

    def scope_information(self, value: dict[str, Any], path: str) -> ScopeInformation | None:
        if "businessService" in value:
            self.known(value, path, ("businessService",))
            body = self.obj(value["businessService"], f"{path}/businessService")
            if body is None:
                return None
            self.known(
                body, f"{path}/businessService", ("businessServiceName", "serviceTransaction")
            )
            transaction = None
            if "serviceTransaction" in body:
                attrs = self.obj(
                    body["serviceTransaction"], f"{path}/businessService/serviceTransaction"
                )
                if attrs is not None:
                    if not all(isinstance(v, str) and is_xml_text(v) for v in attrs.values()):
                        self.fail(
                            f"{path}/businessService/serviceTransaction", "values must be strings"
                        )
                    transaction = tuple(sorted((str(k), str(v)) for k, v in attrs.items()))
            name = self.string(
                body, "businessServiceName", f"{path}/businessService", required=False
            )
            return BusinessService(name, transaction)
        form = ScopeInformationForm.SCOPE_INFORMATION
        if "correlationInformation" in value:
            self.known(value, path, ("correlationInformation",))
            inner = self.obj(value["correlationInformation"], f"{path}/correlationInformation")
            if inner is None:
                return None
            value, path = inner, f"{path}/correlationInformation"
            form = ScopeInformationForm.CORRELATION_INFORMATION
        self.known(value, path, tuple(key for key, _ in _CORRELATION_FIELDS))
        fields = {
            attr: self.string(value, key, path, required=False) for key, attr in _CORRELATION_FIELDS
        }
        return CorrelationInformation(**fields, form=form)

    # -- payload

    def payload(self, key: str, value: object, path: str) -> Payload | None:
        try:
            if key == XML_DOCUMENT_KEY:
                if not isinstance(value, str):
                    self.fail(path, f"must be a string holding XML, not {_kind(value)}")
                    return None
                return XmlPayload(value.encode("utf-8", errors="strict"))
            if key == DETACHED_DOCUMENT_KEY:
                return self.detached(value, path)
            if key in (BINARY_CONTENT_KEY, TEXT_CONTENT_KEY):
                obj = self.obj(value, path)
                if obj is None:
                    return None
                if key == BINARY_CONTENT_KEY:
                    self.known(obj, path, ("mimeType", "encoding", "value"))
                    return BinaryContent(
                        self.string(obj, "mimeType", path, required=True) or "",
                        self.string(obj, "value", path, required=True) or "",
                        self.string(obj, "encoding", path, required=False),
                    )
                self.known(obj, path, ("mimeType", "value"))
                return TextContent(
                    self.string(obj, "mimeType", path, required=True) or "",
                    self.string(obj, "value", path, required=True) or "",
                )
            obj = self.obj(value, path)
            if obj is None:
                return None
            message = BusinessMessage(key, JsonObject.of(obj))
            check_business_message(message)
            return message
        except InvalidInput as exc:
            self.violations.append(
                Violation(exc.rule or "json-structure", f"{path}: {exc.message}")
            )
            return None

    def detached(self, value: object, path: str) -> DetachedPayload | None:
        obj = self.obj(value, path)
        if obj is None:
            return None
        self.known(obj, path, ("namespace", "localName", "sbdSize", "sbdSha256"))
        namespace = self.string(obj, "namespace", path, required=False)
        local_name = self.string(obj, "localName", path, required=True)
        digest = self.string(obj, "sbdSha256", path, required=True)
        size = obj.get("sbdSize")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            self.fail(f"{path}/sbdSize", "must be a whole number of bytes")
            return None
        if digest is not None and not _SHA256_HEX.match(digest):
            self.fail(f"{path}/sbdSha256", "must be a SHA-256 in hex (64 lower-case digits)")
            return None
        if local_name is None or digest is None:
            return None
        return DetachedPayload(namespace, local_name, size, digest)


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(
                f"member {key!r} appears twice in one object", rule="json-duplicate-key"
            )
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise InvalidInput(f"{name} is not JSON", rule="json-well-formed")


def load_json(data: bytes) -> object:
    """Parse untrusted JSON: size-capped, no duplicate members, no NaN/Infinity."""
    if len(data) > DEFAULT_LIMITS.max_bytes:
        raise InvalidInput(
            f"document is {len(data)} bytes; the limit is {DEFAULT_LIMITS.max_bytes}",
            rule="json-size",
        )
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise InvalidInput("JSON nested too deeply", rule="json-depth") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"not well-formed JSON: {exc}", rule="json-well-formed") from exc


def read_json(data: bytes) -> JsonReading:
    """Read a JSON SBD tolerantly: model what can be modelled, list every problem.

    Raises :class:`InvalidInput` only when the bytes are not JSON at all.
    """
    return read_python(load_json(data))


def read_python(value: object) -> JsonReading:
    reader = _Reader()
    root = reader.obj(value, "$")
    if root is None:
        return JsonReading(None, tuple(reader.violations))
    if ROOT_KEY not in root and HEADER_KEY in root:
        # the bare form of the NextMove REST API
        body: dict[str, Any] | None = root
        path = "$"
    else:
        reader.known(root, "$", (ROOT_KEY,))
        if ROOT_KEY not in root:
            reader.fail("$", f"{ROOT_KEY} (or {HEADER_KEY}) is required")
            return JsonReading(None, tuple(reader.violations))
        body = reader.obj(root[ROOT_KEY], f"$/{ROOT_KEY}")
        path = f"$/{ROOT_KEY}"
    if body is None:
        return JsonReading(None, tuple(reader.violations))
    header = None
    if HEADER_KEY not in body:
        reader.violations.append(Violation("no-sbdh", f"{path}: {HEADER_KEY} is missing"))
    else:
        header_obj = reader.obj(body[HEADER_KEY], f"{path}/{HEADER_KEY}")
        if header_obj is not None:
            header = reader.header(header_obj, f"{path}/{HEADER_KEY}")
    messages = [key for key in body if key != HEADER_KEY]
    payload = None
    if len(messages) > 1:
        reader.fail(
            path, f"holds {len(messages)} business messages ({', '.join(messages)}); one is allowed"
        )
    if messages:
        payload = reader.payload(messages[0], body[messages[0]], f"{path}/{messages[0]}")
    else:
        reader.violations.append(
            Violation("sbdh-business-message", f"{path}: the business message is missing")
        )
    document = StandardBusinessDocument(header, payload) if header is not None else None
    if document is not None:
        reader.violations.extend(_xml_structure(document))
    return JsonReading(document, tuple(reader.violations))


_PLACEHOLDER = XmlPayload(b'<placeholder xmlns="urn:budstikke:placeholder"/>')


def _xml_structure(document: StandardBusinessDocument) -> list[Violation]:
    """The SBDH 1.3 structure violations of the document's XML form.

    The JSON form is only a spelling of the same document: what the XML reader would refuse
    (no sender, a CreationDateAndTime that is no xs:dateTime, a scope without
    InstanceIdentifier) is refused here too, with the same ``sbdh-*`` rule ids.
    """
    # a detached business message has no XML form: the header is what is judged here
    held = document.payload is not None and not isinstance(document.payload, DetachedPayload)
    probe = document if held else replace(document, payload=_PLACEHOLDER)
    try:
        return list(read_sbd(parse_xml(sbd_to_xml(probe, pretty=False))).violations)
    except InvalidInput as exc:  # already reported by the JSON reader in its own terms
        return (
            []
            if exc.rule in ("nextmove-unrepresentable", "xml-characters")
            else [Violation(exc.rule or "json-structure", exc.message)]
        )


def sbd_from_json(data: bytes) -> StandardBusinessDocument:
    """Parse the NextMove JSON form strictly: any problem raises :class:`EnvelopeError`
    (or :class:`InvalidInput` when the bytes are not JSON)."""
    reading = read_json(data)
    if reading.violations or reading.document is None:
        raise EnvelopeError(
            reading.violations or [Violation("json-structure", "the SBD could not be read")]
        )
    return reading.document
