"""``budstikke demo envelope``: the envelope round trip, without the service.

The round trip that every message makes inside the access point: a
development PKI for two organisations, an eFormidling *arkivmelding* SBD checked against the
envelope rules and signed by the sender, its documents sealed in a signed and encrypted package
for the receiver; then the receiver's side: verify the SBD signature, parse only what was
signed, open and verify the package. It ends by showing that tampering is caught.
"""

from __future__ import annotations

import argparse
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sbdh.errors import BusError
from sbdh.identifiers import OrganisationNumber
from sbdh.jsonform import sbd_to_json
from sbdh.model import BusinessMessage, JsonObject, eformidling_sbd
from sbdh.package import PackageFile, open_package, seal_package
from sbdh.pki import Credential, DevPki, generate_dev_pki, init_pki
from sbdh.rules import Profile, check_sbd
from sbdh.signing import sign_sbd, verify_sbd
from sbdh.trust import TrustStore
from sbdh.xmlform import sbd_to_xml

SENDER = OrganisationNumber("991825827")
RECEIVER = OrganisationNumber("974760673")
ARKIVMELDING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding"
ARKIVMELDING_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


def _step(number: int, text: str) -> None:
    print(f"{number:>2}. {text}")


def minimal_pdf(text: str) -> bytes:
    """A small, valid one-page PDF, so the demo needs no PDF library."""
    stream = f"BT /F1 14 Tf 72 760 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _arkivmelding(conversation_id: str, now: datetime) -> bytes:
    """A minimal NOARK 5 arkivmelding: one case file with one journal entry and its document."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <system>Budstikke demo</system>
  <meldingId>{conversation_id}</meldingId>
  <tidspunkt>{stamp}</tidspunkt>
  <antallFiler>1</antallFiler>
  <mappe xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="saksmappe">
    <tittel>Søknad om byggetillatelse, Storgata 1</tittel>
    <registrering xsi:type="journalpost">
      <tittel>Vedtak om byggetillatelse</tittel>
      <dokumentbeskrivelse>
        <dokumenttype>Brev</dokumenttype>
        <tilknyttetRegistreringSom>Hoveddokument</tilknyttetRegistreringSom>
        <dokumentnummer>1</dokumentnummer>
        <tittel>Vedtak</tittel>
        <dokumentobjekt>
          <referanseDokumentfil>vedtak.pdf</referanseDokumentfil>
        </dokumentobjekt>
      </dokumentbeskrivelse>
      <journalposttype>Utgående dokument</journalposttype>
      <journalstatus>Ekspedert</journalstatus>
    </registrering>
    <saksaar>{now.year}</saksaar>
    <sakssekvensnummer>42</sakssekvensnummer>
  </mappe>
</arkivmelding>
""".encode()


def _pki(directory: Path, now: datetime) -> DevPki:
    pki = generate_dev_pki(now=now)
    init_pki(directory, pki, force=True)
    return pki


