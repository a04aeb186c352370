"""Exclusive c14n details the signature checks rely on (expected forms from the W3C exc-c14n
specification, written out by hand)."""

from __future__ import annotations

import pytest
from lxml import etree

from access_point.as4 import PolicyNoncompliance
from access_point.as4.wssec import c14n, index_ids

DOC = (
    b'<r xmlns:x="urn:x" xmlns="urn:d"><p:c xmlns:p="urn:p" a="1"><p:e/></p:c>'
    b'<p:d xmlns:p="urn:p"/><e/><p:f xmlns:p="urn:p"><g/></p:f></r>'
)


@pytest.mark.parametrize(
    ("index", "prefixes", "expected"),
    [
        (0, None, b'<p:c xmlns:p="urn:p" a="1"><p:e></p:e></p:c>'),
        (0, ["x"], b'<p:c xmlns:p="urn:p" xmlns:x="urn:x" a="1"><p:e></p:e></p:c>'),
        (
            0,
            ["x", "#default"],
            b'<p:c xmlns="urn:d" xmlns:p="urn:p" xmlns:x="urn:x" a="1"><p:e></p:e></p:c>',
        ),
        (1, ["#default"], b'<p:d xmlns="urn:d" xmlns:p="urn:p"></p:d>'),
        (2, ["#default"], b'<e xmlns="urn:d"></e>'),
    ],
)
def test_inclusive_namespaces(index: int, prefixes: list[str] | None, expected: bytes) -> None:
    root = etree.fromstring(DOC)
    assert c14n(root[index], prefixes) == expected


def test_default_namespace_used_below_a_prefixed_apex_is_refused_not_guessed() -> None:
    root = etree.fromstring(DOC)
    with pytest.raises(PolicyNoncompliance):
        c14n(root[3], ["#default"])


def test_index_ids_sees_every_id_form_and_refuses_duplicates() -> None:
    doc = etree.fromstring(
        b'<r xmlns:wsu="urn:wsu" xmlns:o="urn:o"><a wsu:Id="i1"/><b Id="i2"/><c id="i3"/>'
        b'<d xml:id="i4"/><e o:ID="i5"/></r>'
    )
    assert sorted(index_ids(doc)) == ["i1", "i2", "i3", "i4", "i5"]
    doc.append(etree.Element("f", {"Id": "i3"}))
    with pytest.raises(Exception, match="used by more than one element"):
        index_ids(doc)
