"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of what the API takes and answers.

The shapes are integrasjonspunkt's (NextMove SBD, Spring ``Page``, MessageStatus,
Conversation, Subscription, the webhook event) plus RFC 7807 problem details.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS", "page_of", "ref"]


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(name: str) -> dict[str, Any]:
    return {
        "allOf": [
            ref("Page"),
            {"type": "object", "properties": {"content": {"type": "array", "items": ref(name)}}},
        ]
    }


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer", "format": "int64"}
_BOOL = {"type": "boolean"}
_STATUS = {
    "type": "string",
    "enum": [
        "OPPRETTET",
        "SENDT",
        "MOTTATT",
        "LEVERT",
        "LEST",
        "FEIL",
        "ANNET",
        "LEVETID_UTLOPT",
        "INNKOMMENDE_MOTTATT",
        "INNKOMMENDE_LEVERT",
    ],
}
_DIRECTION = {"type": "string", "enum": ["OUTGOING", "INCOMING"]}
_SERVICE = {
    "type": "string",
    "enum": ["DPO", "DPV", "DPI", "DPF", "DPFIO", "DPE", "DPH", "UNKNOWN"],
}
_SORT = {
    "type": "object",
    "properties": {"sorted": _BOOL, "unsorted": _BOOL, "empty": _BOOL},
}

_PARTNER = {
    "type": "object",
    "required": ["identifier"],
    "properties": {
        "identifier": {
            "type": "object",
            "required": ["value"],
            "properties": {
                "authority": {"type": "string", "examples": ["iso6523-actorid-upis"]},
                "value": {"type": "string", "examples": ["0192:991825827"]},
            },
        },
        "contactInformation": {"type": "array", "items": {"type": "object"}},
    },
}

_HEADER = {
    "type": "object",
    "required": ["headerVersion", "sender", "receiver", "documentIdentification"],
    "properties": {
        "headerVersion": {"type": "string", "examples": ["1.0"]},
        "sender": {"type": "array", "items": _PARTNER},
        "receiver": {"type": "array", "items": _PARTNER},
        "documentIdentification": {
            "type": "object",
            "required": ["standard", "typeVersion", "instanceIdentifier", "type"],
            "properties": {
                "standard": _STR,
                "typeVersion": _STR,
                "instanceIdentifier": {
                    "type": "string",
                    "description": "the messageId (a UUID)",
                },
                "type": {"type": "string", "examples": ["arkivmelding", "digital"]},
                "multipleType": _STR,
                "creationDateAndTime": _TIME,
            },
        },
        "manifest": {"type": "object"},
        "businessScope": {
            "type": "object",
            "properties": {
                "scope": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "examples": ["ConversationId"]},
                            "instanceIdentifier": _STR,
                            "identifier": {
                                "type": "string",
                                "description": "the process identifier",
                            },
                            "scopeInformation": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                }
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "StandardBusinessDocument": {
        "type": "object",
        "description": (
            "The NextMove JSON form of an SBD: the header and one business message (for "
            "example `arkivmelding` or `digital`) beside it. The form wrapped in "
            "`standardBusinessDocument` is accepted too."
        ),
        "required": ["standardBusinessDocumentHeader"],
        "properties": {"standardBusinessDocumentHeader": _HEADER},
        "additionalProperties": {"type": "object"},
    },
    "Page": {
        "type": "object",
        "description": "Spring Data's page, as integrasjonspunkt answers searches",
        "required": ["content", "totalElements", "totalPages", "size", "number"],
        "properties": {
            "content": {"type": "array", "items": {}},
            "pageable": {
                "type": "object",
                "properties": {
                    "sort": _SORT,
                    "offset": _INT,
                    "pageNumber": _INT,
                    "pageSize": _INT,
                    "paged": _BOOL,
                    "unpaged": _BOOL,
                },
            },
            "last": _BOOL,
            "totalElements": _INT,
            "totalPages": _INT,
            "size": _INT,
            "number": _INT,
            "sort": _SORT,
            "first": _BOOL,
            "numberOfElements": _INT,
            "empty": _BOOL,
        },
    },
    "MessageStatus": {
        "type": "object",
        "required": ["id", "status", "lastUpdate"],
        "properties": {
            "id": _INT,
            "convId": _INT,
            "lastUpdate": _TIME,
            "status": _STATUS,
            "description": _NSTR,
            "rawReceipt": _NSTR,
            "messageId": _STR,
            "conversationId": _STR,
        },
    },
    "Conversation": {
        "type": "object",
        "required": ["id", "messageId", "conversationId"],
        "properties": {
            "id": _INT,
            "conversationId": _STR,
            "messageId": _STR,
            "sender": _STR,
            "senderIdentifier": _STR,
            "receiver": _STR,
            "receiverIdentifier": _STR,
            "processIdentifier": _STR,
            "documentIdentifier": _STR,
            "messageReference": _NSTR,
            "messageTitle": _NSTR,
            "lastUpdate": _TIME,
            "finished": _BOOL,
            "expiry": _NTIME,
            "direction": _DIRECTION,
            "serviceIdentifier": _SERVICE,
            "messageStatuses": {"type": "array", "items": ref("MessageStatus")},
        },
    },
    "Subscription": {
        "type": "object",
        "required": ["name", "pushEndpoint", "resource", "event"],
        "properties": {
            "id": {**_INT, "readOnly": True},
            "name": {"type": "string", "maxLength": 200},
            "pushEndpoint": {"type": "string", "format": "uri", "maxLength": 2000},
            "resource": {"type": "string", "enum": ["all", "messages"]},
            "event": {"type": "string", "enum": ["all", "status"]},
            "filter": {
                "type": ["string", "null"],
                "examples": ["status=FEIL,LEVETID_UTLOPT&direction=OUTGOING&serviceIdentifier=DPO"],
            },
        },
    },
    "SubscriptionCreated": {
        "allOf": [
            ref("Subscription"),
            {
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "string",
                        "description": (
                            "the HMAC key for X-Budstikke-Signature; shown only in this answer"
                        ),
                    }
                },
            },
        ]
    },
    "WebhookEvent": {
        "type": "object",
        "description": "what is POSTed to a pushEndpoint (signed; see docs/api.md)",
        "properties": {
            "createdTs": _TIME,
            "resource": {"type": "string", "enum": ["messages"]},
            "event": {"type": "string", "enum": ["status", "ping"]},
            "messageId": _STR,
            "conversationId": _STR,
            "direction": _DIRECTION,
            "serviceIdentifier": _SERVICE,
            "status": _STATUS,
            "description": _NSTR,
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 7807 problem details",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": _STR,
            "status": {"type": "integer"},
            "detail": _STR,
            "instance": _STR,
            "code": {"type": "string", "description": "short machine-readable error name"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "field": {
                            "type": ["string", "null"],
                            "description": (
                                "JSON Pointer into the request body, or the name of the "
                                "parameter or header that is wrong"
                            ),
                        },
                        "rule": _NSTR,
                        "message": _STR,
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["UP", "DOWN"]},
            "checks": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"status": _STR, "error": _STR},
                },
            },
        },
    },
}
