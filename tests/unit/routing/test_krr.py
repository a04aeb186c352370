"""The KRR client's pure core: the request, every presence case of the answer, the 18-month
rule, timestamps and certificates in their several forms, bad fields; the stand-in's presence
rules; and the register generator."""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adapters.standins.krr import KrrRegister, not_registered, present
from adapters.standins.krr_generate import (
    DIGIPOST,
    EBOKS,
    RegisterMix,
    generate_register,
    main,
    provider_credentials,
)
from routing.errors import RegistryResponseError
from routing.krr import (
    KRR_MAX_IDS,
    NotificationStatus,
    Person,
    PersonStatus,
    Reservation,
    batches,
    build_request,
    contact_cutoff,
    load_certificate,
    match_answer,
    parse_person,
    parse_print_provider,
    parse_response,
    parse_timestamp,
)
from sbdh.errors import InvalidInput, PermanentDeliveryError
from sbdh.identifiers import NationalId, NationalIdKind
from sbdh.pki import Credential

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NID = "02016126007"  # valid (testdata/README)
NID2 = "31129956715"


@pytest.fixture(scope="module")
def providers() -> dict[str, Credential]:
    return provider_credentials(NOW - timedelta(days=30))


@pytest.fixture(scope="module")
def cert(providers: dict[str, Credential]) -> x509.Certificate:
    return providers[DIGIPOST].certificate


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _full(cert: x509.Certificate, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "personidentifikator": NID,
        "reservasjon": "NEI",
        "reservasjon_oppdatert": "2020-01-10T09:00:00+01",
        "status": "AKTIV",
        "varslingsstatus": "KAN_VARSLES",
        "kontaktinformasjon": {
            "epostadresse": "ola.nordmann@example.com",
            "epostadresse_oppdatert": "2025-06-29T10:14:52+02",
            "epostadresse_sist_verifisert": "2026-01-05T10:45:15.768Z",
            "mobiltelefonnummer": "+4799999999",
            "mobiltelefonnummer_oppdatert": "2025-08-05T10:45:15.768Z",
            "mobiltelefonnummer_sist_verifisert": "2025-08-05T10:45:15.768Z",
        },
        "digital_post": {
            "postkasseadresse": "ola.nordmann#9YDT",
            "postkasseleverandoeradresse": DIGIPOST,
        },
        "sertifikat": _der_b64(cert),
        "spraak": "nb",
    }
    record.update(changes)
    return record


# -- the request ---------------------------------------------------------------------------------


def test_request_body_lists_the_ids() -> None:
    body = json.loads(build_request([NationalId(NID), NationalId(NID2)]))
    assert body == {"personidentifikatorer": [NID, NID2]}


@pytest.mark.parametrize("count", [0, KRR_MAX_IDS + 1])
def test_request_holds_1_to_1000_ids(count: int) -> None:
    with pytest.raises(InvalidInput) as info:
        build_request([NationalId(NID)] * count)
    assert info.value.rule == "krr-batch-size"


def test_batches_of_at_most_1000_without_repeats() -> None:
    ids = [NationalId(n) for n in generate_ids(2500)]
    groups = batches([*ids, *ids[:10]])
    assert [len(g) for g in groups] == [1000, 1000, 500]
    assert [nid for g in groups for nid in g] == ids


def generate_ids(count: int) -> list[str]:
    records = generate_register(count, seed=5, now=NOW, certificates={}, mix=_NO_MAILBOX)
    return [r["personidentifikator"] for r in records]


_NO_MAILBOX = RegisterMix(digipost=0, eboks=0)


# -- each presence case --------------------------------------------------------------------------


def test_active_person_with_mailbox(cert: x509.Certificate) -> None:
    person = parse_person(_full(cert), now=NOW)
    assert person.national_id == NationalId(NID)
    assert person.status is PersonStatus.AKTIV
    assert person.reservation is Reservation.NEI
    assert person.notification is NotificationStatus.KAN_VARSLES
    assert person.active
    assert not person.reserved
    assert person.has_mailbox
    assert person.notifiable
    assert person.mailbox is not None
    assert person.mailbox.address == "ola.nordmann#9YDT"
    assert person.mailbox.provider.value == DIGIPOST
    assert person.certificate == cert
    assert person.language == "nb"
    assert person.contact is not None
    assert person.contact.email is not None
    assert person.contact.email.address == "ola.nordmann@example.com"
    assert person.contact.email.current
    assert person.contact.email.verified == datetime(2026, 1, 5, 10, 45, 15, 768000, tzinfo=UTC)
    assert person.contact.mobile is not None
    assert person.contact.mobile.address == "+4799999999"
    assert person.reservation_updated == datetime(2020, 1, 10, 8, 0, tzinfo=UTC)


