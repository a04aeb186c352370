"""Envelope benchmarks: run by hand, figures quoted in the README.

    .venv/bin/python bench/envelope.py            # everything, the 500 MB package included
    .venv/bin/python bench/envelope.py --quick    # 100 MB instead of 500 MB

Prints SBD parse+validate per second (10 KB payload), sign and verify per second, package seal
and open MB/s for 10 KB, 10 MB and 500 MB, AES-256-CBC encrypt+decrypt alone over the same
bytes for comparison, and the peak memory (max RSS) of a process that seals and opens the
largest package. The large case runs in a child process so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from sbdh.identifiers import ParticipantId
from sbdh.model import XmlPayload, peppol_sbd
from sbdh.package import PackageFile, open_package, seal_package
from sbdh.pki import DevPki, generate_dev_pki
from sbdh.rules import Profile, validate_sbd
from sbdh.signing import sign_sbd, verify_sbd
from sbdh.trust import TrustStore
from sbdh.xmlform import sbd_to_xml

MB = 1_000_000
CHUNK = 1 << 20
DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice"
    "##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"


def rate(fn: Callable[[], object], seconds: float = 2.0) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    fn()  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def invoice_sbd(now: datetime, payload_bytes: int = 10_000) -> bytes:
    ubl = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
    cbc = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
    cac = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
    root = etree.Element(f"{{{ubl}}}Invoice", nsmap={None: ubl, "cbc": cbc, "cac": cac})
    etree.SubElement(root, f"{{{cbc}}}CustomizationID").text = DOCTYPE.split("##")[1][:-5]
    etree.SubElement(root, f"{{{cbc}}}ID").text = "INV-1"
    line = 0
    while len(etree.tostring(root)) < payload_bytes:
        line += 1
        el = etree.SubElement(root, f"{{{cac}}}InvoiceLine")
        etree.SubElement(el, f"{{{cbc}}}ID").text = str(line)
        etree.SubElement(el, f"{{{cbc}}}InvoicedQuantity", unitCode="EA").text = "1"
        etree.SubElement(el, f"{{{cbc}}}LineExtensionAmount", currencyID="NOK").text = "100.00"
    sbd = peppol_sbd(
        sender=ParticipantId("0192:991825827"),
        receiver=ParticipantId("0192:974760673"),
        document_type_id=DOCTYPE,
        process_id=PROCESS,
        country_c1="NO",
        payload=XmlPayload.from_element(root),
        instance_identifier=str(uuid.uuid4()),
        created=now,
    )
    return sbd_to_xml(sbd)


def write_payload(path: Path, size: int) -> None:
    block = os.urandom(min(size, CHUNK))
    with path.open("wb") as fh:
        left = size
        while left:
            fh.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def aes_alone(size: int) -> float:
    """Seconds for AES-256-CBC encrypt and decrypt of ``size`` bytes, in 1 MiB chunks, no I/O."""
    key, iv = os.urandom(32), os.urandom(16)
    block = os.urandom(CHUNK)
    start = time.perf_counter()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    left = size - size % 16
    while left:
        n = min(left, CHUNK)
        dec.update(enc.update(block[:n]))
        left -= n
    enc.finalize()
    dec.finalize()
    return time.perf_counter() - start


def package_round_trip(pki: DevPki, size: int, work: Path) -> dict[str, float]:
    now = datetime.now(UTC)
    sender = pki.organisations["991825827"]
    receiver = pki.organisations["974760673"]
    trust = TrustStore((pki.root.certificate,))
    payload = work / f"payload-{size}.bin"
    write_payload(payload, size)
    os.sync()  # flush the payload's dirty pages so their writeback is not timed below
    package = work / f"package-{size}.cms"
    out_dir = work / f"opened-{size}"
    start = time.perf_counter()
    with package.open("wb") as out:
        seal_package(
            [PackageFile("payload.bin", payload, "application/octet-stream")],
            sender=ParticipantId("0192:991825827"),
            receiver=ParticipantId("0192:974760673"),
            main_document="payload.bin",
            signer=sender,
            recipient_certificate=receiver.certificate,
            out=out,
            now=now,
        )
    sealed = time.perf_counter()
    with package.open("rb") as src:
        open_package(src, recipient=receiver, trust=trust, out_dir=out_dir, now=now, work_dir=work)
    opened = time.perf_counter()
    for path in (payload, package, out_dir / "payload.bin"):
        path.unlink()
    out_dir.rmdir()
    return {"seal_s": sealed - start, "open_s": opened - sealed}


def child(size: int, work: Path) -> None:
    pki = generate_dev_pki(now=datetime.now(UTC), ca_key_size=2048)
    result = package_round_trip(pki, size, work)
    # VmHWM rather than ru_maxrss, which Linux carries over from the parent across exec
    with open("/proc/self/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    result["maxrss_mb"] = hwm_kb / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 MB instead of 500 MB")
    parser.add_argument("--work-dir", type=Path, default=None, help="where packages are written")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work_parent = args.work_dir or Path(tempfile.gettempdir())
    if args.child is not None:
        child(args.child, work_parent)
        return

    now = datetime.now(UTC)
    print(f"Budstikke envelope benchmark — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    pki = generate_dev_pki(now=now, ca_key_size=2048)
    trust = TrustStore((pki.root.certificate,))
    signer = pki.organisations["991825827"]

    sbd = invoice_sbd(now)
    print(f"\nSBD with a {len(sbd) // 1000} KB payload")
    validate = lambda: validate_sbd(sbd, Profile.PEPPOL)  # noqa: E731
    print(f"  parse + validate (Peppol rules)   {rate(validate):8.0f} /s")
    signed = sign_sbd(sbd, signer)
    print(f"  sign (RSA-2048, SHA-256)          {rate(lambda: sign_sbd(sbd, signer)):8.0f} /s")
    verify = lambda: verify_sbd(signed, trust, at=now)  # noqa: E731
    print(f"  verify (incl. chain to the root)  {rate(verify):8.0f} /s")

    big = 100 * MB if args.quick else 500 * MB
    print("\nDocument package (ASiC-E + XAdES in CMS AES-256-CBC / RSA-OAEP), one file")
    print(f"  {'payload':>10} {'seal MB/s':>10} {'open MB/s':>10} {'AES MB/s':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="budstikke-bench-", dir=work_parent) as tmp:
        work = Path(tmp)
        for size in (10_000, 10 * MB):
            runs = [package_round_trip(pki, size, work) for _ in range(3 if size > MB else 20)]
            seal_s = min(r["seal_s"] for r in runs)
            open_s = min(r["open_s"] for r in runs)
            aes_s = min(aes_alone(size) for _ in range(3))
            print(
                f"  {size / MB:>8.2f}MB {size / MB / seal_s:>10.1f} {size / MB / open_s:>10.1f}"
                f" {size / MB / aes_s:>10.1f} {(seal_s + open_s) / aes_s:>6.2f}x"
            )
            if size < MB:
                print(
                    f"  {'':>10} ({1 / seal_s:.0f} seals/s, {1 / open_s:.0f} opens/s: "
                    "RSA signing, key transport and XAdES dominate small packages)"
                )
        results = []
        for _ in range(3):  # the median of three, each in a fresh process: disk speed varies
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(big), "--work-dir", str(work)],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(out.stdout))
        aes_s = statistics.median(aes_alone(big) for _ in range(3))
        seal_s = statistics.median(r["seal_s"] for r in results)
        open_s = statistics.median(r["open_s"] for r in results)
        result = {"maxrss_mb": max(r["maxrss_mb"] for r in results)}
        print(
            f"  {big / MB:>8.0f}MB {big / MB / seal_s:>10.1f} {big / MB / open_s:>10.1f}"
            f" {big / MB / aes_s:>10.1f} {(seal_s + open_s) / aes_s:>6.2f}x"
        )
    print("  ratio = (seal + open) / (AES-256-CBC encrypt + decrypt alone); target <= 3x")
    print(f"  peak memory sealing and opening {big / MB:.0f} MB: {result['maxrss_mb']:.0f} MB RSS")


if __name__ == "__main__":
    main()
