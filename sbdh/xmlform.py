"""The XML form of the Standard Business Document: read (with structure checks) and write.

Reading walks the document once against the SBDH 1.3 content model, written out here from the
UN/CEFACT specification: element order, cardinalities, required elements, the simple types
that matter (``xs:dateTime``, ``xs:boolean``, ``xs:integer``) and the ``##other`` business
message. Every departure becomes a :class:`~sbdh.errors.Violation` with an ``sbdh-*`` rule id,
and the walk goes on, so :mod:`sbdh.rules` can report every problem at once and still judge the
network rules on what could be read. :func:`sbd_from_xml` is the strict entry point: any
violation raises :class:`~sbdh.errors.EnvelopeError`.

One deliberate departure from the schema: eFormidling writes the abstract ``ScopeInformation``
element itself (with ``ExpectedResponseDateTime`` inside). It is accepted and kept as such.

Writing (:func:`sbd_to_xml`) gives back, in exclusive C14N, the document that was read, except
for what XML does not count as content of an element-only structure: indentation between the
envelope's own elements, comments and processing instructions outside the payload. The payload
is written from its canonical bytes, unchanged.

eFormidling business messages (``{urn:no:difi:meldingsutveksling:2.0}<type>`` with unqualified
children) are read into a :class:`~sbdh.model.BusinessMessage` JSON tree when, and only when,
that tree writes back to the same XML; otherwise they stay an :class:`~sbdh.model.XmlPayload`.
The mapping:

* a JSON object is an element per member, in member order; a member named ``n`` is element ``n``;
* an array is the element repeated, once per item (so an empty array writes nothing);
* ``null`` is an empty element with ``xsi:nil="true"``;
* ``true``/``false`` and numbers are their JSON text; strings are their text as they are;
* reading back, a leaf is a string unless the message type's field shapes
  (:func:`~sbdh.model.message_shapes`) make it an integer, number, boolean or array; a name that
  repeats is an array. A tree that would not read back identically - say a number in a field
  the table does not know, or an array of one item outside the table - is refused with rule
  ``nextmove-unrepresentable`` naming the field, rather than changed on the way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from sbdh.errors import EnvelopeError, InvalidInput, Violation
from sbdh.model import (
    ENVELOPE_NS,
    NEXTMOVE_NS,
    SBDH_NS,
    XSI_NS,
    BinaryContent,
    BusinessMessage,
    BusinessScope,
    BusinessService,
    ContactInformation,
    CorrelationInformation,
    DetachedPayload,
    DocumentIdentification,
    FieldShape,
    JsonObject,
    JsonValue,
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
    is_xs_datetime,
    message_shapes,
)
from sbdh.xmlsafe import parse_xml

__all__ = [
    "Reading",
    "business_message_element",
    "check_business_message",
    "is_xml_text",
    "read_sbd",
    "sbd_from_xml",
    "sbd_to_xml",
]

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: prefixes the writer uses when the model has none from a parsed document
_DEFAULT_NEXTMOVE_PREFIX = "nm"
_SCHEMA_LOCATION = f"{{{XSI_NS}}}schemaLocation"
_NIL = f"{{{XSI_NS}}}nil"


def _q(name: str) -> str:
    return f"{{{SBDH_NS}}}{name}"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Reading:
    """What a tolerant read of an XML SBD found.

    ``document`` is None when the header could not be modelled (a required header element is
    missing, or there is no header at all); ``header`` is set for a bare SBDH document too.
    """

    document: StandardBusinessDocument | None
    header: StandardBusinessDocumentHeader | None
    violations: tuple[Violation, ...]
    #: the root is a ``StandardBusinessDocumentHeader`` on its own, not an SBD
    bare_header: bool = False
    #: the SBD has a header element
    has_header: bool = False
    #: the SBD has character data where the business message should be
    text_instead_of_message: bool = False
    #: the business message element, when there is one (for rules that look inside it)
    payload_element: etree._Element | None = field(default=None, compare=False, repr=False)
    #: a ds:Signature follows the business message (verify it with sbdh.signing.verify_sbd)
    signed: bool = False


class _Walk:
    """One pass over the document, collecting violations as it goes."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def fail(self, rule: str, message: str) -> None:
        self.violations.append(Violation(rule, message))

    # -- generic helpers

    def children(self, element: etree._Element, path: str) -> list[etree._Element]:
        """Element children; character data in element-only content is a violation."""
        found: list[etree._Element] = []
        if element.text and element.text.strip():
            self.fail(
                "sbdh-text", f"{path}: text {element.text.strip()[:40]!r} is not allowed here"
            )
        for child in element:
            if isinstance(child.tag, str):
                found.append(child)
            if child.tail and child.tail.strip():
                self.fail(
                    "sbdh-text", f"{path}: text {child.tail.strip()[:40]!r} is not allowed here"
                )
        return found

    def attributes(self, element: etree._Element, path: str, allowed: Sequence[str] = ()) -> None:
        for name in element.attrib:
            if name not in allowed:
                self.fail(
                    "sbdh-attribute",
                    f"{path}: attribute {etree.QName(name).localname!r} is not allowed",
                )

    def text(self, element: etree._Element, path: str) -> str:
        """The text of a simple-typed element (comments inside are skipped)."""
        parts = [element.text or ""]
        for child in element:
            if isinstance(child.tag, str):
                self.fail(
                    "sbdh-unexpected-element", f"{path}: has child elements but holds text only"
                )
            parts.append(child.tail or "")
        return "".join(parts)

    def sequence(
        self,
        element: etree._Element,
        path: str,
        spec: Sequence[tuple[tuple[str, ...], int, int | None]],
    ) -> list[list[etree._Element]]:
        """Match element children against an ``xs:sequence`` of SBDH elements.

        ``spec`` lists (accepted local names, minOccurs, maxOccurs or None for unbounded).
        """
        children = self.children(element, path)
        matched: list[list[etree._Element]] = []
        index = 0
        for names, low, high in spec:
            group: list[etree._Element] = []
            while index < len(children) and (high is None or len(group) < high):
                qname = etree.QName(children[index])
                if qname.namespace != SBDH_NS or qname.localname not in names:
                    break
                group.append(children[index])
                index += 1
            if len(group) < low:
                self.fail("sbdh-missing-element", f"{path}: {names[0]} is required here")
            matched.append(group)
        expected = ", ".join(names[0] for names, _, _ in spec)
        for extra in children[index:]:
            qname = etree.QName(extra)
            self.fail(
                "sbdh-unexpected-element",
                f"{path}: {qname.localname} ({qname.namespace}) is not allowed here "
                f"(expected, in order: {expected})",
            )
        return matched

    def simple(
        self,
        group: list[etree._Element],
        path: str,
        check: Callable[[str], bool] | None = None,
        type_name: str = "",
    ) -> str | None:
        if not group:
            return None
        element = group[0]
        self.attributes(element, path)
        value = self.text(element, path)
        if check is not None and not check(value.strip()):
            self.fail(
                f"sbdh-{type_name.lower()}", f"{path}: {value!r} is not a valid xs:{type_name}"
            )
        return value

    # -- header

    def header(self, element: etree._Element) -> StandardBusinessDocumentHeader | None:
        path = "StandardBusinessDocumentHeader"
        self.attributes(element, path, (_SCHEMA_LOCATION,))
        version, senders, receivers, doc_id, manifest, scope = self.sequence(
            element,
            path,
            [
                (("HeaderVersion",), 1, 1),
                (("Sender",), 1, None),
                (("Receiver",), 1, None),
                (("DocumentIdentification",), 1, 1),
                (("Manifest",), 0, 1),
                (("BusinessScope",), 0, 1),
            ],
        )
        header_version = self.simple(version, f"{path}/HeaderVersion")
        sender_values = tuple(self.partner(e, f"{path}/Sender") for e in senders)
        receiver_values = tuple(self.partner(e, f"{path}/Receiver") for e in receivers)
        identification = self.document_identification(doc_id[0]) if doc_id else None
        manifest_value = self.manifest(manifest[0]) if manifest else None
        scope_value = self.business_scope(scope[0]) if scope else None
        if header_version is None or identification is None:
            return None
        return StandardBusinessDocumentHeader(
            header_version=header_version,
            senders=sender_values,
            receivers=receiver_values,
            document_identification=identification,
            manifest=manifest_value,
            business_scope=scope_value,
        )

    def partner(self, element: etree._Element, path: str) -> Partner:
        self.attributes(element, path)
        identifier, contacts = self.sequence(
            element, path, [(("Identifier",), 1, 1), (("ContactInformation",), 0, None)]
        )
        value, authority = "", None
        if identifier:
            self.attributes(identifier[0], f"{path}/Identifier", ("Authority",))
            value = self.text(identifier[0], f"{path}/Identifier")
            authority = identifier[0].get("Authority")
        return Partner(
            PartnerIdentifier(value, authority),
            tuple(self.contact(c, f"{path}/ContactInformation") for c in contacts),
        )

    def contact(self, element: etree._Element, path: str) -> ContactInformation:
        self.attributes(element, path)
        contact, email, fax, phone, kind = self.sequence(
            element,
            path,
            [
                (("Contact",), 1, 1),
                (("EmailAddress",), 0, 1),
                (("FaxNumber",), 0, 1),
                (("TelephoneNumber",), 0, 1),
                (("ContactTypeIdentifier",), 0, 1),
            ],
        )
        return ContactInformation(
            contact=self.simple(contact, f"{path}/Contact") or "",
            email_address=self.simple(email, f"{path}/EmailAddress"),
            fax_number=self.simple(fax, f"{path}/FaxNumber"),
            telephone_number=self.simple(phone, f"{path}/TelephoneNumber"),
            contact_type_identifier=self.simple(kind, f"{path}/ContactTypeIdentifier"),
        )

    def document_identification(self, element: etree._Element) -> DocumentIdentification | None:
        path = "DocumentIdentification"
        self.attributes(element, path)
        standard, version, instance, doc_type, multiple, created = self.sequence(
            element,
            path,
            [
                (("Standard",), 1, 1),
                (("TypeVersion",), 1, 1),
                (("InstanceIdentifier",), 1, 1),
                (("Type",), 1, 1),
                (("MultipleType",), 0, 1),
                (("CreationDateAndTime",), 1, 1),
            ],
        )
        values = [
            self.simple(standard, f"{path}/Standard"),
            self.simple(version, f"{path}/TypeVersion"),
            self.simple(instance, f"{path}/InstanceIdentifier"),
            self.simple(doc_type, f"{path}/Type"),
            self.simple(created, f"{path}/CreationDateAndTime", is_xs_datetime, "dateTime"),
        ]
        multiple_value = self.simple(multiple, f"{path}/MultipleType", _is_boolean, "boolean")
        if any(v is None for v in values):
            return None
        std, tv, iid, typ, cdt = (v or "" for v in values)
        return DocumentIdentification(std, tv, iid, typ, cdt, multiple_value)

    def manifest(self, element: etree._Element) -> Manifest | None:
        path = "Manifest"
        self.attributes(element, path)
        count, items = self.sequence(
            element, path, [(("NumberOfItems",), 1, 1), (("ManifestItem",), 1, None)]
        )
        number = self.simple(count, f"{path}/NumberOfItems", _is_integer, "integer")
        values: list[ManifestItem] = []
        for item in items:
            item_path = f"{path}/ManifestItem"
            self.attributes(item, item_path)
            mime, uri, description, language = self.sequence(
                item,
                item_path,
                [
                    (("MimeTypeQualifierCode",), 1, 1),
                    (("UniformResourceIdentifier",), 1, 1),
                    (("Description",), 0, 1),
                    (("LanguageCode",), 0, 1),
                ],
            )
            values.append(
                ManifestItem(
                    self.simple(mime, f"{item_path}/MimeTypeQualifierCode") or "",
                    self.simple(uri, f"{item_path}/UniformResourceIdentifier") or "",
                    self.simple(description, f"{item_path}/Description"),
                    self.simple(language, f"{item_path}/LanguageCode"),
                )
            )
        if number is None or not values:
            return None
        return Manifest(number, tuple(values))

    def business_scope(self, element: etree._Element) -> BusinessScope:
        path = "BusinessScope"
        self.attributes(element, path)
        (scopes,) = self.sequence(element, path, [(("Scope",), 0, None)])
        return BusinessScope(tuple(self.scope(e, f"{path}/Scope") for e in scopes))

    def scope(self, element: etree._Element, path: str) -> Scope:
        self.attributes(element, path)
        scope_type, instance, identifier, infos = self.sequence(
            element,
            path,
            [
                (("Type",), 1, 1),
                (("InstanceIdentifier",), 1, 1),
                (("Identifier",), 0, 1),
                (("ScopeInformation", "CorrelationInformation", "BusinessService"), 0, None),
            ],
        )
        return Scope(
            type=self.simple(scope_type, f"{path}/Type") or "",
            instance_identifier=self.simple(instance, f"{path}/InstanceIdentifier"),
            identifier=self.simple(identifier, f"{path}/Identifier"),
            scope_information=tuple(self.scope_information(e, path) for e in infos),
        )

    def scope_information(self, element: etree._Element, path: str) -> ScopeInformation:
        name = etree.QName(element).localname
        path = f"{path}/{name}"
        self.attributes(element, path)
        if name == "BusinessService":
            service_name, transaction = self.sequence(
                element,
                path,
                [(("BusinessServiceName",), 0, 1), (("ServiceTransaction",), 0, 1)],
            )
            attributes: tuple[tuple[str, str], ...] | None = None
            if transaction:
                self.attributes(transaction[0], f"{path}/ServiceTransaction", _SERVICE_TRANSACTION)
                if self.children(transaction[0], f"{path}/ServiceTransaction"):
                    self.fail(
                        "sbdh-unexpected-element", f"{path}/ServiceTransaction: must be empty"
                    )
                attributes = tuple(
                    sorted((str(k), str(v)) for k, v in transaction[0].attrib.items())
                )
                kind = transaction[0].get("TypeOfServiceTransaction")
                if kind is not None and kind not in _TRANSACTION_TYPES:
                    self.fail(
                        "sbdh-enumeration",
                        f"{path}/ServiceTransaction: TypeOfServiceTransaction {kind!r} is not one "
                        f"of {', '.join(_TRANSACTION_TYPES)}",
                    )
            return BusinessService(
                self.simple(service_name, f"{path}/BusinessServiceName"), attributes
            )
        created, instance, expected = self.sequence(
            element,
            path,
            [
                (("RequestingDocumentCreationDateTime",), 0, 1),
                (("RequestingDocumentInstanceIdentifier",), 0, 1),
                (("ExpectedResponseDateTime",), 0, 1),
            ],
        )
        return CorrelationInformation(
            requesting_document_creation_date_time=self.simple(
                created, f"{path}/RequestingDocumentCreationDateTime", is_xs_datetime, "dateTime"
            ),
            requesting_document_instance_identifier=self.simple(
                instance, f"{path}/RequestingDocumentInstanceIdentifier"
            ),
            expected_response_date_time=self.simple(
                expected, f"{path}/ExpectedResponseDateTime", is_xs_datetime, "dateTime"
            ),
            form=ScopeInformationForm(name),
        )


