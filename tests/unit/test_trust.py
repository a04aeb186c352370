"""Certificate path validation against trust anchors (and the development PKI it relies on)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sbdh.errors import UntrustedSigner
from sbdh.pki import Credential, DevPki, issue_end_entity
from sbdh.trust import KeyPurpose, TrustStore, load_certificates, verify_certificate


def _verify(
    cred: Credential, trust: TrustStore, at: datetime, **kw: object
) -> tuple[x509.Certificate, ...]:
    purpose = kw.pop("purpose", KeyPurpose.SIGNING)
    assert isinstance(purpose, KeyPurpose)
    return verify_certificate(
        cred.certificate, trust, at=at, purpose=purpose, extra_chain=cred.chain
    )


def test_organisation_certificate_chains_to_the_root(
    dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    org = dev_pki.organisations["991825827"]
    path = _verify(org, trust, now)
    assert path == (org.certificate, dev_pki.org_ca.certificate, dev_pki.root.certificate)
    assert _verify(org, trust, now, purpose=KeyPurpose.ENCRYPTION)[0] == org.certificate


def test_intermediates_may_come_from_the_trust_store(dev_pki: DevPki, now: datetime) -> None:
    ap = dev_pki.access_points["PNO000001"]
    store = TrustStore((dev_pki.root.certificate,), (dev_pki.ap_ca.certificate,))
    assert len(verify_certificate(ap.certificate, store, at=now, purpose=KeyPurpose.SIGNING)) == 3


def test_missing_intermediate_means_no_path(
    dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    ap = dev_pki.access_points["PNO000001"]
    with pytest.raises(UntrustedSigner) as info:
        verify_certificate(ap.certificate, trust, at=now, purpose=KeyPurpose.SIGNING)
    assert info.value.rule == "chain-incomplete"


def test_other_root_is_not_trusted(dev_pki: DevPki, now: datetime) -> None:
    from sbdh.pki import generate_root_ca

    other = generate_root_ca("Someone Else", now=now, key_size=2048)
    with pytest.raises(UntrustedSigner) as info:
        _verify(dev_pki.organisations["991825827"], TrustStore((other.certificate,)), now)
    assert info.value.rule == "chain-incomplete"


def test_a_pinned_intermediate_can_be_the_anchor(dev_pki: DevPki, now: datetime) -> None:
    org = dev_pki.organisations["974760673"]
    path = _verify(org, TrustStore((dev_pki.org_ca.certificate,)), now)
    assert path[-1] == dev_pki.org_ca.certificate


@pytest.mark.parametrize(
    ("shift", "rule"),
    [(timedelta(days=400), "cert-expired"), (timedelta(days=-2), "cert-not-yet-valid")],
)
def test_validity_period_is_checked_at_the_given_time(
    dev_pki: DevPki, trust: TrustStore, now: datetime, shift: timedelta, rule: str
) -> None:
    with pytest.raises(UntrustedSigner) as info:
        _verify(dev_pki.organisations["991825827"], trust, now + shift)
    assert info.value.rule == rule


def test_end_entity_cannot_issue_certificates(
    dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    org = dev_pki.organisations["991825827"]
    forged = issue_end_entity(org, "forged", now=now, key_size=2048)
    with pytest.raises(UntrustedSigner) as info:
        _verify(forged, trust, now)
    assert info.value.rule == "ca-constraint"


def test_path_length_constraint_is_enforced(
    dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    from sbdh.pki import issue_intermediate_ca

    # the AP CA has pathLen 0: a CA under it breaks the constraint
    sub_ca = issue_intermediate_ca(dev_pki.ap_ca, "Sub CA", now=now, key_size=2048)
    leaf = issue_end_entity(sub_ca, "leaf", now=now, key_size=2048)
    with pytest.raises(UntrustedSigner) as info:
        _verify(leaf, trust, now)
    assert info.value.rule == "ca-constraint"


def _leaf_with_usage(
    issuer: Credential, now: datetime, usage: x509.KeyUsage | None
) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "narrow")]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer.key, hashes.SHA256())


def _usage(**on: bool) -> x509.KeyUsage:
    fields = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        ),
        False,
    )
    fields.update(on)
    return x509.KeyUsage(**fields, encipher_only=False, decipher_only=False)


def test_key_usage_must_fit_the_purpose(dev_pki: DevPki, trust: TrustStore, now: datetime) -> None:
    chain = (dev_pki.org_ca.certificate,)
    enc_only = _leaf_with_usage(dev_pki.org_ca, now, _usage(key_encipherment=True))
    sign_only = _leaf_with_usage(dev_pki.org_ca, now, _usage(digital_signature=True))
    none = _leaf_with_usage(dev_pki.org_ca, now, None)
    verify_certificate(enc_only, trust, at=now, purpose=KeyPurpose.ENCRYPTION, extra_chain=chain)
    verify_certificate(sign_only, trust, at=now, purpose=KeyPurpose.SIGNING, extra_chain=chain)
    for cert, purpose in [
        (enc_only, KeyPurpose.SIGNING),
        (sign_only, KeyPurpose.ENCRYPTION),
        (none, KeyPurpose.SIGNING),
    ]:
        with pytest.raises(UntrustedSigner) as info:
            verify_certificate(cert, trust, at=now, purpose=purpose, extra_chain=chain)
        assert info.value.rule == "key-usage"


def test_naive_time_is_a_programming_error(dev_pki: DevPki, trust: TrustStore) -> None:
    with pytest.raises(ValueError, match="timezone"):
        _verify(dev_pki.organisations["991825827"], trust, datetime(2026, 1, 1))


def test_load_certificates_reads_pem_bundles_and_der(dev_pki: DevPki) -> None:
    org = dev_pki.organisations["991825827"]
    bundle = org.cert_pem() + org.chain_pem()
    assert load_certificates(bundle) == [org.certificate, *org.chain]
    from cryptography.hazmat.primitives.serialization import Encoding

    assert load_certificates(org.certificate.public_bytes(Encoding.DER)) == [org.certificate]


def test_store_loads_from_files(dev_pki: DevPki, tmp_path: object, now: datetime) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    (tmp_path / "root.pem").write_bytes(dev_pki.root.cert_pem())
    store = TrustStore.load(tmp_path / "root.pem")
    assert _verify(dev_pki.organisations["910075918"], store, now)[-1] == dev_pki.root.certificate
