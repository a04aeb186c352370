"""``/api/statuses`` (search, per message, the pull feed) and ``/api/conversations``."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web

from access_point.api.common import (
    JSON,
    as_json,
    client_of,
    empty_ok,
    json_response,
    page_response,
    service_of,
)
from access_point.api.params import (
    InvalidParameter,
    PageRequest,
    page_request,
    query_bool,
    query_datetime,
    query_enum,
    query_str,
)
from access_point.api.routing import Param, Response, Route
from access_point.api.schemas import page_of, ref
from access_point.messages import ConversationQuery, StatusQuery
from access_point.messages import PageRequest as ServicePage
from access_point.statuses import Direction, MessageStatus, ServiceIdentifier

__all__ = ["ROUTES"]

E = TypeVar("E")


def _service_page(page: PageRequest) -> ServicePage:
    return ServicePage(page.page, page.size)


def _single(values: list[E], name: str) -> E | None:
    if len(values) > 1:
        raise InvalidParameter(name, "takes one value here")
    return values[0] if values else None


def _int_path(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not text.isdigit() or len(text) > 18:
        raise InvalidParameter(name, f"must be a whole number, not {text[:40]!r}")
    return int(text)


# --------------------------------------------------------------------------- statuses


async def find_statuses(request: web.Request) -> web.StreamResponse:
    page = page_request(request)
    query = StatusQuery(
        message_id=query_str(request, "messageId", max_length=64),
        conversation_id=query_str(request, "conversationId", max_length=64),
        status=_single(query_enum(request, "status", MessageStatus), "status"),
        service_identifier=_single(
            query_enum(request, "serviceIdentifier", ServiceIdentifier), "serviceIdentifier"
        ),
        direction=_single(query_enum(request, "direction", Direction), "direction"),
        from_time=query_datetime(request, "fromDateTime"),
        to_time=query_datetime(request, "toDateTime"),
    )
    result = await service_of(request).find_statuses(client_of(request), query, _service_page(page))
    return page_response(result, page)


async def message_statuses(request: web.Request) -> web.StreamResponse:
    page = page_request(request)
    message_id = request.match_info["messageId"]
    if len(message_id) > 64:
        raise InvalidParameter("messageId", "must be 1 to 64 characters")
    result = await service_of(request).message_statuses(
        client_of(request), message_id, _service_page(page)
    )
    return page_response(result, page)


async def peek_status(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).peek_status(client_of(request))
    if view is None:
        return web.Response(status=204)
    return json_response(as_json(view))


async def delete_status(request: web.Request) -> web.StreamResponse:
    await service_of(request).delete_status(client_of(request), _int_path(request, "id"))
    return empty_ok()


# --------------------------------------------------------------------------- conversations


async def find_conversations(request: web.Request, *, finished: bool | None = None) -> web.Response:
    page = page_request(request)
    query = ConversationQuery(
        conversation_id=query_str(request, "conversationId", max_length=64),
        message_id=query_str(request, "messageId", max_length=64),
        sender_identifier=query_str(request, "senderIdentifier", max_length=100),
        receiver_identifier=query_str(request, "receiverIdentifier", max_length=100),
        message_reference=query_str(request, "messageReference"),
        message_title=query_str(request, "messageTitle", max_length=500),
        service_identifier=_single(
            query_enum(request, "serviceIdentifier", ServiceIdentifier), "serviceIdentifier"
        ),
        direction=_single(query_enum(request, "direction", Direction), "direction"),
        finished=query_bool(request, "finished") if finished is None else finished,
    )
    result = await service_of(request).find_conversations(
        client_of(request), query, _service_page(page)
    )
    return page_response(result, page)


async def list_conversations(request: web.Request) -> web.StreamResponse:
    return await find_conversations(request)


async def queued_conversations(request: web.Request) -> web.StreamResponse:
    return await find_conversations(request, finished=False)


async def get_conversation(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).conversation(client_of(request), _int_path(request, "id"))
    return json_response(as_json(view))


async def conversation_by_message_id(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).conversation_by_message_id(
        client_of(request), request.match_info["messageId"]
    )
    return json_response(as_json(view))


# --------------------------------------------------------------------------- route table

_PAGING = (
    Param("page", "query", "page to return, from 0", {"type": "integer", "minimum": 0}),
    Param(
        "size",
        "query",
        "page size (default 10)",
        {"type": "integer", "minimum": 1, "maximum": 1000},
    ),
    Param("sort", "query", "accepted for compatibility; results come in a fixed order"),
)
_STATUS_ENUM = {"type": "string", "enum": [s.value for s in MessageStatus]}
_SERVICE_ENUM = {"type": "string", "enum": [s.value for s in ServiceIdentifier]}
_DIRECTION_ENUM = {"type": "string", "enum": [d.value for d in Direction]}
_TIME = {"type": "string", "format": "date-time"}
_STATUSES = "Statuses"
_CONVERSATIONS = "Conversations"
_STATUS_PAGE = {JSON: page_of("MessageStatus")}
_CONVERSATION = {JSON: ref("Conversation")}
_CONVERSATION_FILTERS = (
    Param("conversationId", "query", "only this conversation id"),
    Param("messageId", "query", "only this message id"),
    Param("senderIdentifier", "query", "only this sender"),
    Param("receiverIdentifier", "query", "only this receiver"),
    Param("messageReference", "query", "only this message reference"),
    Param("messageTitle", "query", "only this title"),
    Param("serviceIdentifier", "query", "only this service", _SERVICE_ENUM),
    Param("direction", "query", "OUTGOING or INCOMING", _DIRECTION_ENUM),
    *_PAGING,
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/statuses",
        find_statuses,
        "findStatuses",
        "Search the statuses of this client's messages",
        _STATUSES,
        params=(
            Param("messageId", "query", "only this message"),
            Param("conversationId", "query", "only this conversation"),
            Param("status", "query", "only this status", _STATUS_ENUM),
            Param("serviceIdentifier", "query", "only this service", _SERVICE_ENUM),
            Param("direction", "query", "OUTGOING or INCOMING", _DIRECTION_ENUM),
            Param("fromDateTime", "query", "recorded at or after (ISO 8601 with zone)", _TIME),
            Param("toDateTime", "query", "recorded at or before (ISO 8601 with zone)", _TIME),
            *_PAGING,
        ),
        responses=(Response(200, "a page of statuses, oldest first", _STATUS_PAGE),),
    ),
    Route(
        "GET",
        "/api/statuses/peek",
        peek_status,
        "peekStatus",
        "The oldest status not yet taken off this client's feed",
        _STATUSES,
        description="Take it off the feed with DELETE /api/statuses/{id}; peek again for the next.",
        responses=(
            Response(200, "the status", {JSON: ref("MessageStatus")}),
            Response(204, "the feed is empty"),
        ),
    ),
    Route(
        "GET",
        "/api/statuses/{messageId}",
        message_statuses,
        "messageStatuses",
        "The statuses of one message, oldest first",
        _STATUSES,
        params=(Param("messageId", "path", "the message id"), *_PAGING),
        responses=(Response(200, "a page of statuses (empty for an unknown id)", _STATUS_PAGE),),
    ),
    Route(
        "DELETE",
        "/api/statuses/{id}",
        delete_status,
        "deleteStatus",
        "Take a status off this client's feed",
        _STATUSES,
        params=(Param("id", "path", "the status id", {"type": "integer", "format": "int64"}),),
        responses=(Response(200, "taken off the feed"),),
    ),
    Route(
        "GET",
        "/api/conversations",
        list_conversations,
        "findConversations",
        "Search conversations (one per message and direction), newest first",
        _CONVERSATIONS,
        params=(
            *_CONVERSATION_FILTERS,
            Param("finished", "query", "only finished (or unfinished) ones", {"type": "boolean"}),
        ),
        responses=(Response(200, "a page of conversations", {JSON: page_of("Conversation")}),),
    ),
    Route(
        "GET",
        "/api/conversations/queue",
        queued_conversations,
        "queuedConversations",
        "Conversations not finished yet",
        _CONVERSATIONS,
        params=_PAGING,
        responses=(Response(200, "a page of conversations", {JSON: page_of("Conversation")}),),
    ),
    Route(
        "GET",
        "/api/conversations/messageId/{messageId}",
        conversation_by_message_id,
        "conversationByMessageId",
        "The conversation of one message",
        _CONVERSATIONS,
        params=(Param("messageId", "path", "the message id"),),
        responses=(Response(200, "the conversation", _CONVERSATION),),
    ),
    Route(
        "GET",
        "/api/conversations/{id}",
        get_conversation,
        "getConversation",
        "One conversation by its numeric id",
        _CONVERSATIONS,
        params=(
            Param("id", "path", "the conversation id", {"type": "integer", "format": "int64"}),
        ),
        responses=(Response(200, "the conversation", _CONVERSATION),),
    ),
)