_SERVICE_TRANSACTION = (
    "TypeOfServiceTransaction",
    "IsNonRepudiationRequired",
    "IsAuthenticationRequired",
    "IsNonRepudiationOfReceiptRequired",
    "IsIntelligibleCheckRequired",
    "IsApplicationErrorResponseRequested",
    "TimeToAcknowledgeReceipt",
    "TimeToAcknowledgeAcceptance",
    "TimeToPerform",
    "Recurrence",
)
_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"
_TRANSACTION_TYPES = ("RequestingServiceTransaction", "RespondingServiceTransaction")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _is_boolean(value: str) -> bool:
    return value in ("true", "false", "1", "0")


def _is_integer(value: str) -> bool:
    return bool(_INTEGER.match(value))


def read_sbd(root: etree._Element) -> Reading:
    """Walk a parsed document (root from :func:`sbdh.xmlsafe.parse_xml`) and model what it can."""
    walk = _Walk()
    qname = etree.QName(root)
    if qname.namespace == SBDH_NS and qname.localname == "StandardBusinessDocumentHeader":
        header = walk.header(root)
        return Reading(None, header, tuple(walk.violations), bare_header=True, has_header=True)
    if qname.namespace != SBDH_NS or qname.localname != "StandardBusinessDocument":
        walk.fail(
            "sbdh-root",
            f"the root element is {{{qname.namespace}}}{qname.localname}, not a "
            "StandardBusinessDocument",
        )
        return Reading(None, None, tuple(walk.violations))
    walk.attributes(root, "StandardBusinessDocument", (_SCHEMA_LOCATION,))
    elements = walk.children(root, "StandardBusinessDocument")
    text_found = any(v.rule == "sbdh-text" for v in walk.violations)
    header_element: etree._Element | None = None
    if (
        elements
        and etree.QName(elements[0]).namespace == SBDH_NS
        and (etree.QName(elements[0]).localname == "StandardBusinessDocumentHeader")
    ):
        header_element = elements.pop(0)
    header = walk.header(header_element) if header_element is not None else None
    signed = False
    if len(elements) >= 2 and elements[-1].tag == _DS_SIGNATURE:
        # A signed SBD (sbdh.signing) carries its enveloped signature as the last child. The
        # SBDH schema has no place for it; we allow exactly this one position. The model is the
        # unsigned document: only sbdh.signing.verify_sbd can say what the signature covers.
        elements.pop()
        signed = True
    payload_element: etree._Element | None = None
    if not elements:
        walk.fail(
            "sbdh-business-message",
            "the business message (an element in a namespace other than the SBDH one) is missing",
        )
    else:
        payload_element = elements[0]
        namespace = etree.QName(payload_element).namespace
        if namespace is None or namespace == SBDH_NS:
            walk.fail(
                "sbdh-business-message",
                f"the business message {etree.QName(payload_element).localname} must be in a "
                "namespace other than the SBDH one",
            )
        for extra in elements[1:]:
            walk.fail(
                "sbdh-unexpected-element",
                f"StandardBusinessDocument: {etree.QName(extra).localname} follows the business "
                "message; an SBD carries exactly one",
            )
    payload = _read_payload(payload_element) if payload_element is not None else None
    document = None
    if header is not None:
        document = StandardBusinessDocument(
            header,
            payload,
            xml_prefix=root.prefix or "",
            schema_location=root.get(_SCHEMA_LOCATION),
        )
    return Reading(
        document,
        header,
        tuple(walk.violations),
        has_header=header_element is not None,
        text_instead_of_message=text_found and payload_element is None,
        payload_element=payload_element,
        signed=signed,
    )