def test_reserved_person_has_no_mailbox_and_cannot_be_notified() -> None:
    record = {
        "personidentifikator": NID,
        "reservasjon": "JA",
        "reservasjonstidspunkt": "2023-06-13T13:42:34+02",
        "status": "AKTIV",
        "varslingsstatus": "KAN_IKKE_VARSLES",
        "kontaktinformasjon": {
            "epostadresse": "kari@example.com",
            "epostadresse_oppdatert": "2026-01-01T00:00:00Z",
        },
        "spraak": "nn",
    }
    person = parse_person(record, now=NOW)
    assert person.reserved
    assert person.active
    assert not person.has_mailbox
    assert not person.notifiable
    assert person.reserved_at == datetime(2023, 6, 13, 11, 42, 34, tzinfo=UTC)


def test_a_reserved_person_is_never_notifiable_even_if_the_answer_says_so(
    cert: x509.Certificate,
) -> None:
    assert not parse_person(_full(cert, reservasjon="JA"), now=NOW).notifiable


@pytest.mark.parametrize("status", ["SLETTET", "IKKE_REGISTRERT"])
def test_deleted_and_unregistered_persons(status: str) -> None:
    person = parse_person({"personidentifikator": NID, "status": status}, now=NOW)
    assert person.status is PersonStatus(status)
    assert not person.active
    assert not person.reserved
    assert not person.has_mailbox
    assert not person.notifiable
    assert person.contact is None
    assert person.mailbox is None


def test_an_inactive_person_never_has_a_mailbox_even_if_one_is_sent(
    cert: x509.Certificate,
) -> None:
    person = parse_person(_full(cert, status="SLETTET"), now=NOW)
    assert not person.has_mailbox
    assert not person.notifiable


def test_active_person_without_contact_data_is_not_notifiable(cert: x509.Certificate) -> None:
    record = _full(cert)
    del record["kontaktinformasjon"]
    person = parse_person(record, now=NOW)
    assert person.has_mailbox
    assert not person.notifiable


def test_mailbox_needs_both_address_and_certificate(cert: x509.Certificate) -> None:
    without_cert = _full(cert)
    del without_cert["sertifikat"]
    without_post = _full(cert)
    del without_post["digital_post"]
    assert not parse_person(without_cert, now=NOW).has_mailbox
    assert not parse_person(without_post, now=NOW).has_mailbox


def test_missing_notification_status_is_not_notifiable(cert: x509.Certificate) -> None:
    record = _full(cert)
    del record["varslingsstatus"]
    person = parse_person(record, now=NOW)
    assert person.notification is None
    assert not person.notifiable


def test_unknown_fields_are_ignored(cert: x509.Certificate) -> None:
    record = _full(cert, spraak_oppdatert="2024-01-01T00:00:00Z", nyttFelt={"x": 1})
    record["kontaktinformasjon"]["epostadresse_duplisert"] = "NEI"
    record["digital_post"]["ekstra"] = True
    parsed = parse_response({"personer": [record], "meta": 1}, now=NOW)
    assert parsed[0].notifiable
    assert parsed[0].has_mailbox


# -- the 18-month rule ---------------------------------------------------------------------------


def _contact(**stamps: str) -> dict[str, Any]:
    kontakt: dict[str, Any] = {"epostadresse": "a@example.com", "mobiltelefonnummer": "+4791234567"}
    kontakt.update(stamps)
    return kontakt


def test_stale_contact_data_is_not_notifiable_whatever_the_answer_says(
    cert: x509.Certificate,
) -> None:
    old = "2024-10-31T12:00:00Z"  # 18 months and a day before NOW
    record = _full(
        cert,
        kontaktinformasjon=_contact(
            epostadresse_oppdatert=old,
            epostadresse_sist_verifisert=old,
            mobiltelefonnummer_oppdatert=old,
            mobiltelefonnummer_sist_verifisert=old,
        ),
    )
    person = parse_person(record, now=NOW)
    assert person.notification is NotificationStatus.KAN_VARSLES  # what the register said
    assert person.contact is not None
    assert not person.contact.current
    assert not person.notifiable


