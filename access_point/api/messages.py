"""``/api/messages/out`` and ``/api/messages/in``: integrasjonspunkt's NextMove message API.

Outgoing: create from an SBD, upload files one by one (streamed straight from the socket to
the encrypted file store), send; or all in one multipart request. An XML SBD larger than
``sbd_stream_threshold`` is streamed to the file store on create too, and read from there
without being held (see :meth:`~access_point.messages.MessageService.create_streamed`); the
multipart request stays within ``max_multipart_size``. Incoming: search, peek (lock),
pop (the ASiC-E, streamed), delete (acknowledge).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, StreamReader, hdrs, web

from access_point.api.common import (
    JSON,
    SETTINGS,
    as_json,
    client_of,
    empty_ok,
    json_response,
    page_response,
    service_of,
)
from access_point.api.disposition import (
    check_filename,
    parse_content_disposition,
    upload_filename,
)
from access_point.api.params import (
    InvalidParameter,
    PageRequest,
    page_request,
    query_enum,
    query_str,
)
from access_point.api.problems import BODY_PREFIX, FIELD_ALIASES
from access_point.api.routing import Body, Param, Response, Route
from access_point.api.schemas import page_of, ref
from access_point.messages import MessageQuery, Upload
from access_point.messages import PageRequest as ServicePage
from access_point.statuses import ServiceIdentifier
from sbdh.errors import InvalidInput, PayloadTooLarge

__all__ = ["ROUTES"]

#: bytes read from the socket at a time while streaming an upload
UPLOAD_CHUNK = 256 * 1024
_SBD_FIELD = "sbd"
_WRAPPED_KEY = b'"standardBusinessDocument"'


def _service_page(page: PageRequest) -> ServicePage:
    return ServicePage(page.page, page.size)


def _message_query(request: web.Request) -> MessageQuery:
    services = query_enum(request, "serviceIdentifier", ServiceIdentifier)
    if len(services) > 1:
        raise InvalidParameter("serviceIdentifier", "takes one value here")
    return MessageQuery(
        message_id=query_str(request, "messageId", max_length=64),
        conversation_id=query_str(request, "conversationId", max_length=64),
        service_identifier=services[0] if services else None,
        process=query_str(request, "process"),
        sender_identifier=query_str(request, "senderIdentifier", max_length=100),
        receiver_identifier=query_str(request, "receiverIdentifier", max_length=100),
    )


def _note_body_form(request: web.Request, body: bytes) -> None:
    """Remember whether the SBD came wrapped, so field paths name the client's own fields."""
    head = body.lstrip()[:200]
    if head.startswith(b"{") and _WRAPPED_KEY in head:
        request[BODY_PREFIX] = "standardBusinessDocument"


def _message_id(request: web.Request) -> str:
    message_id = request.match_info["messageId"]
    if not message_id or len(message_id) > 64:
        raise InvalidParameter("messageId", "must be 1 to 64 characters")
    return message_id


# --------------------------------------------------------------------------- outgoing


_BLANK = b"\xef\xbb\xbf \t\r\n"


async def _read_head(content: StreamReader, size: int, *, known_size: bool) -> bytes:
    """The start of the body: up to ``size`` bytes (fewer only when the body is shorter), or,
    when the body's size is known already, only as far as its first character that is not
    blank (the size and that character decide the path)."""
    head = bytearray()
    while len(head) < size:
        chunk = await content.read(min(UPLOAD_CHUNK, size - len(head)))
        if not chunk:
            break
        head += chunk
        if known_size and head.lstrip(_BLANK):
            break
    return bytes(head)


async def _then(head: bytes, content: StreamReader) -> AsyncIterator[bytes]:
    # in pieces: one piece of many MB would be copied whole on its way to the file store
    view = memoryview(head)
    for at in range(0, len(view), UPLOAD_CHUNK):
        yield bytes(view[at : at + UPLOAD_CHUNK])
    del view
    async for chunk in content.iter_chunked(UPLOAD_CHUNK):
        yield chunk