def sbd_from_xml(data: bytes) -> StandardBusinessDocument:
    """Parse an SBD (through the hardened parser) and check its structure.

    Raises :class:`~sbdh.errors.XmlSecurityError` or :class:`~sbdh.errors.InvalidInput` for
    refused or malformed XML and :class:`~sbdh.errors.EnvelopeError` listing every structure
    violation. Network rules (Peppol, eFormidling) are :mod:`sbdh.rules`' business.
    """
    reading = read_sbd(parse_xml(data))
    if reading.violations:
        raise EnvelopeError(reading.violations)
    if reading.bare_header:
        raise EnvelopeError(
            [Violation("sbdh-root", "the document is a header on its own, not an SBD")]
        )
    if reading.document is None:  # the schema lets an SBD go without a header; we cannot
        raise EnvelopeError([Violation("no-sbdh", "the SBD has no StandardBusinessDocumentHeader")])
    return reading.document


# --------------------------------------------------------------------------- payloads


def _read_payload(element: etree._Element) -> Payload:
    qname = etree.QName(element)
    if qname.namespace == ENVELOPE_NS:
        wrapped = _read_envelope_content(element, qname.localname)
        if wrapped is not None:
            return wrapped
    if qname.namespace == NEXTMOVE_NS and element.prefix:
        try:
            message = _read_business_message(element)
        except (_Unrepresentable, InvalidInput):  # e.g. a reserved type name: keep it verbatim
            message = None
        if message is not None:
            return message
    return XmlPayload.from_element(element)