def test_each_channel_is_judged_on_its_own(cert: x509.Certificate) -> None:
    record = _full(
        cert,
        kontaktinformasjon=_contact(
            epostadresse_oppdatert="2020-01-01T00:00:00Z",
            epostadresse_sist_verifisert="2021-01-01T00:00:00+01",
            mobiltelefonnummer_oppdatert="2019-01-01T00:00:00Z",
            mobiltelefonnummer_sist_verifisert="2026-03-01T00:00:00.000Z",
        ),
    )
    person = parse_person(record, now=NOW)
    assert person.contact is not None
    assert person.contact.email is not None
    assert person.contact.mobile is not None
    assert not person.contact.email.current
    assert person.contact.mobile.current
    assert person.notifiable


def test_a_channel_without_timestamps_is_not_current(cert: x509.Certificate) -> None:
    record = _full(cert, kontaktinformasjon={"epostadresse": "a@example.com"})
    assert not parse_person(record, now=NOW).notifiable


def test_the_boundary_is_18_calendar_months() -> None:
    assert contact_cutoff(NOW) == datetime(2024, 11, 1, 12, 0, tzinfo=UTC)
    end_of_month = datetime(2026, 8, 31, 9, 30, tzinfo=UTC)
    assert contact_cutoff(end_of_month) == datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
    record = {
        "personidentifikator": NID,
        "reservasjon": "NEI",
        "status": "AKTIV",
        "varslingsstatus": "KAN_VARSLES",
        "kontaktinformasjon": {
            "epostadresse": "a@example.com",
            "epostadresse_sist_verifisert": "2024-11-01T12:00:00Z",
        },
    }
    assert parse_person(record, now=NOW).notifiable
    assert not parse_person(record, now=NOW + timedelta(seconds=1)).notifiable


def test_now_must_be_timezone_aware(cert: x509.Certificate) -> None:
    with pytest.raises(ValueError, match="timezone"):
        parse_person(_full(cert), now=datetime(2026, 5, 1))


# -- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-06-29T10:14:52+02", datetime(2023, 6, 29, 8, 14, 52, tzinfo=UTC)),
        ("2023-08-05T10:45:15.768Z", datetime(2023, 8, 5, 10, 45, 15, 768000, tzinfo=UTC)),
        ("2014-02-25T13:08:00.000+01:00", datetime(2014, 2, 25, 12, 8, tzinfo=UTC)),
        ("2023-06-29T10:14:52+0200", datetime(2023, 6, 29, 8, 14, 52, tzinfo=UTC)),
        ("2023-06-29T10:14:52.123456789Z", datetime(2023, 6, 29, 10, 14, 52, 123456, tzinfo=UTC)),
        ("2023-06-29T10:14-03", datetime(2023, 6, 29, 13, 14, tzinfo=UTC)),
    ],
)
def test_timestamp_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", ["2023-06-29T10:14:52", "2023-06-29", "yesterday", "2023-13-40T10:14:52Z", ""]
)
def test_timestamps_without_offset_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(RegistryResponseError):
        parse_timestamp(text, "x.y")


def test_a_bad_timestamp_names_its_field(cert: x509.Certificate) -> None:
    record = _full(cert)
    record["kontaktinformasjon"]["mobiltelefonnummer_oppdatert"] = "29.06.2023"
    with pytest.raises(RegistryResponseError) as info:
        parse_response({"personer": [_full(cert), record]}, now=NOW)
    assert info.value.field == "personer[1].kontaktinformasjon.mobiltelefonnummer_oppdatert"
    assert isinstance(info.value, PermanentDeliveryError)


# -- certificates --------------------------------------------------------------------------------


def test_certificate_as_pem_or_bare_base64_der(cert: x509.Certificate) -> None:
    der = _der_b64(cert)
    wrapped = "\n".join(der[i : i + 64] for i in range(0, len(der), 64))
    assert load_certificate(_pem(cert)) == cert
    assert load_certificate(der) == cert
    assert load_certificate(wrapped) == cert
    assert parse_person(_full(cert, sertifikat=_pem(cert)), now=NOW).certificate == cert


@pytest.mark.parametrize("text", ["not a certificate", "AAAA", "-----BEGIN CERTIFICATE-----\nx"])
def test_a_bad_certificate_names_its_field(cert: x509.Certificate, text: str) -> None:
    with pytest.raises(RegistryResponseError) as info:
        parse_response({"personer": [_full(cert, sertifikat=text)]}, now=NOW)
    assert info.value.field == "personer[0].sertifikat"


# -- bad and missing fields ----------------------------------------------------------------------


