"""``GET /api/capabilities/{receiverIdentifier}``: what a receiver can be sent, in the
integrasjonspunkt's shape (``{"capabilities": [{"process", "serviceIdentifier",
"documentTypes": [{"type", "standard"}]}]}``).

A receiver hosted on this access point can be sent every organisation-to-organisation process
(arkivmelding in every area and its receipts, avtalt, eInnsyn) and is delivered locally. Any
other organisation: what its SMP publishes (found through the SML, the signature verified), one
entry per process, with the document types that have an endpoint active now over a transport
profile we send with. Nothing registered is an empty list, not an error, as the reference
answers. Beyond the reference, each entry says ``transport`` (``local`` or ``as4``) so a case
system can tell what it is choosing between; unknown members are ignored by NextMove clients.

Also here, beyond the reference: ``GET /api/messages/out/{messageId}/routing``, the routing
decisions of one of the client's outgoing messages (which registry said what, which rule chose
the channel), so a case system or ops can answer "why did this go there?".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from access_point.api.common import JSON, client_of, json_response, service_of
from access_point.api.params import InvalidParameter, query_str
from access_point.api.routing import Param, Response, Route
from access_point.messages import PROCESSES, expected_message_type, party_key
from access_point.routes import NetworkRoutes
from access_point.statuses import ServiceIdentifier
from routing.policy import AS4_TRANSPORT_PROFILES
from sbdh.errors import BusError, InvalidIdentifier, TransientDeliveryError
from sbdh.identifiers import ParticipantId

__all__ = ["CAPABILITIES", "ROUTES", "Capabilities"]

#: processes an organisation hosted here receives (person processes go to mailboxes or print)
_ORGANISATION_PROCESSES = tuple(
    p for p in PROCESSES if ":digitalpost:" not in p and ":innbyggerpost:" not in p
)


@dataclass(frozen=True)
class Capabilities:
    """The service (who is hosted here) and the routes (what other receivers' SMPs say)."""

    service: Any
    routes: NetworkRoutes | None = None

    async def of(self, receiver: str, process: str | None) -> list[dict[str, Any]]:
        try:
            participant = ParticipantId(receiver if ":" in receiver else f"0192:{receiver}")
        except InvalidIdentifier as exc:
            raise InvalidParameter("receiverIdentifier", exc.message) from exc
        hosted = await self.service.hosted_organisations()
        if party_key(participant.value) in hosted:
            entries = [_local(p) for p in _ORGANISATION_PROCESSES]
        elif self.routes is not None:
            entries = await self._published(participant.value)
        else:
            entries = []
        if process:
            entries = [e for e in entries if e["process"] == process]
        return entries

    async def _published(self, participant: str) -> list[dict[str, Any]]:
        assert self.routes is not None
        try:
            found = await self.routes.capabilities(participant)
        except TransientDeliveryError:
            raise
        except BusError:  # not registered, or an answer we do not trust: nothing to offer
            return []
        by_process: dict[str, list[str]] = {}
        for capability in found:
            if not AS4_TRANSPORT_PROFILES & set(capability.transport_profiles):
                continue
            process = capability.process.value if capability.process is not None else ""
            standards = by_process.setdefault(process, [])
            standard = capability.document_type.value
            if standard not in standards:
                standards.append(standard)
        return [
            {
                "process": process,
                "serviceIdentifier": _service_of(process, standards),
                "transport": "as4",
                "documentTypes": [_document_type(s) for s in standards],
            }
            for process, standards in by_process.items()
        ]


def _local(process: str) -> dict[str, Any]:
    standards = sorted(PROCESSES[process])
    return {
        "process": process,
        "serviceIdentifier": _service_of(process, standards),
        "transport": "local",
        "documentTypes": [_document_type(s) for s in standards],
    }


def _document_type(standard: str) -> dict[str, str]:
    if standard.startswith(("urn:no:difi:", "urn:fdc:digdir.no:")):
        kind = expected_message_type(standard)
    else:  # a UBL document type: its root element's name (``…:Invoice-2::Invoice##…``)
        kind = standard.partition("##")[0].rpartition("::")[2]
    return {"type": kind, "standard": standard}


def _service_of(process: str, standards: list[str]) -> str:
    if ":einnsyn" in process:
        return ServiceIdentifier.DPE.value
    if process.startswith("urn:no:difi:") or process.startswith("urn:fdc:digdir.no:"):
        return ServiceIdentifier.DPO.value
    return "PEPPOL"


CAPABILITIES = web.AppKey("capabilities", Capabilities)


async def capabilities(request: web.Request) -> web.StreamResponse:
    receiver = request.match_info["receiverIdentifier"]
    process = query_str(request, "process")
    security_level = query_str(request, "securityLevel")
    if security_level is not None and security_level not in ("3", "4"):
        raise InvalidParameter("securityLevel", "is 3 or 4")
    lookup = request.app.get(CAPABILITIES) or Capabilities(service_of(request))
    entries = await lookup.of(receiver, process)
    return json_response({"capabilities": entries})


async def routing_history(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    decisions = await service.routing_history(client_of(request), request.match_info["messageId"])
    return json_response({"decisions": decisions})


_CAPABILITY: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "process": {"type": "string"},
        "serviceIdentifier": {"type": "string"},
        "transport": {"type": "string", "enum": ["local", "as4"]},
        "documentTypes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": {"type": "string"}, "standard": {"type": "string"}},
            },
        },
    },
}

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/capabilities/{receiverIdentifier}",
        capabilities,
        "capabilities",
        "What a receiver can be sent: processes, services and document types",
        "Capabilities",
        params=(
            Param("receiverIdentifier", "path", "organisation number or participant id"),
            Param("process", "query", "only this process"),
            Param("securityLevel", "query", "3 or 4 (accepted for compatibility)"),
        ),
        responses=(
            Response(
                200,
                "the receiver's capabilities (an empty list when nothing reaches it)",
                {
                    JSON: {
                        "type": "object",
                        "properties": {
                            "capabilities": {"type": "array", "items": dict(_CAPABILITY)}
                        },
                    }
                },
            ),
        ),
    ),
    Route(
        "GET",
        "/api/messages/out/{messageId}/routing",
        routing_history,
        "routingHistory",
        "Why an outgoing message went where it went: its routing decisions, oldest first",
        "Capabilities",
        params=(Param("messageId", "path", "the message id"),),
        responses=(
            Response(
                200,
                "the decisions: channel, rule, reason, the registries' answers (no personal data)",
                {JSON: {"type": "object", "properties": {"decisions": {"type": "array"}}}},
            ),
            Response(404, "no such outgoing message of this client"),
        ),
    ),
)