def _read_envelope_content(element: etree._Element, name: str) -> Payload | None:
    """The Peppol wrapper as a typed payload, or None when it has more than the model holds."""
    if len(element) or element.get("mimeType") is None:
        return None  # child nodes (even comments) or no mimeType: keep it verbatim
    prefix = element.prefix or ""
    text = element.text or ""
    if name == "BinaryContent" and set(element.attrib) <= {"mimeType", "encoding"}:
        return BinaryContent(str(element.get("mimeType")), text, element.get("encoding"), prefix)
    if name == "TextContent" and set(element.attrib) <= {"mimeType"}:
        return TextContent(str(element.get("mimeType")), text, prefix)
    return None


class _Unrepresentable(Exception):
    """A business message that the JSON tree cannot carry (internal: caught in this module)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


_XML_CHARS = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")


def is_xml_text(text: str) -> bool:
    """Whether every character of ``text`` is an XML 1.0 character."""
    return bool(_XML_CHARS.match(text))


_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_CANONICAL_INTEGER = re.compile(r"^-?(0|[1-9][0-9]*)$")


def _read_business_message(element: etree._Element) -> BusinessMessage | None:
    message_type = etree.QName(element).localname
    message = BusinessMessage(
        message_type, _message_body(element, message_type), xml_prefix=element.prefix or ""
    )
    # keep the tree only if it writes back to the same XML (indentation aside)
    if _comparable(business_message_element(message)) != _comparable(element):
        return None
    return message


def _message_body(element: etree._Element, message_type: str) -> JsonObject:
    if element.attrib:
        raise _Unrepresentable(message_type, "the message element has attributes")
    if not len(element) and not (element.text or "").strip():
        return JsonObject()
    body = _element_value(element, message_shapes(message_type), message_type)
    if not isinstance(body, JsonObject):
        raise _Unrepresentable(message_type, "the message is text, not an object")
    return body


def _element_value(
    element: etree._Element, shapes: Mapping[str, FieldShape], path: str
) -> JsonValue:
    if set(element.attrib) - {_NIL}:
        raise _Unrepresentable(path, "attributes have no place in the JSON form")
    if element.get(_NIL) is not None:
        if element.get(_NIL) != "true" or len(element) or element.text:
            raise _Unrepresentable(path, "xsi:nil with content, or not 'true'")
        return None
    nodes = list(element)
    if any(not isinstance(node.tag, str) for node in nodes):
        raise _Unrepresentable(path, "comments or processing instructions")
    if not nodes:
        return element.text or ""
    if (element.text or "").strip() or any((node.tail or "").strip() for node in nodes):
        raise _Unrepresentable(path, "mixed content")
    groups: dict[str, list[etree._Element]] = {}
    previous: str | None = None
    for node in nodes:
        qname = etree.QName(node)
        if qname.namespace is not None:
            raise _Unrepresentable(path, f"child {qname.localname} is namespace-qualified")
        if qname.localname in groups and previous != qname.localname:
            raise _Unrepresentable(path, f"{qname.localname} repeats, but not in one run")
        groups.setdefault(qname.localname, []).append(node)
        previous = qname.localname
    members: list[tuple[str, JsonValue]] = []
    for name, group in groups.items():
        shape = shapes.get(name)
        child_path = f"{path}/{name}"
        if shape in (FieldShape.ARRAY, FieldShape.INTEGER_ARRAY) or len(group) > 1:
            item_shape = FieldShape.INTEGER if shape is FieldShape.INTEGER_ARRAY else None
            items = tuple(_typed(node, shapes, child_path, item_shape) for node in group)
            members.append((name, items))
        else:
            members.append((name, _typed(group[0], shapes, child_path, shape)))
    return JsonObject(tuple(members))


def _typed(
    element: etree._Element, shapes: Mapping[str, FieldShape], path: str, shape: FieldShape | None
) -> JsonValue:
    """A field's value: objects and null as read; leaf text converted by its declared shape."""
    value = _element_value(element, shapes, path)
    if not isinstance(value, str) or len(element):
        return value
    if shape is FieldShape.INTEGER and _CANONICAL_INTEGER.match(value):
        return int(value)
    if shape is FieldShape.BOOLEAN and value in ("true", "false"):
        return value == "true"
    if shape is FieldShape.NUMBER:
        number = _number(value)
        if number is not None:
            return number
    return value


