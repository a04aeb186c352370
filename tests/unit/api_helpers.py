"""Helpers for the API tests: a wired service on SQLite in a temporary directory, two clients
for two organisations hosted here, and NextMove SBDs to send between them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from access_point.app import Runtime, create_runtime
from access_point.settings import Settings
from adapters.noark import minimal_arkivmelding
from sbdh.identifiers import OrganisationNumber
from sbdh.jsonform import sbd_to_json
from sbdh.model import BusinessMessage, JsonObject, eformidling_sbd
from sbdh.pki import Credential

SENDER = "991825827"
RECEIVER = "974760673"
ARKIVMELDING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding"
ARKIVMELDING_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "organisations": (OrganisationNumber(SENDER), OrganisationNumber(RECEIVER)),
        "inbox_lock_timeout": timedelta(seconds=60),
        "lifetime_sweep": timedelta(seconds=30),
        "webhook_timeout": timedelta(seconds=2),
    }
    values.update(overrides)
    return Settings(**values)


def arkivmelding_sbd(
    *,
    sender: str = SENDER,
    receiver: str = RECEIVER,
    message_id: str | None = None,
    wrapped: bool = False,
) -> dict[str, Any]:
    message_id = message_id or str(uuid.uuid4())
    sbd = eformidling_sbd(
        sender=f"0192:{sender}",
        receiver=f"0192:{receiver}",
        message=BusinessMessage(
            "arkivmelding",
            JsonObject.of({"hoveddokument": "arkivmelding.xml", "sikkerhetsnivaa": 3}),
        ),
        standard=ARKIVMELDING_STANDARD,
        process=ARKIVMELDING_PROCESS,
        conversation_id=str(uuid.uuid4()),
        instance_identifier=message_id,
        created=datetime.now(UTC),
        expected_response=datetime.now(UTC) + timedelta(hours=2),
    )
    value: dict[str, Any] = json.loads(sbd_to_json(sbd))
    return value if wrapped else value["standardBusinessDocument"]


def arkivmelding_xml(title: str = "Vedtak om tilskudd", document: str = "vedtak.pdf") -> bytes:
    """A valid arkivmelding (a saksmappe with a journalpost) whose one document is ``document``."""
    return minimal_arkivmelding(
        message_id=str(uuid.uuid4()), title=title, files=[document], now=datetime.now(UTC)
    )


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Wired:
    runtime: Runtime
    sender_token: str
    receiver_token: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def sender(self) -> dict[str, str]:
        return self.auth(self.sender_token)

    @property
    def receiver(self) -> dict[str, str]:
        return self.auth(self.receiver_token)


async def wired(
    tmp_path: Path, credential: Credential, *, run_workers: bool = False, **overrides: Any
) -> AsyncIterator[Wired]:
    runtime = await create_runtime(
        settings_for(tmp_path, **overrides), run_workers=run_workers, ap_credential=credential
    )
    _, sender_token = await runtime.service.create_client("sender system", [SENDER])
    _, receiver_token = await runtime.service.create_client("receiver system", [RECEIVER])
    yield Wired(runtime, sender_token, receiver_token)