def _without(record: dict[str, Any], *path: str) -> dict[str, Any]:
    target = record
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return record


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: _without(r, "personidentifikator"), "personer[0].personidentifikator"),
        (lambda r: _without(r, "status"), "personer[0].status"),
        (lambda r: _without(r, "reservasjon"), "personer[0].reservasjon"),
        (lambda r: r | {"status": "UKJENT"}, "personer[0].status"),
        (lambda r: r | {"reservasjon": "KANSKJE"}, "personer[0].reservasjon"),
        (lambda r: r | {"varslingsstatus": 1}, "personer[0].varslingsstatus"),
        (lambda r: r | {"kontaktinformasjon": "a@b"}, "personer[0].kontaktinformasjon"),
        (lambda r: r | {"digital_post": []}, "personer[0].digital_post"),
        (
            lambda r: _without(r, "digital_post", "postkasseadresse"),
            "personer[0].digital_post.postkasseadresse",
        ),
        (
            lambda r: (
                r
                | {
                    "digital_post": {
                        "postkasseadresse": "x#1",
                        "postkasseleverandoeradresse": "123456789",
                    }
                }
            ),
            "personer[0].digital_post.postkasseleverandoeradresse",
        ),
        (lambda r: r | {"spraak": "norsk!"}, "personer[0].spraak"),
        (lambda r: r | {"reservasjonstidspunkt": "i går"}, "personer[0].reservasjonstidspunkt"),
    ],
)
def test_bad_or_missing_fields_are_named(cert: x509.Certificate, change: Any, field: str) -> None:
    with pytest.raises(RegistryResponseError) as info:
        parse_response({"personer": [change(_full(cert))]}, now=NOW)
    assert info.value.field == field
    assert info.value.rule == "krr-field"


def test_an_invalid_national_id_is_named_but_not_quoted(cert: x509.Certificate) -> None:
    bad = "02016126008"  # second check digit wrong
    with pytest.raises(RegistryResponseError) as info:
        parse_response({"personer": [_full(cert, personidentifikator=bad)]}, now=NOW)
    assert info.value.field == "personer[0].personidentifikator"
    assert bad not in str(info.value)


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"personer": {}}', b"{}", '{"personer": [1]}']
)
def test_an_answer_of_the_wrong_shape_is_refused(body: bytes | str) -> None:
    with pytest.raises(RegistryResponseError):
        parse_response(body, now=NOW)


def test_answer_must_match_the_ids_asked_for(cert: x509.Certificate) -> None:
    first, second = NationalId(NID), NationalId(NID2)
    persons = parse_response(
        {"personer": [_full(cert, personidentifikator=NID2), _full(cert)]}, now=NOW
    )
    assert list(match_answer([first, second], persons)) == [first, second]
    with pytest.raises(RegistryResponseError) as missing:
        match_answer([first, second], persons[:1])
    assert missing.value.rule == "krr-missing-person"
    with pytest.raises(RegistryResponseError) as extra:
        match_answer([first], persons)
    assert extra.value.rule == "krr-unexpected-person"


def test_repr_shows_neither_national_id_nor_contact_data(cert: x509.Certificate) -> None:
    text = repr(parse_person(_full(cert), now=NOW))
    assert NID not in text
    assert "ola.nordmann" not in text
    assert "+4799999999" not in text


# -- the print provider --------------------------------------------------------------------------


def test_print_provider_in_camel_case(providers: dict[str, Credential]) -> None:
    cert = providers[EBOKS].certificate
    for text in (_pem(cert), _der_b64(cert)):
        body = json.dumps({"postkasseleverandoerAdresse": EBOKS, "x509Sertifikat": text})
        provider = parse_print_provider(body)
        assert provider.orgnr.value == EBOKS
        assert provider.certificate == cert


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"x509Sertifikat": "x"}, "$.postkasseleverandoerAdresse"),
        ({"postkasseleverandoerAdresse": EBOKS}, "$.x509Sertifikat"),
        (
            {"postkasseleverandoeradresse": EBOKS, "x509sertifikat": "x"},
            "$.postkasseleverandoerAdresse",
        ),
    ],
)
def test_print_provider_fields_are_required(body: dict[str, str], field: str) -> None:
    with pytest.raises(RegistryResponseError) as info:
        parse_print_provider(body)
    assert info.value.field == field


# -- the stand-in's presence rules ---------------------------------------------------------------

_ALLOWED_TOP = {
    "personidentifikator",
    "reservasjon",
    "reservasjonstidspunkt",
    "reservasjon_oppdatert",
    "status",
    "varslingsstatus",
    "kontaktinformasjon",
    "digital_post",
    "sertifikat",
    "spraak",
}


