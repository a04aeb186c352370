"""The ASiC-E container (ETSI EN 319 162-1): what makes a ZIP with a XAdES signature an ASiC-E.

Layout of a container written here::

    mimetype                     first, STORED, no extra field: application/vnd.etsi.asic-e+zip
    <business files>             STORED by default (deflate on request)
    manifest.xml                 the package manifest (:mod:`sbdh.package`)
    META-INF/signatures.xml      asic:XAdESSignatures holding one ds:Signature

The ZIP itself is :mod:`sbdh.ziparchive`, the signature :mod:`sbdh.xades`; this module holds the
container's own rules: the ``mimetype`` entry (:func:`write_mimetype`, :func:`check_mimetype`)
and that the signature covers exactly the entries there are (:func:`check_coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sbdh.errors import MissingFile, PackageError
from sbdh.xades import SignedReference
from sbdh.ziparchive import Compression, ZipReader, ZipWriter

__all__ = [
    "ASIC_E_MIME_TYPE",
    "MIMETYPE_NAME",
    "SIGNATURES_NAME",
    "check_coverage",
    "check_mimetype",
    "write_mimetype",
]

ASIC_E_MIME_TYPE: Final = "application/vnd.etsi.asic-e+zip"
MIMETYPE_NAME: Final = "mimetype"
SIGNATURES_NAME: Final = "META-INF/signatures.xml"


def write_mimetype(writer: ZipWriter) -> None:
    """Write the ``mimetype`` entry; it must be the first entry of the container."""
    if writer.offset:
        raise ValueError("'mimetype' must be the first entry")
    # add(), not open(): sizes in the local header and no data descriptor, as the profile says
    writer.add(MIMETYPE_NAME, ASIC_E_MIME_TYPE.encode("ascii"))


def check_mimetype(reader: ZipReader) -> None:
    """``mimetype`` is the first entry, at offset 0, STORED, no extra field, the ASiC-E type.

    Raises :class:`PackageError` with rule ``asic-mimetype`` otherwise.
    """
    first = reader.entries[0] if reader.entries else None
    if first is None or first.name != MIMETYPE_NAME or first.header_offset != 0:
        raise PackageError("the first entry of an ASiC-E must be 'mimetype'", rule="asic-mimetype")
    if first.compression is not Compression.STORED or first.extra_length:
        raise PackageError(
            "'mimetype' must be stored uncompressed and without an extra field",
            rule="asic-mimetype",
        )
    content = reader.read(first, max_size=len(ASIC_E_MIME_TYPE))
    if content != ASIC_E_MIME_TYPE.encode("ascii"):
        raise PackageError(
            f"'mimetype' is {content[:80]!r}, not {ASIC_E_MIME_TYPE}", rule="asic-mimetype"
        )


def check_coverage(names: Iterable[str], references: Iterable[SignedReference]) -> set[str]:
    """Every entry but ``mimetype`` and the signature is signed, and every signed entry exists.

    ``names`` are the container's (file) entries. Returns the signed entries. Raises
    :class:`PackageError` (rule ``asic-unsigned-file``) or :class:`MissingFile`
    (``asic-missing-file``).
    """
    signed = {r.name for r in references}
    content = set(names) - {MIMETYPE_NAME, SIGNATURES_NAME}
    if unsigned := sorted(content - signed):
        raise PackageError(
            f"the container holds entries nobody signed: {', '.join(unsigned)}",
            rule="asic-unsigned-file",
        )
    if missing := sorted(signed - content):
        raise MissingFile(
            f"signed entries are missing from the container: {', '.join(missing)}",
            rule="asic-missing-file",
        )
    return content
