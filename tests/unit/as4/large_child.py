"""Run in a fresh interpreter by test_large: send and receive one large SBD (or, with
``package``, a small SBD and a large eFormidling document package after it) through files and
report the peak resident memory (VmHWM) with the timings, as JSON on stdout.

``python -m tests.unit.as4.large_child <size-in-MiB> <directory> [sbd|package]``
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from access_point.as4 import (
    Attachment,
    BuildOptions,
    Identifier,
    ReceiveOptions,
    Routing,
    build_user_message,
    receive_user_message,
)
from sbdh.pki import generate_dev_pki
from sbdh.trust import TrustStore


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def sbd_chunks(total: int, digest: hashlib._Hash) -> Iterator[bytes]:
    """An SBD-shaped document of about ``total`` bytes, invoice lines with varying content
    (compressible like real XML, not like zeros)."""
    head = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<StandardBusinessDocument xmlns='
        b'"http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader">'
        b"<Invoice>\n"
    )
    tail = b"</Invoice></StandardBusinessDocument>\n"
    digest.update(head)
    yield head
    produced = len(head)
    line_no = 0
    while produced < total - len(tail):
        lines = []
        for _ in range(4096):
            line_no += 1
            seed = hashlib.blake2b(line_no.to_bytes(8, "big"), digest_size=12).hexdigest()
            lines.append(
                f"<Line><ID>{line_no}</ID><Item>{seed}</Item><Qty>{line_no % 97}</Qty>"
                f"<Price>{(line_no * 7919) % 100000 / 100:.2f}</Price></Line>\n".encode()
            )
        chunk = b"".join(lines)
        digest.update(chunk)
        produced += len(chunk)
        yield chunk
    digest.update(tail)
    yield tail


def main(size_mib: int, directory: Path, mode: str = "sbd") -> dict[str, object]:
    now = datetime.now(UTC)
    pki = generate_dev_pki(now=now, ca_key_size=2048)
    sender, receiver = pki.access_points["PNO000001"], pki.access_points["PNO000002"]
    trust = TrustStore((pki.root.certificate,), (pki.ap_ca.certificate,))
    routing = Routing(
        Identifier.participant("0192:991825827"),
        Identifier.participant("0192:974760673"),
        Identifier.document_type("urn:x::Invoice##urn:y::2.1"),
        Identifier.process("urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"),
    )
    baseline = vm_hwm_kib()
    sent_digest = hashlib.sha256()
    body_path = directory / "request.bin"
    large = sbd_chunks(size_mib * 1024 * 1024, sent_digest)
    if mode == "package":
        payload: bytes | Iterator[bytes] = b'<?xml version="1.0"?><StandardBusinessDocument/>'
        attachments = [Attachment(large, "application/vnd.etsi.asic-e+zip")]
    else:
        payload, attachments = large, []
    started = time.perf_counter()
    with (
        build_user_message(
            payload,
            attachments=attachments,
            routing=routing,
            sender=sender,
            receiver_certificate=receiver.certificate,
            now=now,
            options=BuildOptions(spool_dir=str(directory)),
        ) as message,
        body_path.open("wb") as out,
    ):
        for chunk in message.iter_chunks():
            out.write(chunk)
        content_type = message.content_type
        payload_size = message.attachment_sizes[0] if attachments else message.payload_size
    built = time.perf_counter()
    after_build = vm_hwm_kib()
    received_digest = hashlib.sha256()
    with (
        body_path.open("rb") as body,
        receive_user_message(
            body,
            content_type,
            credential=receiver,
            trust=trust,
            now=now,
            options=ReceiveOptions(spool_dir=str(directory), max_payloads=2),
        ) as inbound,
    ):
        received = inbound.payloads[-1]
        for chunk in received.iter_chunks():
            received_digest.update(chunk)
        received_size = received.size
        payload_count = len(inbound.payloads)
    done = time.perf_counter()
    return {
        "baseline_kib": baseline,
        "after_build_kib": after_build,
        "peak_kib": vm_hwm_kib(),
        "payload_size": payload_size,
        "received_size": received_size,
        "payload_count": payload_count,
        "wire_size": body_path.stat().st_size,
        "same_payload": sent_digest.hexdigest() == received_digest.hexdigest(),
        "build_seconds": round(built - started, 2),
        "receive_seconds": round(done - built, 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:4])))
