"""The pure parts of the API: Content-Disposition (RFC 6266) and naming fields in problems."""

from __future__ import annotations

import pytest

from access_point.api.disposition import parse_content_disposition, upload_filename
from access_point.api.params import InvalidParameter
from access_point.api.problems import dotted, field_errors
from sbdh.errors import Conflict, EnvelopeError, Forbidden, InvalidInput, Violation


@pytest.mark.parametrize(
    ("header", "filename"),
    [
        ('attachment; filename="a.pdf"', "a.pdf"),
        ("attachment; filename=a.pdf", "a.pdf"),
        ("attachment; name=Before The Law; filename=before_the_law.txt", "before_the_law.txt"),
        ("attachment; filename*=UTF-8''%C3%A5rsrapport%202024.pdf", "årsrapport 2024.pdf"),
        ("attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%E2%82%AC.pdf", "€.pdf"),
        ('ATTACHMENT; FILENAME="quoted \\"name\\".txt"', 'quoted "name".txt'),
        ("inline; filename*=iso-8859-1'no'%E6%F8%E5.txt", "æøå.txt"),
    ],
)
def test_file_names_from_content_disposition(header: str, filename: str) -> None:
    assert upload_filename(header)[0] == filename


def test_name_parameter_is_kept() -> None:
    disposition = parse_content_disposition('attachment; name="Vedtak"; filename="v.pdf"')
    assert disposition.type == "attachment"
    assert disposition.name == "Vedtak"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "attachment",
        'attachment; filename="../../etc/passwd"',
        'attachment; filename="a\\\\b"',
        'attachment; filename=".."',
        "attachment; filename*=UTF-8''a%0Ab",
        'attachment; filename="unterminated',
        "attachment; filename*=KOI8-R''abc",
        "attachment; filename=a; filename=b",
    ],
)
def test_bad_content_disposition_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        upload_filename(header)
    assert caught.value.rule == "content-disposition"


def test_dotted_paths() -> None:
    assert dotted("/a/b/0/c") == "a.b[0].c"
    assert dotted("") == ""


def test_envelope_violations_name_their_fields() -> None:
    error = EnvelopeError(
        [
            Violation("json-structure", "$/standardBusinessDocumentHeader/sender/0: required"),
            Violation("invalid-type", "DocumentIdentification/Type is empty"),
            Violation("something-new", "no field known"),
        ]
    )
    errors = field_errors(error, body_prefix="standardBusinessDocument")
    assert [(e.field, e.rule, e.message) for e in errors] == [
        ("standardBusinessDocumentHeader.sender[0]", "json-structure", "required"),
        (
            "standardBusinessDocument.standardBusinessDocumentHeader.documentIdentification.type",
            "invalid-type",
            "DocumentIdentification/Type is empty",
        ),
        (None, "something-new", "no field known"),
    ]


def test_service_errors_name_their_fields() -> None:
    forbidden = Forbidden(
        "standardBusinessDocumentHeader.sender: may not send as 0192:974760673",
        rule="standardBusinessDocumentHeader.sender",
    )
    (error,) = field_errors(forbidden)
    assert error.field == "standardBusinessDocumentHeader.sender"
    assert error.rule == "forbidden"
    assert error.message == "may not send as 0192:974760673"
    (error,) = field_errors(
        InvalidInput("Content-Type: a media type is required", rule="mimeType"),
        aliases={"mimeType": "Content-Type"},
    )
    assert error.field == "Content-Type"
    (error,) = field_errors(Conflict("$/arkivmelding/x: differs", rule="$/arkivmelding/x"))
    assert error.field == "arkivmelding.x"
    (error,) = field_errors(InvalidParameter("size", "must be at least 1"))
    assert error.field == "size"
    assert field_errors(InvalidInput("plain")) == []
