"""The SMP server's storage: the JSON form of a registration, its checks (each naming the
field), and the in-memory and file-backed registries."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from elma.model import DocumentTypeId, ParticipantId, ProcessId
from elma.registry import (
    JsonFileRegistry,
    MemoryRegistry,
    ParticipantRecord,
    ParticipantRegistry,
    RedirectTarget,
    RegistrationError,
    parse_participant,
    record_from_json,
    record_to_json,
)
from sbdh.errors import ConfigurationError, InvalidInput
from sbdh.pki import Credential, DevPki

ORG = "0192:991825827"
OTHER = "0192:974760673"
INVOICE = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice"
    "##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
CREDIT_NOTE = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2::CreditNote"
    "##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
BILLING = "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


@pytest.fixture(scope="module")
def ap(dev_pki: DevPki) -> Credential:
    return dev_pki.access_points["PNO000001"]


def _registration(ap: Credential, **endpoint: Any) -> dict[str, Any]:
    return {
        "participant": ORG,
        "name": "Digitaliseringsdirektoratet",
        "services": [
            {
                "document_type": INVOICE,
                "processes": [
                    {
                        "process": BILLING,
                        "endpoints": [
                            {
                                "transport_profile": "peppol-transport-as4-v2_0",
                                "url": "https://ap.example.no/as4",
                                "certificate": ap.cert_pem().decode("ascii"),
                                **endpoint,
                            }
                        ],
                    }
                ],
            }
        ],
    }


def _error(data: Any, **kwargs: Any) -> RegistrationError:
    with pytest.raises(RegistrationError) as caught:
        record_from_json(data, **kwargs)
    return caught.value


# --------------------------------------------------------------------------- the JSON form


def test_a_registration_is_read_into_the_smp_model(ap: Credential) -> None:
    record = record_from_json(
        _registration(
            ap,
            service_activation="2025-01-01T00:00:00Z",
            service_expiration="2030-01-01T12:00:00+01:00",
            description="Budstikke AP",
            technical_contact="mailto:drift@example.no",
        )
    )
    assert record.participant == ParticipantId.peppol(ORG)
    assert record.name == "Digitaliseringsdirektoratet"
    assert record.document_types() == (DocumentTypeId.from_uri(INVOICE),)
    service = record.service(DocumentTypeId.from_uri(INVOICE))
    assert service is not None
    (process,) = service.processes
    assert process.process_id == ProcessId.from_uri(BILLING)
    (endpoint,) = process.endpoints
    assert endpoint.address == "https://ap.example.no/as4"
    assert endpoint.certificate == ap.certificate.public_bytes(Encoding.DER)
    assert endpoint.service_activation == datetime(2025, 1, 1, tzinfo=UTC)
    assert endpoint.service_expiration == datetime(2030, 1, 1, 11, tzinfo=UTC)
    assert endpoint.technical_contact == "mailto:drift@example.no"


def test_a_base64_der_certificate_is_accepted_too(ap: Credential) -> None:
    der = ap.certificate.public_bytes(Encoding.DER)
    record = record_from_json(_registration(ap, certificate=base64.b64encode(der).decode()))
    assert record.services[0].processes[0].endpoints[0].certificate == der


def test_the_json_form_round_trips(ap: Credential) -> None:
    data = _registration(ap, service_activation="2025-01-01T00:00:00+00:00")
    data["services"].append(
        {
            "document_type": CREDIT_NOTE,
            "redirect": {
                "smp_url": "https://other-smp.example.org",
                "certificate_uid": "C=NO,O=Other,CN=SMP",
            },
        }
    )
    record = record_from_json(data)
    assert record_from_json(record_to_json(record)) == record
    assert record_from_json(json.loads(json.dumps(record_to_json(record)))) == record


def test_a_bare_participant_is_in_the_peppol_scheme(ap: Credential) -> None:
    assert parse_participant(ORG) == ParticipantId.peppol(ORG)
    assert parse_participant(f"iso6523-actorid-upis::{ORG}") == ParticipantId.peppol(ORG)
    assert parse_participant(f"ISO6523-ACTORID-UPIS::{ORG}") == ParticipantId.peppol(ORG)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("0192:991825828", "orgnr-check-digit"),
        ("0192:12345", "orgnr"),
        ("92:991825827", "participant-icd"),
        ("iso6523-actorid-upis::", "elma-participant"),
    ],
)
def test_a_malformed_peppol_participant_is_refused(text: str, rule: str) -> None:
    with pytest.raises(RegistrationError) as caught:
        parse_participant(text)
    assert caught.value.field == "participant"
    assert caught.value.rule is not None
    assert caught.value.rule.startswith(rule)
    assert isinstance(caught.value, InvalidInput)


def test_the_participant_of_the_url_must_match_the_body(ap: Credential) -> None:
    error = _error(_registration(ap), participant=ParticipantId.peppol(OTHER))
    assert error.field == "participant"
    assert error.rule == "elma-participant-mismatch"


def test_the_participant_may_come_from_the_url_alone(ap: Credential) -> None:
    data = _registration(ap)
    del data["participant"]
    record = record_from_json(data, participant=ParticipantId.peppol(OTHER))
    assert record.participant == ParticipantId.peppol(OTHER)
    assert _error(data).field == "participant"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://ap.example.no/as4"}, "services[0].processes[0].endpoints[0].url"),
        ({"url": None}, "services[0].processes[0].endpoints[0].url"),
        ({"certificate": "not a certificate"}, "services[0].processes[0].endpoints[0].certificate"),
        (
            {"service_activation": "2025-01-01T00:00:00"},
            "services[0].processes[0].endpoints[0].service_activation",
        ),
        (
            {"service_expiration": "next tuesday"},
            "services[0].processes[0].endpoints[0].service_expiration",
        ),
        (
            {"require_business_level_signature": "yes"},
            "services[0].processes[0].endpoints[0].require_business_level_signature",
        ),
        ({"transport_profile": ""}, "services[0].processes[0].endpoints[0].transport_profile"),
    ],
)
def test_a_bad_endpoint_field_is_named(ap: Credential, change: dict[str, Any], field: str) -> None:
    error = _error(_registration(ap, **change))
    assert error.field == field
    assert field in error.message


def test_bad_identifiers_and_shapes_are_named(ap: Credential) -> None:
    data = _registration(ap)
    data["services"][0]["document_type"] = "no-separator"
    assert _error(data).field == "services[0].document_type"

    data = _registration(ap)
    data["services"][0]["processes"][0]["process"] = 7
    assert _error(data).field == "services[0].processes[0].process"

    data = _registration(ap)
    data["services"][0]["processes"][0]["endpoints"] = []
    assert _error(data).field == "services[0].processes[0].endpoints"

    data = _registration(ap)
    data["services"] = {"not": "a list"}
    assert _error(data).field == "services"

    assert _error(["not", "an", "object"]).field == ""


def test_unknown_members_are_refused_not_ignored(ap: Credential) -> None:
    error = _error(_registration(ap, expiration="2020-01-01T00:00:00Z"))  # misspelt
    assert error.field == "services[0].processes[0].endpoints[0].expiration"
    assert error.rule == "elma-unknown-member"
    data = _registration(ap)
    data["servcies"] = []
    assert _error(data).field == "servcies"


def test_a_service_has_processes_or_a_redirect(ap: Credential) -> None:
    data = _registration(ap)
    data["services"][0]["redirect"] = {"smp_url": "https://x.example", "certificate_uid": "CN=X"}
    assert _error(data).field == "services[0]"

    data = _registration(ap)
    data["services"][0] = {"document_type": INVOICE, "redirect": {"smp_url": "https://x.example"}}
    error = _error(data)
    assert error.field == "services[0].redirect"
    assert error.rule == "elma-redirect"


def test_duplicates_are_refused(ap: Credential) -> None:
    data = _registration(ap)
    data["services"].append(data["services"][0])
    error = _error(data)
    assert error.field == "services[1].document_type"
    assert error.rule == "elma-duplicate"

    data = _registration(ap)
    processes = data["services"][0]["processes"]
    processes.append(processes[0])
    assert _error(data).field == "services[0].processes[1].process"


def test_a_redirect_names_its_signer_from_the_certificate(dev_pki: DevPki) -> None:
    cert = dev_pki.access_points["PNO000002"].certificate
    target = RedirectTarget("https://smp.example", cert.public_bytes(Encoding.DER))
    assert target.uid == cert.subject.rfc4514_string()
    assert RedirectTarget("https://smp.example", certificate_uid="CN=X").uid == "CN=X"
    with pytest.raises(ValueError, match="certificate"):
        RedirectTarget("https://smp.example")


# --------------------------------------------------------------------------- storage


def _record(ap: Credential, participant: str = ORG) -> ParticipantRecord:
    data = _registration(ap)
    data["participant"] = participant
    return record_from_json(data)


@pytest.fixture(params=["memory", "file"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ParticipantRegistry:
    if request.param == "memory":
        return MemoryRegistry()
    return JsonFileRegistry(tmp_path / "elma.json")


def test_registries_put_get_remove_and_list(registry: ParticipantRegistry, ap: Credential) -> None:
    assert isinstance(registry, ParticipantRegistry)
    assert registry.get(ParticipantId.peppol(ORG)) is None
    assert registry.put(_record(ap, OTHER)) is True
    assert registry.put(_record(ap)) is True
    assert registry.put(_record(ap)) is False  # replaced
    # Peppol participant ids compare case-insensitively
    assert registry.get(ParticipantId("ISO6523-ACTORID-UPIS", ORG)) == _record(ap)
    assert [r.participant.value for r in registry.records()] == [OTHER, ORG]
    assert registry.remove(ParticipantId.peppol(OTHER)) is True
    assert registry.remove(ParticipantId.peppol(OTHER)) is False
    assert [r.participant.value for r in registry.records()] == [ORG]


def test_the_file_survives_a_restart_and_is_valid_json(tmp_path: Path, ap: Credential) -> None:
    path = tmp_path / "data" / "elma.json"
    JsonFileRegistry(path).put(_record(ap))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert document["participants"][0]["participant"] == f"iso6523-actorid-upis::{ORG}"
    assert JsonFileRegistry(path).get(ParticipantId.peppol(ORG)) == _record(ap)
    # written by replacing the file: no temporary files are left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["elma.json", "elma.json.lock"]


def test_changes_by_another_process_are_seen(tmp_path: Path, ap: Credential) -> None:
    path = tmp_path / "elma.json"
    server_side = JsonFileRegistry(path)
    assert server_side.records() == []
    JsonFileRegistry(path).put(_record(ap))  # e.g. `budstikke elma register --data …`
    assert server_side.get(ParticipantId.peppol(ORG)) == _record(ap)
    # a change made by the server keeps the one made by the other writer
    server_side.put(_record(ap, OTHER))
    assert len(JsonFileRegistry(path).records()) == 2
    JsonFileRegistry(path).remove(ParticipantId.peppol(ORG))
    assert [r.participant.value for r in server_side.records()] == [OTHER]


def test_a_write_that_fails_leaves_the_old_file(
    tmp_path: Path, ap: Credential, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elma.json"
    registry = JsonFileRegistry(path)
    registry.put(_record(ap))
    before = path.read_bytes()

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        registry.put(_record(ap, OTHER))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elma.json", "elma.json.lock"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot read"),
        ('{"participants": {}}', "participants"),
        ('{"version": 9, "participants": []}', "version"),
        (
            '{"version": 1, "participants": [{"participant": "0192:991825828"}]}',
            r"participants\[0\]",
        ),
    ],
)
def test_a_broken_file_is_a_configuration_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "elma.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=match):
        JsonFileRegistry(path)


def test_an_expired_endpoint_is_stored_as_registered(ap: Credential) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    record = record_from_json(_registration(ap, service_expiration=past))
    registry = MemoryRegistry([record])
    assert registry.get(ParticipantId.peppol(ORG)) == record  # the client judges validity
