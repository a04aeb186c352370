"""SMP URL paths: percent-encoding of scheme::value segments, and reading them back."""

from __future__ import annotations

import pytest

from elma.errors import SmpPathError
from elma.model import DocumentTypeId, ParticipantId
from elma.paths import (
    document_type_from_href,
    parse_smp_path,
    service_group_path,
    service_metadata_path,
)
from elma.spec import SmpFormat

PARTICIPANT = ParticipantId.peppol("0192:991825827")
INVOICE = DocumentTypeId(
    "busdox-docid-qns",
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1",
)
PINT = DocumentTypeId(
    "peppol-doctype-wildcard",
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:peppol:pint:billing-1@jp-1*::2.1",
)


def test_service_group_path() -> None:
    assert service_group_path(PARTICIPANT) == "/iso6523-actorid-upis%3A%3A0192%3A991825827"
    assert service_group_path(PARTICIPANT, SmpFormat.SMP2) == (
        "/bdxr-smp-2/iso6523-actorid-upis%3A%3A0192%3A991825827"
    )


def test_service_metadata_path_matches_what_elma_publishes() -> None:
    # the form of the hrefs in the ELMA service group sample
    assert service_metadata_path(PARTICIPANT, INVOICE) == (
        "/iso6523-actorid-upis%3A%3A0192%3A991825827/services/busdox-docid-qns%3A%3Aurn%3Aoasis"
        "%3Anames%3Aspecification%3Aubl%3Aschema%3Axsd%3AInvoice-2%3A%3AInvoice%23%23urn%3Acen.eu"
        "%3Aen16931%3A2017%23compliant%23urn%3Afdc%3Apeppol.eu%3A2017%3Apoacc%3Abilling%3A3.0%3A%3A2.1"
    )


def test_reserved_characters_are_escaped() -> None:
    path = service_metadata_path(ParticipantId.peppol("0088:a/b c"), PINT)
    assert "0088%3Aa%2Fb%20c" in path
    assert "billing-1%40jp-1%2A%3A%3A2.1" in path
    assert path.count("/") == 3


@pytest.mark.parametrize("smp_format", [SmpFormat.PEPPOL, SmpFormat.SMP2])
@pytest.mark.parametrize("document_type", [INVOICE, PINT])
def test_paths_read_back(smp_format: SmpFormat, document_type: DocumentTypeId) -> None:
    parsed = parse_smp_path(
        service_metadata_path(ParticipantId.peppol("0088:a/b c"), document_type, smp_format)
    )
    assert parsed.participant == ParticipantId.peppol("0088:a/b c")
    assert parsed.document_type == document_type
    assert parsed.format is smp_format
    group = parse_smp_path(service_group_path(PARTICIPANT, smp_format) + "/")
    assert group.participant == PARTICIPANT
    assert group.document_type is None


def test_unencoded_and_lower_case_escapes_are_read() -> None:
    parsed = parse_smp_path(
        "/iso6523-actorid-upis::0192:991825827/services/busdox-docid-qns%3a%3aurn%3ax"
    )
    assert parsed.participant == PARTICIPANT
    assert parsed.document_type == DocumentTypeId("busdox-docid-qns", "urn:x")


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("", "smp-path-shape"),
        ("iso6523-actorid-upis::0192:991825827", "smp-path-shape"),
        ("/", "smp-path-shape"),
        ("/a::b/services", "smp-path-shape"),
        ("/a::b/other/c::d", "smp-path-shape"),
        ("/a::b/services/c::d/extra", "smp-path-shape"),
        ("/0192:991825827", "smp-path-identifier"),
        ("/a%3A%3A", "smp-path-identifier"),
        ("/a::b/services/%FF%FE", "smp-path-encoding"),
    ],
)
def test_bad_paths(path: str, rule: str) -> None:
    with pytest.raises(SmpPathError) as caught:
        parse_smp_path(path)
    assert caught.value.rule == rule
    assert caught.value.http_status == 400


def test_document_type_from_href() -> None:
    href = "https://smp.example.no/some/base" + service_metadata_path(PARTICIPANT, INVOICE)
    assert document_type_from_href(href) == INVOICE
    # encoded twice, as some SMPs publish it
    twice = href.replace("%", "%25")
    assert document_type_from_href(twice) == INVOICE
    assert (
        document_type_from_href("https://smp.example.no/iso6523-actorid-upis%3A%3A0192%3A1") is None
    )
    assert document_type_from_href("https://smp.example.no/x/services/no-scheme") is None
