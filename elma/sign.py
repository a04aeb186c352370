"""Sign SMP answers the way a Peppol SMP does, for the local SMP/ELMA server.

One enveloped XMLDSig signature over the whole document: RSA-SHA256, SHA-256 digest, exclusive
c14n, ``Reference URI=""`` with the enveloped-signature transform, and the signing certificate
(then its issuers) in ``KeyInfo/X509Data``. Peppol and BDXR 1.0 wrap the ServiceMetadata in a
``SignedServiceMetadata`` and sign that; SMP 2.0 signs the ``ServiceMetadata`` (or
``ServiceGroup``) itself, the signature as its last child. What is signed here verifies with
:mod:`elma.verify` under its default policy.
"""

from __future__ import annotations

from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
)

from elma.build import service_group_element, service_metadata_element
from elma.errors import SmpBuildError
from elma.model import ServiceGroup, ServiceMetadata
from elma.spec import SmpFormat
from sbdh.pki import Credential

__all__ = ["sign_service_group", "sign_service_metadata"]


def _sign(root: etree._Element, signer: Credential) -> bytes:
    xml_signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = xml_signer.sign(root, key=signer.key, cert=[signer.certificate, *signer.chain])
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out


def sign_service_metadata(
    metadata: ServiceMetadata, signer: Credential, smp_format: SmpFormat | None = None
) -> bytes:
    """The signed answer for ``metadata`` in its own format (or ``smp_format``):
    a SignedServiceMetadata for Peppol and BDXR 1.0, a signed ServiceMetadata for SMP 2.0."""
    return _sign(service_metadata_element(metadata, smp_format, signed_wrapper=True), signer)


def sign_service_group(
    group: ServiceGroup, signer: Credential, smp_format: SmpFormat | None = None
) -> bytes:
    """A signed SMP 2.0 service group. The 1.x formats define no signed service group:
    publish those unsigned (:func:`elma.build.build_service_group`)."""
    smp_format = smp_format or group.format
    if smp_format is not SmpFormat.SMP2:
        raise SmpBuildError(
            f"{smp_format.value} service groups are not signed; build them unsigned",
            rule="smp-build-signed-group",
        )
    return _sign(service_group_element(group, smp_format), signer)
