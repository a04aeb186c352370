"""Small helpers for the SMP tests."""

from __future__ import annotations

import base64

from cryptography import x509
from lxml import etree

DS = "{http://www.w3.org/2000/09/xmldsig#}"


def key_info_certificate(data: bytes) -> x509.Certificate:
    """The first certificate in a signed document's KeyInfo (test helper, trusted input)."""
    root = etree.fromstring(data)
    node = root.find(f".//{DS}X509Certificate")
    assert node is not None
    assert node.text is not None
    return x509.load_der_x509_certificate(base64.b64decode("".join(node.text.split())))
