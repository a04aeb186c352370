"""The far side of the interop test, run by an interpreter that has the PyPI ``as4`` package
(never the project's own): it plays the other access point.

``python as4_peer.py <command> <directory>``, where the directory holds ``<CN>.pem``/``.key``
for PNO000001 (sender) and PNO000002 (receiver) and the files each command reads and writes:

* ``build``: ``invoice.xml`` → ``body``, ``content_type``, ``exchange.json`` (PNO000001 sends)
* ``parse``: ``body``, ``content_type`` → ``parsed.json``, ``signal`` (PNO000002 receives)
* ``receipt``: ``exchange.json``, ``our_signal`` → ``receipt.json`` (PNO000001 judges it)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from as4 import AS4LocalPrivateKey, SecurityPolicy, pinned_certificates
from as4.profiles.peppol.document_identifier import BusdoxDocidQnsDocumentIdentifier
from as4.profiles.peppol.message import PeppolAS4MessageBuilderArgs
from as4.profiles.peppol.profile import (
    PeppolAS4Profile,
    PeppolSendingExchange,
    certificate_names_the_sender,
    create_peppol_external_party,
    create_peppol_internal_party,
    parse_peppol_message,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

DOCTYPE = (
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##"
    "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)


def main(command: str, directory: Path) -> None:
    def cert(cn: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((directory / f"{cn}.pem").read_bytes())

    def internal(cn: str):  # type: ignore[no-untyped-def]
        key = serialization.load_pem_private_key((directory / f"{cn}.key").read_bytes(), None)
        return create_peppol_internal_party(cn, cert(cn), AS4LocalPrivateKey(key))

    if command == "build":
        exchange = PeppolSendingExchange(
            profile=PeppolAS4Profile,
            local_party=internal("PNO000001"),
            remote_party=create_peppol_external_party("PNO000002", cert("PNO000002")),
        )
        args = PeppolAS4MessageBuilderArgs(
            sender="0192:991825827",
            recipient="0192:974760673",
            document_type_identifier=BusdoxDocidQnsDocumentIdentifier.from_identifier_value(
                DOCTYPE
            ),
            document_identification_instance_identifier="peer-instance-1",
            process_identifier="urn:fdc:peppol.eu:2017:poacc:billing:01:1.0",
            c1_country_id="NO",
        )
        headers, body = exchange.build((directory / "invoice.xml").read_bytes(), args)
        (directory / "body").write_bytes(body)
        (directory / "content_type").write_text(headers["Content-Type"])
        (directory / "exchange.json").write_text(exchange.model_dump_json())
        (directory / "message_id").write_text(exchange.message_id)
    elif command == "parse":
        policy = SecurityPolicy(
            signer_resolver=certificate_names_the_sender(pinned_certificates(cert("PNO000001")))
        )
        received = parse_peppol_message(
            {"Content-Type": (directory / "content_type").read_text()},
            (directory / "body").read_bytes(),
            internal("PNO000002"),
            security_policy=policy,
        )
        message = received.message
        error = message.parse_error if message is not None else "no message"
        report: dict[str, object] = {"state": str(received.state), "error": str(error or "")}
        if message is not None and error is None:
            report.update(
                sender=message.sender,
                recipient=message.recipient,
                document_type=message.document_type_identifier_value,
                process=message.process_identifier,
                payload=next(iter(message.decrypted_data.values())).decode("utf-8"),
            )
        _, signal = received.build_signal()
        (directory / "signal").write_bytes(signal)
        (directory / "parsed.json").write_text(json.dumps(report))
    elif command == "receipt":
        exchange = PeppolSendingExchange.restore(
            (directory / "exchange.json").read_text(), internal("PNO000001")
        )
        try:
            exchange.receive_signal((directory / "our_signal").read_bytes())
            outcome = {"state": str(exchange.state), "error": ""}
        except Exception as exc:  # the verdict is the output
            outcome = {"state": str(exchange.state), "error": f"{type(exc).__name__}: {exc}"}
        (directory / "receipt.json").write_text(json.dumps(outcome))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
