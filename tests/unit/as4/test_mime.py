"""The MIME reader takes what real senders write, and the Content-Type parser its corners."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from datetime import datetime

import pytest

from access_point.as4 import MimeInconsistency, OutboundMessage, receive_user_message
from access_point.as4.mime import parse_content_type, read_mime
from access_point.as4.streams import as_source
from sbdh.pki import Credential
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import SBD, wire

Build = Callable[..., OutboundMessage]


def _receive(
    body: bytes, ctype: str, receiver: Credential, trust: TrustStore, now: datetime
) -> bytes:
    with receive_user_message(body, ctype, credential=receiver, trust=trust, now=now) as inbound:
        return inbound.payload.read_bytes()


@pytest.mark.parametrize(
    ("eol", "preamble"),
    [
        (b"\r\n", b""),
        (b"\r\n", b"This is a multi-part message in MIME format.\r\n"),
        (b"\n", b""),
        (b"\n", b"preamble line\n\n"),
    ],
    ids=["crlf", "crlf-preamble", "lf", "lf-preamble"],
)
def test_line_ends_and_preamble(  # noqa: PLR0917 - fixtures
    build: Build,
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
    eol: bytes,
    preamble: bytes,
) -> None:
    with build() as message:
        body = wire(message).join(eol=eol, preamble=preamble)
        assert _receive(body, message.content_type, receiver, ap_trust, now) == SBD


def test_unquoted_boundary_without_start_and_soap_part_unnamed(
    build: Build, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    with build() as message:
        parts = wire(message)
    head = parts.parts[0][0]
    parts.parts[0] = (
        b"\r\n".join(h for h in head.split(b"\r\n") if b"Content-ID" not in h),
        parts.soap,
    )
    parts.boundary = "simple_boundary-123"
    ctype = "Multipart/Related;type=application/soap+xml;boundary=simple_boundary-123"
    assert _receive(parts.join(), ctype, receiver, ap_trust, now) == SBD


def test_start_parameter_picks_the_root_wherever_it_is(
    build: Build, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    with build() as message:
        parts = wire(message)
    parts.parts.reverse()
    assert _receive(parts.join(), message.content_type, receiver, ap_trust, now) == SBD


def test_base64_attachment_and_folded_headers(
    build: Build, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    with build() as message:
        parts = wire(message)
    head = (
        parts.parts[1][0]
        .replace(b"binary", b"base64")
        .replace(b"Content-ID:", b"Content-ID:\r\n\t")
    )
    encoded = base64.encodebytes(parts.attachment)  # 76-column lines
    parts.parts[1] = (head, encoded)
    assert _receive(parts.join(), message.content_type, receiver, ap_trust, now) == SBD


def test_transport_padding_after_boundaries(
    build: Build, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    with build() as message:
        parts = wire(message)
        body = parts.join().replace(
            f"--{parts.boundary}\r\n".encode(), f"--{parts.boundary}  \t\r\n".encode()
        )
        assert _receive(body, message.content_type, receiver, ap_trust, now) == SBD


def test_boundary_text_inside_content_is_not_a_delimiter() -> None:
    body = (
        b"--b1\r\nContent-Type: application/soap+xml\r\n\r\n"
        b"<x>--b1 is not a delimiter, --b1x neither\r\n--b1x</x>\r\n--b1--\r\n"
    )
    mime = read_mime(as_source(body, 4096), "multipart/related; boundary=b1", max_soap_bytes=1000)
    assert mime.soap == b"<x>--b1 is not a delimiter, --b1x neither\r\n--b1x</x>"


def test_file_source_finds_delimiters_across_chunk_edges() -> None:
    filler = b"z" * 4093
    body = b"--bnd\r\nContent-Type: application/soap+xml\r\n\r\n" + filler + b"\r\n--bnd--\r\n"
    for offset in range(0, 12):
        padded = b"p" * offset + b"\r\n" + body
        mime = read_mime(
            as_source(io.BytesIO(padded), 4096),
            "multipart/related; boundary=bnd",
            max_soap_bytes=10**6,
        )
        assert mime.soap == filler


def test_soap_part_over_the_limit() -> None:
    body = b"--b\r\nContent-Type: application/soap+xml\r\n\r\n" + b"x" * 5000 + b"\r\n--b--\r\n"
    with pytest.raises(MimeInconsistency):
        read_mime(as_source(body, 4096), "multipart/related; boundary=b", max_soap_bytes=4000)


def test_root_must_be_soap() -> None:
    body = b"--b\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n--b--\r\n"
    with pytest.raises(MimeInconsistency) as refused:
        read_mime(as_source(body, 4096), "multipart/related; boundary=b", max_soap_bytes=4000)
    assert refused.value.rule == "mime-root"


@pytest.mark.parametrize(
    ("value", "media_type", "params"),
    [
        ("application/soap+xml", "application/soap+xml", {}),
        (
            'multipart/related; type="application/soap+xml"; boundary="----=_Part_1;2"',
            "multipart/related",
            {"type": "application/soap+xml", "boundary": "----=_Part_1;2"},
        ),
        (
            'Multipart/Related;BOUNDARY=abc ; Start="<a@b>"',
            "multipart/related",
            {"boundary": "abc", "start": "<a@b>"},
        ),
        ('text/plain; name="a \\"quoted\\" word"', "text/plain", {"name": 'a "quoted" word'}),
    ],
)
def test_content_type_parameters(value: str, media_type: str, params: dict[str, str]) -> None:
    parsed = parse_content_type(value)
    assert parsed.media_type == media_type
    assert dict(parsed.params) == params


@pytest.mark.parametrize(
    "value", ["", "nonsense", 'text/plain; name="unterminated', "a/b; novalue"]
)
def test_content_type_garbage(value: str) -> None:
    with pytest.raises(MimeInconsistency):
        parse_content_type(value)