@pytest.mark.parametrize("status", ["SLETTET", "IKKE_REGISTRERT"])
def test_standin_gives_nothing_but_status_for_inactive_persons(
    cert: x509.Certificate, status: str
) -> None:
    out = present(_full(cert, status=status), now=NOW)
    assert set(out) == {
        "personidentifikator",
        "reservasjon",
        "reservasjon_oppdatert",
        "status",
        "varslingsstatus",
    }
    assert out["varslingsstatus"] == "KAN_IKKE_VARSLES"


def test_standin_answers_unknown_ids_as_not_registered() -> None:
    register = KrrRegister()
    answer = register.answer([NID, NID], now=NOW)
    assert answer == {"personer": [not_registered(NID)]}
    assert parse_response(answer, now=NOW)[0].status is PersonStatus.IKKE_REGISTRERT


def test_standin_gives_a_reserved_person_no_mailbox(cert: x509.Certificate) -> None:
    out = present(
        _full(cert, reservasjon="JA", reservasjonstidspunkt="2023-06-13T13:42:34+02"), now=NOW
    )
    assert "digital_post" not in out
    assert "sertifikat" not in out
    assert out["varslingsstatus"] == "KAN_IKKE_VARSLES"
    assert out["reservasjonstidspunkt"] == "2023-06-13T13:42:34+02"
    assert "kontaktinformasjon" in out


def test_standin_withholds_everything_when_all_contact_data_expired(
    cert: x509.Certificate,
) -> None:
    old = "2023-01-01T00:00:00Z"
    record = _full(
        cert,
        kontaktinformasjon=_contact(
            epostadresse_oppdatert=old,
            epostadresse_sist_verifisert=old,
            mobiltelefonnummer_oppdatert=old,
        ),
    )
    out = present(record, now=NOW)
    assert out["varslingsstatus"] == "KAN_IKKE_VARSLES"
    assert {"kontaktinformasjon", "digital_post", "sertifikat"}.isdisjoint(out)
    assert out["spraak"] == "nb"


def test_standin_withholds_only_the_expired_channel(cert: x509.Certificate) -> None:
    record = _full(
        cert,
        kontaktinformasjon=_contact(
            epostadresse_oppdatert="2023-01-01T00:00:00Z",
            mobiltelefonnummer_oppdatert="2023-01-01T00:00:00Z",
            mobiltelefonnummer_sist_verifisert="2026-04-01T00:00:00+02",
        ),
    )
    out = present(record, now=NOW)
    assert out["varslingsstatus"] == "KAN_VARSLES"
    assert set(out["kontaktinformasjon"]) == {
        "mobiltelefonnummer",
        "mobiltelefonnummer_oppdatert",
        "mobiltelefonnummer_sist_verifisert",
    }
    assert "digital_post" in out
    assert "sertifikat" in out


def test_standin_works_out_the_notification_status_and_emits_only_known_fields(
    cert: x509.Certificate,
) -> None:
    record = _full(cert, varslingsstatus="KAN_IKKE_VARSLES", hemmelig="x")
    record["digital_post"]["intern"] = "y"
    out = present(record, now=NOW)
    assert out["varslingsstatus"] == "KAN_VARSLES"
    assert set(out) <= _ALLOWED_TOP
    assert set(out["digital_post"]) == {"postkasseadresse", "postkasseleverandoeradresse"}


def test_standin_refuses_records_the_client_would_refuse(cert: x509.Certificate) -> None:
    with pytest.raises(RegistryResponseError):
        KrrRegister([_full(cert, status="BORTE")], now=NOW)


# -- the generator -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(providers: dict[str, Credential]) -> dict[str, x509.Certificate]:
    return {orgnr: cred.certificate for orgnr, cred in providers.items()}


@pytest.fixture(scope="module")
def generated(certificates: dict[str, x509.Certificate]) -> list[dict[str, Any]]:
    return generate_register(4000, seed=42, now=NOW, certificates=certificates)


def test_generated_ids_are_valid_unique_and_synthetic(generated: list[dict[str, Any]]) -> None:
    ids = [NationalId(r["personidentifikator"]) for r in generated]
    assert len(set(ids)) == len(ids)
    assert all(nid.synthetic for nid in ids)
    kinds = Counter(nid.kind for nid in ids)
    assert 0.03 < kinds[NationalIdKind.D_NUMMER] / len(ids) < 0.07
    assert all(int(nid.value[0]) >= 4 for nid in ids if nid.kind is NationalIdKind.D_NUMMER)


