"""Helpers for the SMP tests: identifiers of the Peppol BIS Billing 3.0 network, registrations
in the ELMA server's JSON form, and the admin API over a real socket."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp

ORG = "0192:991825827"
OTHER = "0192:974760673"
INVOICE = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice"
    "##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
CREDIT_NOTE = (
    "busdox-docid-qns::urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2::CreditNote"
    "##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
)
BILLING = "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
AS4 = "peppol-transport-as4-v2_0"
TOKEN = "elma-admin-token"
AP_URL = "https://ap.example.no/as4"


def endpoint(
    certificate_pem: bytes,
    *,
    url: str = AP_URL,
    transport_profile: str = AS4,
    activation: datetime | None = None,
    expiration: datetime | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "transport_profile": transport_profile,
        "url": url,
        "certificate": certificate_pem.decode("ascii"),
        "description": "Budstikke test AP",
        "technical_contact": "mailto:drift@example.no",
    }
    if activation is not None:
        out["service_activation"] = activation.isoformat()
    if expiration is not None:
        out["service_expiration"] = expiration.isoformat()
    return out


def registration(
    certificate_pem: bytes,
    *,
    document_types: Sequence[str] = (INVOICE,),
    process: str = BILLING,
    name: str | None = "Digitaliseringsdirektoratet",
    **endpoint_args: Any,
) -> dict[str, Any]:
    """One endpoint, serving ``process`` for each of ``document_types``."""
    process_entry = {"process": process, "endpoints": [endpoint(certificate_pem, **endpoint_args)]}
    body: dict[str, Any] = {
        "services": [{"document_type": d, "processes": [process_entry]} for d in document_types]
    }
    if name is not None:
        body["name"] = name
    return body


def redirect_registration(
    smp_url: str,
    *,
    document_types: Sequence[str] = (INVOICE,),
    certificate_pem: bytes | None = None,
    certificate_uid: str | None = None,
) -> dict[str, Any]:
    target: dict[str, Any] = {"smp_url": smp_url}
    if certificate_pem is not None:
        target["certificate"] = certificate_pem.decode("ascii")
    if certificate_uid is not None:
        target["certificate_uid"] = certificate_uid
    return {"services": [{"document_type": d, "redirect": target} for d in document_types]}


async def admin(
    session: aiohttp.ClientSession,
    base_url: str,
    method: str,
    participant: str | None = None,
    *,
    body: Any = None,
    token: str | None = TOKEN,
) -> tuple[int, Any, Mapping[str, str]]:
    """One admin API call: (status, JSON body or None, headers)."""
    url = f"{base_url}/admin/participants"
    if participant is not None:
        url += "/" + quote(participant, safe="")
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.request(method, url, json=body, headers=headers) as response:
        data = await response.json(content_type=None) if response.status != 204 else None
        return response.status, data, response.headers
