"""The hardened parser refuses what attackers send, without fetching or expanding anything."""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sbdh.errors import InvalidInput, XmlSecurityError
from sbdh.xmlsafe import XmlLimits, parse_xml, parse_xml_file

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'<!ENTITY secret "from the network">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    _Counter.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Counter.hits
    finally:
        server.shutdown()
        server.server_close()


def test_plain_document_parses_with_whitespace_and_comments_kept() -> None:
    root = parse_xml(b"<a>\n  <!-- why --><b>x</b>\n</a>")
    assert root.tag == "a"
    assert root.text == "\n  "
    assert root[1].tag == "b"


def test_billion_laughs_is_refused_as_dtd() -> None:
    with pytest.raises(XmlSecurityError) as info:
        parse_xml(BILLION_LAUGHS)
    assert info.value.rule == "xml-dtd"


def test_billion_laughs_cannot_blow_up_memory() -> None:
    # In a child process with a 300 MB address-space cap: were entities expanded (10**9
    # "lol"s), the child would fail with MemoryError instead of the clean refusal.
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (300 * 2**20, 300 * 2**20))
        from sbdh.errors import XmlSecurityError
        from sbdh.xmlsafe import parse_xml
        doc = {BILLION_LAUGHS!r}.replace(b"<!DOCTYPE", b"<!DOCTYPE", 1)
        try:
            parse_xml(doc)
        except XmlSecurityError as exc:
            print(exc.rule)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "xml-dtd"


def test_external_entity_reads_no_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    doc = f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]><x>&e;</x>'.encode()
    with pytest.raises(XmlSecurityError) as info:
        parse_xml(doc)
    assert "TOP SECRET" not in str(info.value)


def test_external_dtd_and_parameter_entities_never_touch_the_network(
    http_server: tuple[str, list[str]],
) -> None:
    base, hits = http_server
    attacks = [
        f'<!DOCTYPE x SYSTEM "{base}/x.dtd"><x/>',
        f'<!DOCTYPE x [<!ENTITY % p SYSTEM "{base}/p.dtd"> %p;]><x>&secret;</x>',
        f'<!DOCTYPE x PUBLIC "-//X//EN" "{base}/pub.dtd"><x/>',
    ]
    for attack in attacks:
        with pytest.raises(XmlSecurityError):
            parse_xml(attack.encode())
    assert hits == []


def test_xinclude_is_not_processed() -> None:
    doc = (
        b'<x xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></x>'
    )
    root = parse_xml(doc)
    assert "root:" not in "".join(root.itertext())


def test_undeclared_entity_reference_is_refused() -> None:
    with pytest.raises(XmlSecurityError) as info:
        parse_xml(b"<x>&nbsp;</x>")
    assert info.value.rule == "xml-entity"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_dtd_in_other_encodings_is_refused(encoding: str) -> None:
    doc = '<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'.encode(encoding)
    with pytest.raises(XmlSecurityError) as info:
        parse_xml(doc)
    assert info.value.rule == "xml-dtd"


def test_oversized_input_is_refused_before_parsing() -> None:
    limits = XmlLimits(max_bytes=1024)
    with pytest.raises(XmlSecurityError) as info:
        parse_xml(b"<a>" + b"x" * 2000 + b"</a>", limits)
    assert info.value.rule == "xml-size"


def test_oversized_file_is_refused_by_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(b"<a>" + b" " * 5000 + b"</a>")
    with pytest.raises(XmlSecurityError) as info:
        parse_xml_file(big, XmlLimits(max_bytes=4096))
    assert info.value.rule == "xml-size"
    assert parse_xml_file(big).tag == "a"


@pytest.mark.parametrize("depth", [101, 255, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    doc = b"<a>" * depth + b"</a>" * depth
    with pytest.raises(XmlSecurityError) as info:
        parse_xml(doc)
    assert info.value.rule == "xml-depth"


def test_nesting_at_the_limit_is_accepted() -> None:
    doc = b"<a>" * 100 + b"</a>" * 100
    assert parse_xml(doc).tag == "a"


@pytest.mark.parametrize("doc", [b"", b"not xml", b"<a><b></a>", b"<a/><b/>"])
def test_malformed_input_is_invalid_input_not_a_crash(doc: bytes) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_xml(doc)
    assert info.value.rule == "xml-well-formed"


def test_non_bytes_input_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_xml("<a/>")  # type: ignore[arg-type]