def run(args: argparse.Namespace) -> int:
    base: Path = args.dir
    now = datetime.now(UTC)
    if base.exists():
        shutil.rmtree(base)
    outbox, inbox = base / "outbox", base / "inbox"
    outbox.mkdir(parents=True)
    print("Budstikke envelope round trip on the embedded default\n")

    pki = _pki(base / "pki", now)
    sender_cred: Credential = pki.organisations[SENDER.value]
    receiver_cred: Credential = pki.organisations[RECEIVER.value]
    trust = TrustStore((pki.root.certificate,))
    _step(1, f"development PKI in {base / 'pki'}: root CA, access-point CA, enterprise CA,")
    print(f"    {len(pki.access_points)} access points, {len(pki.organisations)} organisations")

    conversation = str(uuid.uuid4())
    sbd = eformidling_sbd(
        sender=SENDER.participant_id(),
        receiver=RECEIVER.participant_id(),
        message=BusinessMessage(
            "arkivmelding",
            JsonObject.of({"hoveddokument": "arkivmelding.xml", "sikkerhetsnivaa": 3}),
        ),
        standard=ARKIVMELDING_STANDARD,
        process=ARKIVMELDING_PROCESS,
        conversation_id=conversation,
        instance_identifier=str(uuid.uuid4()),
        created=now,
        type_version="2.0",
        expected_response=now + timedelta(days=7),
    )
    xml = sbd_to_xml(sbd)
    check_sbd(xml, Profile.EFORMIDLING)
    json_form = sbd_to_json(sbd)
    (outbox / "message.sbd.json").write_bytes(json_form)
    _step(2, f"arkivmelding SBD from {SENDER.participant_id()} to {RECEIVER.participant_id()}")
    print(f"    conversation {conversation}; eFormidling envelope rules: OK")
    print(f"    NextMove JSON form: {len(json_form)} bytes -> {outbox / 'message.sbd.json'}")

    signed = sign_sbd(xml, sender_cred)
    (outbox / "message.sbd.xml").write_bytes(signed)
    _step(3, f"SBD signed (XMLDSig, RSA-SHA256) by {sender_cred.common_name}")

    (outbox / "arkivmelding.xml").write_bytes(_arkivmelding(conversation, now))
    (outbox / "vedtak.pdf").write_bytes(minimal_pdf("Vedtak om byggetillatelse"))
    package_path = outbox / "package.asice.cms"
    with package_path.open("wb") as out:
        sealed = seal_package(
            [
                PackageFile("arkivmelding.xml", outbox / "arkivmelding.xml", "application/xml"),
                PackageFile("vedtak.pdf", outbox / "vedtak.pdf", "application/pdf", "Vedtak"),
            ],
            sender=SENDER.participant_id(),
            receiver=RECEIVER.participant_id(),
            main_document="arkivmelding.xml",
            signer=sender_cred,
            recipient_certificate=receiver_cred.certificate,
            out=out,
            now=now,
        )
    _step(4, f"document package sealed: {len(sealed.files)} files, {sealed.size} bytes")
    print("    ASiC-E with XAdES, in CMS EnvelopedData (AES-256-CBC, RSAES-OAEP SHA-256)")
    print(f"    -> {package_path}")

    print("\n    ... the receiver's side ...\n")
    verified = verify_sbd((outbox / "message.sbd.xml").read_bytes(), trust, at=now)
    received = verified.sbd(Profile.EFORMIDLING)
    chain = " -> ".join(c.subject.rfc4514_string().split(",")[0] for c in verified.chain)
    _step(5, f"SBD signature verified; signer chain {chain}")
    print(f"    conversation {received.header.conversation_id}, routed on signed content only")

    with package_path.open("rb") as src:
        opened = open_package(src, recipient=receiver_cred, trust=trust, out_dir=inbox, now=now)
    _step(6, f"package opened and verified: signed by {sender_cred.common_name}")
    for packed in opened.files:
        print(f"    {packed.name:<18} {packed.size:>6} bytes  sha256 {packed.sha256.hex()[:16]}…")
    print(f"    -> {inbox}")

    _step(7, "tampering is refused:")
    tampered = bytearray(package_path.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    (base / "tampered.cms").write_bytes(bytes(tampered))
    try:
        with (base / "tampered.cms").open("rb") as src:
            open_package(
                src, recipient=receiver_cred, trust=trust, out_dir=base / "tampered", now=now
            )
    except BusError as exc:
        print(f"    one bit flipped in the package: {type(exc).__name__}: {exc}")
    else:  # pragma: no cover - would be a security bug
        print("    one bit flipped in the package: NOT DETECTED")
        return 1
    forged = signed.replace(RECEIVER.value.encode(), b"910075918", 1)
    try:
        verify_sbd(forged, trust, at=now)
    except BusError as exc:
        print(f"    receiver rewritten in the signed SBD: {type(exc).__name__}: {exc}")
    else:  # pragma: no cover
        print("    receiver rewritten in the signed SBD: NOT DETECTED")
        return 1

    print(f"\nDone. Try: budstikke sbd validate {outbox / 'message.sbd.xml'}")
    print(
        f"     budstikke package open --cert {base}/pki/organisations/{RECEIVER}.pem "
        f"--key {base}/pki/organisations/{RECEIVER}.key --trust {base}/pki/root-ca.pem "
        f"-o {base}/opened {package_path}"
    )
    return 0