def test_generated_ids_with_real_dates(certificates: dict[str, x509.Certificate]) -> None:
    records = generate_register(200, seed=1, now=NOW, certificates=certificates, synthetic=False)
    assert not any(NationalId(r["personidentifikator"]).synthetic for r in records)


def test_generated_mix_has_the_proportions_asked_for(generated: list[dict[str, Any]]) -> None:
    n = len(generated)
    persons = [parse_person(r, now=NOW) for r in generated]  # the client accepts every record
    active = [p for p in persons if p.active]
    deleted = n - len(active)
    assert 0.01 < deleted / n < 0.035
    reserved = sum(p.reserved for p in active)
    assert 0.045 < reserved / len(active) < 0.075
    providers = Counter(p.mailbox.provider.value for p in active if p.mailbox is not None)
    assert 0.42 < providers[DIGIPOST] / len(active) < 0.48
    assert 0.17 < providers[EBOKS] / len(active) < 0.23
    no_contact = sum(p.contact is None for p in active)
    assert 0.025 < no_contact / len(active) < 0.055
    expired = sum(p.contact is not None and not p.contact.current for p in active)
    assert 0.045 < expired / len(active) < 0.075
    one_stale = sum(
        p.contact is not None
        and p.contact.email is not None
        and p.contact.mobile is not None
        and p.contact.email.current != p.contact.mobile.current
        for p in active
    )
    assert 0.025 < one_stale / len(active) < 0.055
    languages = Counter(p.language for p in active)
    assert languages.most_common(1)[0][0] == "nb"
    assert set(languages) == {"nb", "nn", "en", "se"}
    notifiable = sum(p.notifiable for p in active)
    assert 0.7 < notifiable / len(active) < 0.9


def test_generated_certificates_are_shared_in_both_encodings(
    generated: list[dict[str, Any]], certificates: dict[str, x509.Certificate]
) -> None:
    texts = {
        r["digital_post"]["postkasseleverandoeradresse"]: r["sertifikat"]
        for r in generated
        if "digital_post" in r
    }
    assert texts[DIGIPOST].startswith("MII")  # bare base64 DER
    assert texts[EBOKS].startswith("-----BEGIN CERTIFICATE-----")
    assert load_certificate(texts[DIGIPOST]) == certificates[DIGIPOST]
    assert load_certificate(texts[EBOKS]) == certificates[EBOKS]
    assert len({r["sertifikat"] for r in generated if "sertifikat" in r}) == 2


def test_generator_is_deterministic(
    generated: list[dict[str, Any]], certificates: dict[str, x509.Certificate]
) -> None:
    again = generate_register(4000, seed=42, now=NOW, certificates=certificates)
    other = generate_register(4000, seed=43, now=NOW, certificates=certificates)
    assert json.dumps(again) == json.dumps(generated)
    assert other != generated


def test_generator_needs_the_providers_certificates() -> None:
    with pytest.raises(ValueError, match="984661185"):
        generate_register(10, seed=1, now=NOW, certificates={})


def test_generator_command_reuses_its_credentials(tmp_path: Path) -> None:
    out1, out2, creds = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "creds"
    args = ["--count", "50", "--seed", "3", "--now", "2026-05-01T12:00:00+00:00"]
    assert main([*args, "--out", str(out1), "--credentials", str(creds)]) == 0
    assert main([*args, "--out", str(out2), "--credentials", str(creds)]) == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert (creds / f"{DIGIPOST}.key.pem").stat().st_mode & 0o077 == 0
    register = KrrRegister.load(out1, now=NOW)
    assert len(register) == 50


def test_parsing_logs_no_national_id(
    generated: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    persons: list[Person] = list(parse_response({"personer": generated[:200]}, now=NOW))
    assert len(persons) == 200
    assert not any(r["personidentifikator"] in caplog.text for r in generated[:200])


def test_timestamps_in_generated_records_use_both_forms(generated: list[dict[str, Any]]) -> None:
    stamps = [
        v
        for r in generated
        for k, v in (r.get("kontaktinformasjon") or {}).items()
        if k.endswith(("_oppdatert", "_sist_verifisert"))
    ]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s.endswith(("+01", "+02")) for s in stamps)
    assert all(parse_timestamp(s).tzinfo is not None for s in stamps)
    assert all(parse_timestamp(s) <= NOW for s in stamps)
