"""WS-Security 1.1 message signatures as the eDelivery AS4 profile uses them, made and checked.

One ``ds:Signature`` in ``wsse:Security``: RSA-SHA256 over exclusive c14n, one SHA-256 reference
each for ``eb:Messaging`` and ``S12:Body`` (by ``wsu:Id``, exclusive c14n) and for every
attachment (``cid:``, SwA Attachment-Content-Signature-Transform, i.e. the attachment's bytes);
the key is a BinarySecurityToken (X509v3) referenced from KeyInfo.

Verification follows the discipline of :mod:`sbdh.signing`: the profile is fixed, not
negotiated, and everything is checked before any digest is trusted:

* every id in the document is unique (a copy of a signed element under the same id is the
  classic wrapping attack);
* every reference resolves, by id, to *the* ``eb:Messaging`` and *the* ``S12:Body`` the
  processor reads (the very element objects), or to an attachment that is present; each target
  is referenced once, and the header, the body and every payload must be covered;
* only the profile's algorithms and transforms are accepted;
* the key is the token the signature points at, inside the same ``wsse:Security``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from .errors import FailedAuthentication, PolicyNoncompliance
from .mime import content_id_of_href
from .model import SignedReference
from .signer import load_token_certificate
from .spec import NS, Algorithm

__all__ = ["VerifiedSignature", "c14n", "index_ids", "q", "verify_signature"]

_WSU_ID: Final = f"{{{NS.WSU}}}Id"
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def c14n(element: etree._Element, prefixes: Sequence[str] | None = None) -> bytes:
    """Exclusive XML canonicalisation without comments (the profile's only form).

    ``prefixes`` is an InclusiveNamespaces PrefixList. lxml canonicalises a subtree in a copy
    that keeps only the namespaces it uses, so the ``#default`` token (the in-scope default
    namespace, used or not) is applied here: its declaration is the first on the apex.
    """
    out: bytes = etree.tostring(
        element,
        method="c14n",
        exclusive=True,
        with_comments=False,
        inclusive_ns_prefixes=[p for p in prefixes if p != "#default"] if prefixes else None,
    )
    if prefixes and "#default" in prefixes:
        default = element.nsmap.get(None)
        if default and element.prefix is not None:
            if any(
                isinstance(e.tag, str) and e.prefix is None and e.tag.startswith(f"{{{default}}}")
                for e in element.iter()
            ):
                # lxml would declare it again below the apex; rare enough not to rewrite
                raise PolicyNoncompliance(
                    "InclusiveNamespaces #default over a subtree that itself uses the default "
                    "namespace below a prefixed apex is not supported",
                    rule="as4-signature-profile",
                )
            # the in-scope default namespace, declared first on the apex
            uri = default.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            end = out.index(b">")
            name_end = min(i for i in (out.find(b" ", 0, end), end) if i > 0)
            out = out[:name_end] + f' xmlns="{uri}"'.encode() + out[name_end:]
    return out


# --------------------------------------------------------------------------- checking


# evaluated per call: compiled XPath objects must not be shared between threads
_ID_ATTRIBUTES = "//@*[local-name()='Id' or local-name()='ID' or local-name()='id']"


def index_ids(root: etree._Element) -> dict[str, etree._Element]:
    """Every element id in the document: any attribute named ``Id``, ``ID`` or ``id`` in any
    namespace or none (wsu:Id, xml:id, ds and xenc ``Id``, Domibus's ``id``).

    Raises :class:`FailedAuthentication` when two elements share an id.
    """
    index: dict[str, etree._Element] = {}
    found = root.xpath(_ID_ATTRIBUTES)
    assert isinstance(found, list)
    for value in found:
        element = value.getparent()
        text = str(value)
        seen = index.get(text)
        if seen is not None and seen is not element:
            raise FailedAuthentication(
                f"the id {text!r} is used by more than one element (signature wrapping?)",
                rule="as4-duplicate-id",
            )
        index[text] = element
    return index


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature whose value and XML references verified; attachment digests still to check."""

    signer: x509.Certificate
    references: tuple[SignedReference, ...]
    #: Content-ID → the SHA-256 the signature says the attachment's content has
    attachment_digests: Mapping[str, bytes]


def _children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _prefix_list(method: etree._Element) -> list[str] | None:
    """The ec:InclusiveNamespaces PrefixList under a c14n method or transform, if any."""
    children = _children(method)
    if not children:
        return None
    if len(children) != 1 or children[0].tag != q(NS.EC, "InclusiveNamespaces"):
        raise PolicyNoncompliance(
            "only an ec:InclusiveNamespaces may parameterise exclusive c14n",
            rule="as4-signature-profile",
        )
    return (children[0].get("PrefixList") or "").split()


def _one(parent: etree._Element, ns: str, name: str, what: str) -> etree._Element:
    found = [child for child in _children(parent) if child.tag == q(ns, name)]
    if len(found) != 1:
        raise PolicyNoncompliance(
            f"{what} must hold exactly one {name}, found {len(found)}", rule="as4-signature-profile"
        )
    return found[0]


def _signing_token(security: etree._Element, signature: etree._Element) -> x509.Certificate:
    key_info = _one(signature, NS.DS, "KeyInfo", "ds:Signature")
    token_ref = _one(key_info, NS.WSSE, "SecurityTokenReference", "ds:KeyInfo")
    refs = [c for c in _children(token_ref) if c.tag == q(NS.WSSE, "Reference")]
    if len(refs) != 1 or not (refs[0].get("URI") or "").startswith("#"):
        raise PolicyNoncompliance(
            "the signing key must be a BinarySecurityToken referenced by wsse:Reference "
            "(Peppol AS4 2.0.2)",
            rule="as4-signature-keyinfo",
        )
    token_id = (refs[0].get("URI") or "")[1:]
    value_type = refs[0].get("ValueType")
    if value_type is not None and value_type != Algorithm.X509V3:
        raise PolicyNoncompliance(
            f"token reference of type {value_type}; the profile uses X509v3",
            rule="as4-signature-keyinfo",
        )
    tokens = [
        c
        for c in _children(security)
        if c.tag == q(NS.WSSE, "BinarySecurityToken") and c.get(_WSU_ID) == token_id
    ]
    if len(tokens) != 1:
        raise FailedAuthentication(
            f"the signature's key names token {token_id!r}, which is not exactly one "
            "BinarySecurityToken in this wsse:Security",
            rule="as4-signature-keyinfo",
        )
    token = tokens[0]
    if token.get("ValueType") != Algorithm.X509V3:
        raise PolicyNoncompliance(
            f"BinarySecurityToken of type {token.get('ValueType')}; the profile uses X509v3",
            rule="as4-signature-keyinfo",
        )
    encoding = token.get("EncodingType")
    if encoding is not None and encoding != Algorithm.BASE64_BINARY:
        raise PolicyNoncompliance(
            f"BinarySecurityToken encoding {encoding} is not Base64Binary",
            rule="as4-signature-keyinfo",
        )
    return load_token_certificate(token.text)


def verify_signature(
    security: etree._Element,
    *,
    ids: Mapping[str, etree._Element],
    messaging: etree._Element,
    body: etree._Element,
    attachments: frozenset[str],
    keep_xml: bool = True,
) -> VerifiedSignature:
    """Check the one ds:Signature in ``security`` against the profile and its own key.

    ``ids`` is :func:`index_ids` of the document; ``attachments`` the Content-IDs that must be
    signed (the payload parts). Trust in the key is the caller's next step. Raises
    :class:`PolicyNoncompliance` (EBMS:0103) for a signature outside the profile or one that
    leaves something uncovered, :class:`FailedAuthentication` (EBMS:0101) for one that does not
    verify or points elsewhere than the processor reads.
    """
    signatures = [c for c in _children(security) if c.tag == q(NS.DS, "Signature")]
    if not signatures:
        raise PolicyNoncompliance("the message is not signed", rule="as4-signature-missing")
    if len(signatures) > 1:
        raise PolicyNoncompliance(
            "more than one ds:Signature in wsse:Security", rule="as4-signature-profile"
        )
    signature = signatures[0]
    parts = _children(signature)
    if (
        len(parts) < 3
        or parts[0].tag != q(NS.DS, "SignedInfo")
        or parts[1].tag != q(NS.DS, "SignatureValue")
        or any(p.tag not in (q(NS.DS, "KeyInfo"), q(NS.DS, "Object")) for p in parts[2:])
    ):
        raise PolicyNoncompliance(
            "ds:Signature must hold SignedInfo, SignatureValue and KeyInfo",
            rule="as4-signature-profile",
        )
    signed_info = parts[0]
    info_parts = _children(signed_info)
    if (
        len(info_parts) < 3
        or info_parts[0].tag != q(NS.DS, "CanonicalizationMethod")
        or info_parts[1].tag != q(NS.DS, "SignatureMethod")
    ):
        raise PolicyNoncompliance(
            "ds:SignedInfo must hold CanonicalizationMethod, SignatureMethod, References",
            rule="as4-signature-profile",
        )
    c14n_method, signature_method, references = info_parts[0], info_parts[1], info_parts[2:]
    if c14n_method.get("Algorithm") != Algorithm.EXC_C14N:
        raise PolicyNoncompliance(
            f"canonicalisation {c14n_method.get('Algorithm')} is not exclusive c14n",
            rule="as4-signature-profile",
        )
    signed_info_prefixes = _prefix_list(c14n_method)
    if signature_method.get("Algorithm") != Algorithm.RSA_SHA256 or len(signature_method):
        raise PolicyNoncompliance(
            f"signature method {signature_method.get('Algorithm')} is not RSA-SHA256",
            rule="as4-signature-profile",
        )

    checked: list[SignedReference] = []
    xml_targets: list[tuple[etree._Element, list[str] | None, bytes, str]] = []
    attachment_digests: dict[str, bytes] = {}
    covered: set[int] = set()
    for reference in references:
        if reference.tag != q(NS.DS, "Reference"):
            raise PolicyNoncompliance(
                f"unexpected {etree.QName(reference).localname} in ds:SignedInfo",
                rule="as4-signature-profile",
            )
        uri = reference.get("URI")
        ref_parts = _children(reference)
        if (
            uri is None
            or len(ref_parts) != 3
            or [p.tag for p in ref_parts]
            != [q(NS.DS, "Transforms"), q(NS.DS, "DigestMethod"), q(NS.DS, "DigestValue")]
        ):
            raise PolicyNoncompliance(
                "each ds:Reference needs a URI, Transforms, DigestMethod and DigestValue",
                rule="as4-signature-profile",
            )
        transforms_el, digest_method, digest_value = ref_parts
        if digest_method.get("Algorithm") != Algorithm.SHA256 or len(digest_method):
            raise PolicyNoncompliance(
                f"digest method {digest_method.get('Algorithm')} is not SHA-256",
                rule="as4-signature-profile",
            )
        try:
            digest = base64.b64decode("".join((digest_value.text or "").split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FailedAuthentication(
                f"the digest of {uri} is not base64", rule="as4-signature-invalid"
            ) from exc
        if len(digest) != 32:
            raise FailedAuthentication(
                f"the digest of {uri} is not a SHA-256 value", rule="as4-signature-invalid"
            )
        transforms = _children(transforms_el)
        if len(transforms) != 1 or transforms[0].tag != q(NS.DS, "Transform"):
            raise PolicyNoncompliance(
                f"reference {uri} must have exactly one transform", rule="as4-signature-profile"
            )
        transform = transforms[0].get("Algorithm")
        if uri.startswith("#"):
            if transform != Algorithm.EXC_C14N:
                raise PolicyNoncompliance(
                    f"reference {uri} uses transform {transform}; exclusive c14n is required",
                    rule="as4-signature-profile",
                )
            target = ids.get(uri[1:])
            if target is None:
                raise FailedAuthentication(
                    f"reference {uri} names no element of the message",
                    rule="as4-signature-wrapping",
                )
            if target is not messaging and target is not body:
                raise FailedAuthentication(
                    f"reference {uri} covers {etree.QName(target).localname}, not the message's "
                    "eb:Messaging or S12:Body (signature wrapping?)",
                    rule="as4-signature-wrapping",
                )
            if id(target) in covered:
                raise FailedAuthentication(
                    f"{etree.QName(target).localname} is referenced twice",
                    rule="as4-signature-wrapping",
                )
            covered.add(id(target))
            xml_targets.append((target, _prefix_list(transforms[0]), digest, uri))
        elif uri.startswith("cid:"):
            if transform != Algorithm.ATTACHMENT_CONTENT_SIGNATURE or len(transforms[0]):
                raise PolicyNoncompliance(
                    f"reference {uri} uses transform {transform}; the profile signs attachments "
                    "with Attachment-Content-Signature-Transform",
                    rule="as4-signature-profile",
                )
            cid = content_id_of_href(uri) or ""
            if cid in attachment_digests:
                raise FailedAuthentication(
                    f"{uri} is referenced twice", rule="as4-signature-wrapping"
                )
            attachment_digests[cid] = digest
        else:
            raise PolicyNoncompliance(
                f"reference URI {uri!r} is neither a same-document id nor an attachment",
                rule="as4-signature-profile",
            )
        checked.append(
            SignedReference(
                uri=uri,
                digest_method=Algorithm.SHA256.value,
                digest_value=base64.b64encode(digest).decode("ascii"),
                transforms=(transform,),
                xml=c14n(reference) if keep_xml else b"",
            )
        )

    if id(messaging) not in covered:
        raise PolicyNoncompliance(
            "the signature does not cover eb:Messaging", rule="as4-signature-coverage"
        )
    if id(body) not in covered:
        raise PolicyNoncompliance(
            "the signature does not cover S12:Body", rule="as4-signature-coverage"
        )
    missing = attachments - attachment_digests.keys()
    if missing:
        raise PolicyNoncompliance(
            f"the signature does not cover the payload cid:{sorted(missing)[0]}",
            rule="as4-signature-coverage",
        )
    unknown = attachment_digests.keys() - attachments
    if unknown:
        raise FailedAuthentication(
            f"the signature covers cid:{sorted(unknown)[0]}, which is not a payload of the message",
            rule="as4-signature-wrapping",
        )

    certificate = _signing_token(security, signature)
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise PolicyNoncompliance(
            "the signing certificate does not hold an RSA key", rule="as4-signature-profile"
        )
    try:
        value = base64.b64decode("".join((parts[1].text or "").split()), validate=True)
        public_key.verify(value, c14n(signed_info, signed_info_prefixes), _PKCS1, _SHA256)
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise FailedAuthentication(
            "the signature value does not verify", rule="as4-signature-invalid"
        ) from exc
    for target, prefixes, digest, uri in xml_targets:
        if hashlib.sha256(c14n(target, prefixes)).digest() != digest:
            raise FailedAuthentication(
                f"{etree.QName(target).localname} ({uri}) was altered after signing",
                rule="as4-digest-mismatch",
            )
    return VerifiedSignature(certificate, tuple(checked), attachment_digests)