async def _read_body(request: web.Request) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The SBD of a create: ``(body, None)`` read whole as always (the JSON form, or XML up to
    ``sbd_stream_threshold``); ``(b"", chunks)`` for an XML SBD over the threshold, to be read
    streamed (never whole in memory) up to ``max_sbd_size``."""
    settings = request.app[SETTINGS]
    threshold = settings.sbd_stream_threshold
    length = request.content_length
    if length is not None and length <= threshold:
        return await request.read(), None
    if length is not None and length > max(settings.max_sbd_size, request.client_max_size):
        raise PayloadTooLarge(
            f"the SBD is {length} bytes; the limit is {settings.max_sbd_size}", rule="sbd-size"
        )
    head = await _read_head(request.content, threshold + 1, known_size=length is not None)
    if service_of(request).streams(head, size=length):
        return b"", _then(head, request.content)
    # not for the streamed path (JSON): whole, within the limit of every body read whole
    limit = request.client_max_size
    body = bytearray(head)
    while len(body) <= limit and (chunk := await request.content.read(UPLOAD_CHUNK)):
        body += chunk
    if len(body) > limit:
        raise PayloadTooLarge(
            f"the request body is larger than {limit} bytes (an XML SBD may be larger)",
            rule="body-size",
        )
    return bytes(body), None


async def create_message(request: web.Request) -> web.StreamResponse:
    body, streamed = await _read_body(request)
    if streamed is not None:
        view = await service_of(request).create_streamed(client_of(request), streamed)
        return json_response(view.to_json())
    if not body.strip():
        raise InvalidInput("the request body must be the SBD (JSON)", rule="body")
    _note_body_form(request, body)
    view = await service_of(request).create(client_of(request), body)
    return json_response(view.to_json())


async def upload_file(request: web.Request) -> web.StreamResponse:
    message_id = _message_id(request)
    request[FIELD_ALIASES] = {"mimeType": "Content-Type", "filename": "Content-Disposition"}
    settings = request.app[SETTINGS]
    content_type = request.headers.get("Content-Type", "").strip()
    if not content_type:
        raise InvalidParameter("Content-Type", "the file's media type is required")
    try:
        filename, _ = upload_filename(request.headers.get("Content-Disposition"))
    except InvalidInput as exc:
        raise InvalidParameter(
            "Content-Disposition", exc.message, rule="content-disposition"
        ) from exc
    title = query_str(request, "title", max_length=500)
    length = request.content_length
    if length is not None and length > settings.max_file_size:
        raise PayloadTooLarge(
            f"the file is {length} bytes; the limit is {settings.max_file_size}", rule="file-size"
        )
    chunks: AsyncIterator[bytes] = request.content.iter_chunked(UPLOAD_CHUNK)
    await service_of(request).upload(
        client_of(request), message_id, filename, content_type, title, chunks
    )
    return empty_ok()


async def send_message(request: web.Request) -> web.StreamResponse:
    await service_of(request).send(client_of(request), _message_id(request))
    return empty_ok()


async def _read_part(part: BodyPartReader, budget: list[int], limit: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(UPLOAD_CHUNK):
        budget[0] += len(chunk)
        if budget[0] > limit:
            raise PayloadTooLarge(
                f"the multipart request is larger than {limit} bytes: use create, upload and "
                "send for large messages",
                rule="multipart-size",
            )
        data += chunk
    return bytes(data)


async def create_and_send(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    limit = settings.max_multipart_size
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(
            f"the multipart request is larger than {limit} bytes: use create, upload and send "
            "for large messages",
            rule="multipart-size",
        )
    if not request.content_type.startswith("multipart/"):
        raise InvalidParameter("Content-Type", "must be multipart/form-data")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise InvalidParameter("Content-Type", f"not a readable multipart body: {exc}") from exc
    budget = [0]
    sbd: bytes | None = None
    files: list[Upload] = []
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise InvalidInput("nested multipart bodies are not accepted", rule="multipart")
            data = await _read_part(part, budget, limit)
            # parsed once, with the same strict parser as an upload's header (aiohttp's
            # ``part.name`` and ``part.filename`` parse the header again on every access)
            header = part.headers.get(hdrs.CONTENT_DISPOSITION)
            if header is None:
                raise InvalidInput(
                    "every part needs a Content-Disposition header", rule="multipart"
                )
            disposition = parse_content_disposition(header)
            name, filename = disposition.name, disposition.filename
            if name == _SBD_FIELD and sbd is None:
                sbd = data
                continue
            if not filename:
                raise InvalidParameter(
                    name or "part", "every part but 'sbd' must be a file (with a filename)"
                )
            files.append(
                Upload(
                    filename=check_filename(filename),
                    mime_type=part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream"),
                    chunks=data,
                    title=name if name and name != filename else None,
                )
            )
    except (ValueError, AssertionError) as exc:
        raise InvalidInput(f"the multipart body is malformed: {exc}", rule="multipart") from exc
    if sbd is None:
        raise InvalidParameter(_SBD_FIELD, "the form field 'sbd' (the SBD as JSON) is required")
    request[FIELD_ALIASES] = {"mimeType": "Content-Type"}
    _note_body_form(request, sbd)
    if request.get(BODY_PREFIX):
        request[BODY_PREFIX] = f"sbd.{request[BODY_PREFIX]}"
    else:
        request[BODY_PREFIX] = _SBD_FIELD
    view = await service_of(request).create_and_send(client_of(request), sbd, files)
    return json_response(view.to_json())


async def list_outgoing(request: web.Request) -> web.StreamResponse:
    page = page_request(request)
    result = await service_of(request).list_outgoing(
        client_of(request), _message_query(request), _service_page(page)
    )
    return page_response(result, page)


async def get_outgoing(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).get_outgoing(client_of(request), _message_id(request))
    return json_response(view.to_json())


async def delete_outgoing(request: web.Request) -> web.StreamResponse:
    await service_of(request).delete_outgoing(client_of(request), _message_id(request))
    return empty_ok()


# --------------------------------------------------------------------------- incoming


async def find_incoming(request: web.Request) -> web.StreamResponse:
    page = page_request(request)
    result = await service_of(request).find_incoming(
        client_of(request), _message_query(request), _service_page(page)
    )
    return page_response(result, page)


async def peek_incoming(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).peek(client_of(request), _message_query(request))
    if view is None:
        return web.Response(status=204)
    return json_response(as_json(view))


def _pop_content_type(request: web.Request, offered: str) -> str:
    accept = request.headers.get("Accept", "")
    if "application/octet-stream" in accept and offered not in accept:
        return "application/octet-stream"
    return offered


async def pop_incoming(request: web.Request) -> web.StreamResponse:
    popped = await service_of(request).pop(client_of(request), _message_id(request))
    if popped is None:
        return web.Response(status=204)
    chunks = popped.chunks.__aiter__()
    # the first chunk before the headers: an error opening the package is still a problem
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": _pop_content_type(request, popped.content_type),
            "Content-Disposition": f'attachment; filename="{popped.filename}"',
            "Cache-Control": "no-store",
        },
    )
    await response.prepare(request)
    if first:
        await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def delete_incoming(request: web.Request) -> web.StreamResponse:
    view = await service_of(request).acknowledge(client_of(request), _message_id(request))
    return json_response(view.to_json())


# --------------------------------------------------------------------------- route table

_SBD = {JSON: ref("StandardBusinessDocument")}
_MESSAGE_ID = Param("messageId", "path", "the message id (the SBD's instanceIdentifier)")
_PAGING = (
    Param("page", "query", "page to return, from 0", {"type": "integer", "minimum": 0}),
    Param(
        "size",
        "query",
        "page size (default 10)",
        {"type": "integer", "minimum": 1, "maximum": 1000},
    ),
    Param(
        "sort",
        "query",
        "accepted for compatibility (property[,asc|desc]); results come in id order",
    ),
)
_FILTERS = (
    Param("messageId", "query", "only this message id"),
    Param("conversationId", "query", "only this conversation id"),
    Param("receiverIdentifier", "query", "only this receiver (organisation number)"),
    Param("senderIdentifier", "query", "only this sender (organisation number)"),
    Param(
        "serviceIdentifier",
        "query",
        "only this service",
        {"type": "string", "enum": [s.value for s in ServiceIdentifier]},
    ),
    Param("process", "query", "only this process identifier"),
)

_OUT = "Outgoing messages"
_IN = "Incoming messages"

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/api/messages/out/multipart",
        create_and_send,
        "createAndSendMessage",
        "Create and send a message in one request (up to the multipart size limit)",
        _OUT,
        description=(
            "multipart/form-data: the field `sbd` holds the SBD as JSON; every other part is "
            "a file (its filename names it, its field name is the title)."
        ),
        body=Body(
            {
                "multipart/form-data": {
                    "type": "object",
                    "required": ["sbd"],
                    "properties": {"sbd": ref("StandardBusinessDocument")},
                    "additionalProperties": {"type": "string", "contentMediaType": "*/*"},
                }
            }
        ),
        responses=(Response(200, "the message, sent", _SBD),),
    ),
    Route(
        "POST",
        "/api/messages/out",
        create_message,
        "createMessage",
        "Create an outgoing message from its SBD (idempotent on message id and content)",
        _OUT,
        body=Body(_SBD, "the SBD in NextMove JSON form"),
        responses=(Response(200, "the message as stored (also for an identical repeat)", _SBD),),
    ),
    Route(
        "GET",
        "/api/messages/out",
        list_outgoing,
        "listOutgoingMessages",
        "Outgoing messages not sent yet",
        _OUT,
        params=(*_FILTERS, *_PAGING),
        responses=(Response(200, "a page of SBDs", {JSON: page_of("StandardBusinessDocument")}),),
    ),
    Route(
        "GET",
        "/api/messages/out/{messageId}",
        get_outgoing,
        "getOutgoingMessage",
        "One outgoing message",
        _OUT,
        params=(_MESSAGE_ID,),
        responses=(Response(200, "the SBD", _SBD),),
    ),
    Route(
        "PUT",
        "/api/messages/out/{messageId}",
        upload_file,
        "uploadFile",
        "Upload one file of an unsent message (streamed)",
        _OUT,
        description=(
            "The body is the file's bytes. Content-Disposition names the file "
            "(`attachment; filename=\"a.pdf\"` or `filename*=UTF-8''...`); Content-Type is its "
            "media type. The same file again is a no-op."
        ),
        params=(
            _MESSAGE_ID,
            Param("Content-Disposition", "header", "names the file (RFC 6266)", required=True),
            Param("Content-Type", "header", "the file's media type", required=True),
            Param("title", "query", "the file's title"),
        ),
        body=Body({"application/octet-stream": {"type": "string", "format": "binary"}}),
        responses=(Response(200, "stored"),),
    ),
    Route(
        "POST",
        "/api/messages/out/{messageId}",
        send_message,
        "sendMessage",
        "Send a created message with its files",
        _OUT,
        params=(_MESSAGE_ID,),
        responses=(Response(200, "accepted for sending; follow /api/statuses/{messageId}"),),
    ),
    Route(
        "DELETE",
        "/api/messages/out/{messageId}",
        delete_outgoing,
        "deleteOutgoingMessage",
        "Delete an unsent message and its files",
        _OUT,
        params=(_MESSAGE_ID,),
        responses=(Response(200, "deleted"),),
    ),
    Route(
        "GET",
        "/api/messages/in",
        find_incoming,
        "findIncomingMessages",
        "Incoming messages not acknowledged yet",
        _IN,
        params=(*_FILTERS, *_PAGING),
        responses=(Response(200, "a page of SBDs", {JSON: page_of("StandardBusinessDocument")}),),
    ),
    Route(
        "GET",
        "/api/messages/in/peek",
        peek_incoming,
        "peekIncomingMessage",
        "The next incoming message, locked for this client for the lock timeout",
        _IN,
        params=_FILTERS,
        responses=(
            Response(200, "the SBD of the message now locked", _SBD),
            Response(204, "no message waiting"),
        ),
    ),
    Route(
        "GET",
        "/api/messages/in/pop/{messageId}",
        pop_incoming,
        "popIncomingMessage",
        "The message's document package (ASiC-E), streamed",
        _IN,
        params=(_MESSAGE_ID,),
        responses=(
            Response(
                200,
                "the ASiC-E container",
                {
                    "application/vnd.etsi.asic-e+zip": {"type": "string", "format": "binary"},
                    "application/octet-stream": {"type": "string", "format": "binary"},
                },
                headers={"Content-Disposition": 'attachment; filename="asic.zip"'},
            ),
            Response(204, "the message has no files"),
        ),
    ),
    Route(
        "DELETE",
        "/api/messages/in/{messageId}",
        delete_incoming,
        "deleteIncomingMessage",
        "Acknowledge an incoming message (INNKOMMENDE_LEVERT; the sender sees LEVERT)",
        _IN,
        params=(_MESSAGE_ID,),
        responses=(Response(200, "the acknowledged message's SBD", _SBD),),
    ),
)
