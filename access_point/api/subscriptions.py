"""``/api/subscriptions``: webhook subscriptions, per client (integrasjonspunkt's shape)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from access_point.api.common import JSON, WEBHOOKS, client_of, empty_ok, json_response
from access_point.api.params import InvalidParameter, page_body, page_request
from access_point.api.routing import Body, Param, Response, Route
from access_point.api.schemas import page_of, ref
from sbdh.errors import InvalidInput

__all__ = ["ROUTES"]

MAX_BODY = 16 * 1024


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise InvalidInput(f"the subscription is larger than {MAX_BODY} bytes", rule="body")
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}", rule="json") from exc
    if not isinstance(value, dict):
        raise InvalidInput("the body must be a JSON object", rule="json")
    return value


def _id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 18:
        raise InvalidParameter("id", f"must be a whole number, not {text[:40]!r}")
    return int(text)


async def list_subscriptions(request: web.Request) -> web.StreamResponse:
    page = page_request(request)
    items, total = await request.app[WEBHOOKS].page(
        client_of(request).id, offset=page.offset, limit=page.size
    )
    return json_response(page_body([s.to_json() for s in items], total, page))


async def get_subscription(request: web.Request) -> web.StreamResponse:
    subscription = await request.app[WEBHOOKS].get(client_of(request).id, _id(request))
    return json_response(subscription.to_json())


async def create_subscription(request: web.Request) -> web.StreamResponse:
    data = await _json_object(request)
    subscription, secret = await request.app[WEBHOOKS].create(client_of(request).id, data)
    body = subscription.to_json()
    body["secret"] = secret
    return json_response(body, headers={"Cache-Control": "no-store"})


async def update_subscription(request: web.Request) -> web.StreamResponse:
    data = await _json_object(request)
    await request.app[WEBHOOKS].update(client_of(request).id, _id(request), data)
    return empty_ok()


async def delete_subscription(request: web.Request) -> web.StreamResponse:
    await request.app[WEBHOOKS].delete(client_of(request).id, _id(request))
    return empty_ok()


async def delete_all_subscriptions(request: web.Request) -> web.StreamResponse:
    await request.app[WEBHOOKS].delete_all(client_of(request).id)
    return empty_ok()


_TAG = "Webhook subscriptions"
_ID = Param("id", "path", "the subscription id", {"type": "integer", "format": "int64"})
_PAGING = (
    Param("page", "query", "page to return, from 0", {"type": "integer", "minimum": 0}),
    Param(
        "size",
        "query",
        "page size (default 10)",
        {"type": "integer", "minimum": 1, "maximum": 1000},
    ),
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/subscriptions",
        list_subscriptions,
        "listSubscriptions",
        "This client's subscriptions",
        _TAG,
        params=_PAGING,
        responses=(Response(200, "a page of subscriptions", {JSON: page_of("Subscription")}),),
    ),
    Route(
        "POST",
        "/api/subscriptions",
        create_subscription,
        "createSubscription",
        "Subscribe a push endpoint to status events",
        _TAG,
        description=(
            "The endpoint is pinged (a signed `ping` event) and must answer 2xx. The answer "
            "carries `secret`, the HMAC key of the X-Budstikke-Signature header: it is shown "
            "only here."
        ),
        body=Body({JSON: ref("Subscription")}),
        responses=(
            Response(
                200, "the subscription, with its signing secret", {JSON: ref("SubscriptionCreated")}
            ),
        ),
    ),
    Route(
        "DELETE",
        "/api/subscriptions",
        delete_all_subscriptions,
        "deleteAllSubscriptions",
        "Delete all of this client's subscriptions",
        _TAG,
        responses=(Response(200, "deleted"),),
    ),
    Route(
        "GET",
        "/api/subscriptions/{id}",
        get_subscription,
        "getSubscription",
        "One subscription",
        _TAG,
        params=(_ID,),
        responses=(Response(200, "the subscription", {JSON: ref("Subscription")}),),
    ),
    Route(
        "PUT",
        "/api/subscriptions/{id}",
        update_subscription,
        "updateSubscription",
        "Change a subscription (the members given replace the stored ones)",
        _TAG,
        params=(_ID,),
        body=Body(
            {
                JSON: {
                    "type": "object",
                    "description": "the Subscription members to change; the others stay",
                    "properties": {
                        k: {"$ref": f"#/components/schemas/Subscription/properties/{k}"}
                        for k in ("name", "pushEndpoint", "resource", "event", "filter")
                    },
                }
            }
        ),
        responses=(Response(200, "updated"),),
    ),
    Route(
        "DELETE",
        "/api/subscriptions/{id}",
        delete_subscription,
        "deleteSubscription",
        "Delete a subscription",
        _TAG,
        params=(_ID,),
        responses=(Response(200, "deleted"),),
    ),
)
