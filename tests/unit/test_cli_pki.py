"""``budstikke pki init`` writes a usable development PKI."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from access_point.cli import main
from sbdh.pki import Credential
from sbdh.trust import KeyPurpose, TrustStore, verify_certificate


def test_init_writes_a_pki_whose_certificates_chain_to_its_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pki"
    assert main(["pki", "init", str(target), "--ap", "PNO000042", "--org", "991825827:Digdir"]) == 0
    index = json.loads((target / "pki.json").read_text())
    assert set(index["access_points"]) == {"PNO000042"}
    assert set(index["organisations"]) == {"991825827"}
    trust = TrustStore.load(target / index["trust_anchor"])
    now = datetime.now(UTC)
    for entry in [index["access_points"]["PNO000042"], index["organisations"]["991825827"]]:
        cred = Credential.load(target / entry["certificate"], target / entry["key"])
        path = verify_certificate(
            cred.certificate, trust, at=now, purpose=KeyPurpose.SIGNING, extra_chain=cred.chain
        )
        assert len(path) == 3
        assert stat.S_IMODE((target / entry["key"]).stat().st_mode) == 0o600
    org = Credential.load(
        target / "organisations/991825827.pem", target / "organisations/991825827.key"
    )
    assert "2.5.4.5=991825827" in org.certificate.subject.rfc4514_string()
    assert "PNO000042" in capsys.readouterr().out


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pki"
    assert main(["pki", "init", str(target), "--ap", "PNO000001", "--org", "974760673:X"]) == 0
    first = (target / "root-ca.pem").read_bytes()
    assert main(["pki", "init", str(target)]) == 2
    assert "already holds a PKI" in capsys.readouterr().err
    assert (target / "root-ca.pem").read_bytes() == first
    args = ["pki", "init", str(target), "--force", "--ap", "PNO000001", "--org", "974760673:X"]
    assert main(args) == 0
    assert (target / "root-ca.pem").read_bytes() != first


def test_init_rejects_an_invalid_organisation_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pki", "init", str(tmp_path / "p"), "--org", "123456789:Bad"]) == 2
    assert "orgnr-check-digit" in capsys.readouterr().err
    assert not (tmp_path / "p" / "pki.json").exists()


def test_mismatched_key_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pki"
    assert main(["pki", "init", str(target), "--ap", "PNO000001", "--org", "974760673:X"]) == 0
    from sbdh.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="is not the key of"):
        Credential.load(target / "root-ca.pem", target / "ap-ca.key")
