"""``POST /slack/events``: Events API, slash commands and interactivity at one URL.

Bolt's dispatch is synchronous, so it runs off the event loop (``run_in_threadpool``) through a
small adapter (Starlette request -> ``BoltRequest`` -> ``BoltResponse`` -> Starlette response).
Signature checks stay on: a bad or stale (> 5 min) signature gets 401 and nothing is done.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.webhooks import read_limited_body

log = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET "
    "(see docs/slack.md), then restart triagebot."
)


def slack_app_for(runtime: Any) -> App | None:
    """The runtime's Bolt app, built once (thread-safe); None when Slack is not configured."""
    app = runtime.components.get("slack_app")
    if app is not None or not runtime.settings.slack_enabled:
        return app
    lock = runtime.components.setdefault("slack_lock", threading.Lock())
    with lock:
        app = runtime.components.get("slack_app")
        if app is None:
            from bot.slack.bolt_app import build_bolt_app

            app, bot = build_bolt_app(runtime)
            runtime.components["slack_bot"] = bot
            runtime.components["slack_app"] = app
    return app


def to_bolt_request(body: bytes, query: str, headers: Any) -> BoltRequest:
    return BoltRequest(
        body=body.decode("utf-8", errors="replace"),
        query=query,
        headers={k.lower(): v for k, v in headers.items()},
    )


def to_starlette_response(bolt_response: BoltResponse) -> Response:
    headers = {}
    for name, values in (bolt_response.headers or {}).items():
        if name.lower() in ("content-length", "set-cookie"):
            continue
        headers[name] = values[0] if isinstance(values, list | tuple) and values else str(values)
    return Response(
        content=bolt_response.body or "", status_code=bolt_response.status, headers=headers
    )


def slack_routes(runtime: Any) -> list[Route]:
    """The Slack route; the Bolt app is built now when Slack is configured."""
    if runtime.settings.slack_enabled:
        slack_app_for(runtime)
    limit = runtime.settings.max_body_bytes

    async def events(request: Request) -> Response:
        app = slack_app_for(runtime)
        if app is None:
            return JSONResponse({"ok": False, "error": NOT_CONFIGURED}, status_code=503)
        # Checks Content-Length, then stops reading as soon as the limit is passed.
        body = await read_limited_body(request, limit)
        if body is None:
            return JSONResponse({"ok": False, "error": "body too large"}, status_code=413)
        bolt_request = to_bolt_request(body, request.url.query, request.headers)
        bolt_response = await run_in_threadpool(app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    return [Route("/slack/events", events, methods=["POST"])]