def _number(text: str) -> int | float | None:
    if _CANONICAL_INTEGER.match(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or repr(number) != text:
        return None
    return number


def _json_text(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def business_message_element(message: BusinessMessage) -> etree._Element:
    """The XML form of an eFormidling business message, as a new standalone element."""
    prefix = message.xml_prefix or _DEFAULT_NEXTMOVE_PREFIX
    root = etree.Element(f"{{{NEXTMOVE_NS}}}{message.type}", nsmap={prefix: NEXTMOVE_NS})
    _write_members(root, message.body, message.type)
    return root


def _write_members(parent: etree._Element, body: JsonObject, path: str) -> None:
    for name, value in body.members:
        if not _NCNAME.match(name):
            raise _Unrepresentable(f"{path}/{name}", "the name is not an XML element name")
        if isinstance(value, tuple):
            for item in value:
                if isinstance(item, tuple):
                    raise _Unrepresentable(f"{path}/{name}", "arrays of arrays have no XML form")
                _write_value(parent, name, item, f"{path}/{name}")
        else:
            _write_value(parent, name, value, f"{path}/{name}")


def _write_value(parent: etree._Element, name: str, value: JsonValue, path: str) -> None:
    child = etree.SubElement(parent, name)
    if value is None:
        child.set(_NIL, "true")
    elif isinstance(value, JsonObject):
        _write_members(child, value, path)
    elif isinstance(value, tuple):  # pragma: no cover - callers unpack arrays
        raise _Unrepresentable(path, "nested array")
    else:
        if isinstance(value, float) and not math.isfinite(value):
            raise _Unrepresentable(path, "numbers must be finite")
        text = _json_text(value)
        if not is_xml_text(text):
            raise _Unrepresentable(path, "holds characters that XML 1.0 cannot carry")
        child.text = text


def _strictly_equal(left: JsonValue, right: JsonValue) -> bool:
    """Equality that tells 1, 1.0 and True apart, as JSON does."""
    if type(left) is not type(right):
        return False
    if isinstance(left, JsonObject) and isinstance(right, JsonObject):
        return [k for k, _ in left.members] == [k for k, _ in right.members] and all(
            _strictly_equal(a, b)
            for (_, a), (_, b) in zip(left.members, right.members, strict=True)
        )
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(
            _strictly_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return left == right


def _first_difference(left: JsonValue, right: JsonValue, path: str) -> str:
    if isinstance(left, JsonObject) and isinstance(right, JsonObject):
        for key, value in left.members:
            if key not in right:
                return f"{path}/{key}"
            if not _strictly_equal(value, right.get(key)):
                return _first_difference(value, right.get(key), f"{path}/{key}")
    if isinstance(left, tuple) and isinstance(right, tuple) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            if not _strictly_equal(a, b):
                return _first_difference(a, b, f"{path}/{index}")
    return path


def check_business_message(message: BusinessMessage) -> None:
    """Raise :class:`InvalidInput` (rule ``nextmove-unrepresentable``) unless the message's XML
    form reads back to the very same JSON tree."""
    try:
        again = _message_body(business_message_element(message), message.type)
    except _Unrepresentable as exc:
        raise InvalidInput(
            f"business message field {exc.path}: {exc.reason}", rule="nextmove-unrepresentable"
        ) from exc
    if not _strictly_equal(message.body, again):
        where = _first_difference(message.body, again, message.type)
        raise InvalidInput(
            f"business message field {where} would not survive the XML form: the shape table "
            f"for {message.type!r} reads it back differently (a field the table does not "
            "declare is a string or an object; numbers, booleans and arrays need a declared "
            "shape, except arrays of two or more items)",
            rule="nextmove-unrepresentable",
        )


def _comparable(element: etree._Element) -> bytes:
    """Exclusive C14N of a standalone copy, without indentation in element-only content."""
    copy = parse_xml(etree.tostring(element, with_tail=False))
    for node in copy.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        for child in node:
            if child.tail is not None and not child.tail.strip():
                child.tail = None
    return etree.tostring(copy, method="c14n", exclusive=True)


# --------------------------------------------------------------------------- writing


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, _q(name))
    if text is not None:
        if not is_xml_text(text):
            raise InvalidInput(
                f"{name} holds characters that XML 1.0 cannot carry", rule="xml-characters"
            )
        child.text = text
    return child


def _optional(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        _sub(parent, name, text)


def _header_element(parent: etree._Element, header: StandardBusinessDocumentHeader) -> None:
    element = _sub(parent, "StandardBusinessDocumentHeader")
    _sub(element, "HeaderVersion", header.header_version)
    for name, partners in (("Sender", header.senders), ("Receiver", header.receivers)):
        for partner in partners:
            node = _sub(element, name)
            identifier = _sub(node, "Identifier", partner.identifier.value)
            if partner.identifier.authority is not None:
                if not is_xml_text(partner.identifier.authority):
                    raise InvalidInput(
                        "Authority holds characters that XML 1.0 cannot carry",
                        rule="xml-characters",
                    )
                identifier.set("Authority", partner.identifier.authority)
            for contact in partner.contact_information:
                contact_node = _sub(node, "ContactInformation")
                _sub(contact_node, "Contact", contact.contact)
                _optional(contact_node, "EmailAddress", contact.email_address)
                _optional(contact_node, "FaxNumber", contact.fax_number)
                _optional(contact_node, "TelephoneNumber", contact.telephone_number)
                _optional(contact_node, "ContactTypeIdentifier", contact.contact_type_identifier)
    ident = header.document_identification
    node = _sub(element, "DocumentIdentification")
    _sub(node, "Standard", ident.standard)
    _sub(node, "TypeVersion", ident.type_version)
    _sub(node, "InstanceIdentifier", ident.instance_identifier)
    _sub(node, "Type", ident.type)
    _optional(node, "MultipleType", ident.multiple_type)
    _sub(node, "CreationDateAndTime", ident.creation_date_and_time)
    if header.manifest is not None:
        node = _sub(element, "Manifest")
        _sub(node, "NumberOfItems", header.manifest.number_of_items)
        for item in header.manifest.items:
            entry = _sub(node, "ManifestItem")
            _sub(entry, "MimeTypeQualifierCode", item.mime_type_qualifier_code)
            _sub(entry, "UniformResourceIdentifier", item.uniform_resource_identifier)
            _optional(entry, "Description", item.description)
            _optional(entry, "LanguageCode", item.language_code)
    if header.business_scope is not None:
        node = _sub(element, "BusinessScope")
        for scope in header.business_scope.scopes:
            entry = _sub(node, "Scope")
            _sub(entry, "Type", scope.type)
            _optional(entry, "InstanceIdentifier", scope.instance_identifier)
            _optional(entry, "Identifier", scope.identifier)
            for info in scope.scope_information:
                _scope_information(entry, info)


def _scope_information(parent: etree._Element, info: ScopeInformation) -> None:
    if isinstance(info, BusinessService):
        node = _sub(parent, "BusinessService")
        _optional(node, "BusinessServiceName", info.business_service_name)
        if info.service_transaction is not None:
            transaction = _sub(node, "ServiceTransaction")
            for name, value in info.service_transaction:
                transaction.set(name, value)
        return
    node = _sub(parent, info.form.value)
    _optional(
        node, "RequestingDocumentCreationDateTime", info.requesting_document_creation_date_time
    )
    _optional(
        node, "RequestingDocumentInstanceIdentifier", info.requesting_document_instance_identifier
    )
    _optional(node, "ExpectedResponseDateTime", info.expected_response_date_time)


def _payload_bytes(payload: Payload, pretty: bool) -> bytes:
    if isinstance(payload, DetachedPayload):
        raise InvalidInput(
            f"the business message {payload.local_name} is held as a file of "
            f"{payload.sbd_size} bytes, not in the model: pass that file on as it is",
            rule="sbd-detached",
        )
    if isinstance(payload, XmlPayload):
        return payload.canonical
    if isinstance(payload, BusinessMessage):
        check_business_message(payload)
        # our own element: indentation here is not content (see _comparable), so it may be pretty
        element = business_message_element(payload)
        return etree.tostring(element, encoding="UTF-8", pretty_print=pretty).rstrip()
    prefix = payload.xml_prefix or None
    name = "BinaryContent" if isinstance(payload, BinaryContent) else "TextContent"
    element = etree.Element(f"{{{ENVELOPE_NS}}}{name}", nsmap={prefix: ENVELOPE_NS})
    element.set("mimeType", payload.mime_type)
    if isinstance(payload, BinaryContent) and payload.encoding is not None:
        element.set("encoding", payload.encoding)
    element.text = payload.value
    return etree.tostring(element, encoding="UTF-8")


_START_TAG = re.compile(rb'^<(?P<name>[^\s/>]+)(?P<rest>(?:\s+[^\s=]+="[^"]*")*)\s*/?>')


def _undeclare_default(payload: bytes) -> bytes:
    """Add ``xmlns=""`` to the payload root when it declares no default namespace.

    Needed when the envelope uses the default namespace: the payload's unprefixed elements
    would otherwise fall into the SBDH namespace once spliced in.
    """
    match = _START_TAG.match(payload)
    if match is None:  # pragma: no cover - payload bytes come from lxml serialisation
        raise ValueError("payload does not start with a start tag")
    if re.search(rb'\sxmlns="', match["rest"]):
        return payload
    end = match.end("name")
    return payload[:end] + b' xmlns=""' + payload[end:]


def sbd_to_xml(document: StandardBusinessDocument, *, pretty: bool = True) -> bytes:
    """The XML form of ``document``, UTF-8 with an XML declaration.

    The payload is spliced in from its own bytes rather than through the tree, so it comes out
    exactly as held (and a refused business message raises before anything is produced).
    """
    if document.payload is None:
        raise EnvelopeError(
            [
                Violation(
                    "sbdh-business-message", "an SBD without a business message has no XML form"
                )
            ]
        )
    prefix = document.xml_prefix if document.xml_prefix is not None else ""
    nsmap: dict[str | None, str] = {prefix or None: SBDH_NS}
    if document.schema_location is not None:
        nsmap["xsi"] = XSI_NS
    root = etree.Element(_q("StandardBusinessDocument"), nsmap=nsmap)
    if document.schema_location is not None:
        root.set(_SCHEMA_LOCATION, document.schema_location)
    _header_element(root, document.header)
    try:
        payload = _payload_bytes(document.payload, pretty)
    except _Unrepresentable as exc:
        raise InvalidInput(
            f"business message field {exc.path}: {exc.reason}", rule="nextmove-unrepresentable"
        ) from exc
    if not prefix:
        payload = _undeclare_default(payload)
    text = etree.tostring(
        root, encoding="UTF-8", xml_declaration=False, pretty_print=pretty
    ).rstrip()
    end_tag = f"</{prefix + ':' if prefix else ''}StandardBusinessDocument>".encode()
    if not text.endswith(end_tag):  # pragma: no cover - lxml always closes a root with children
        raise ValueError("unexpected serialisation of the envelope")
    body = text[: -len(end_tag)].rstrip()
    joint = b"\n  " if pretty else b""
    return _XML_DECLARATION + body + joint + payload + (b"\n" if pretty else b"") + end_tag + b"\n"
