"""Monitoring and ticket webhooks: authenticate, limit, parse, store, answer 202 quickly.

Routes: ``POST /webhooks/alertmanager``, ``/webhooks/grafana``, ``/webhooks/generic``.
Each source authenticates with its own bearer token (``Authorization: Bearer ...``) or an
HMAC-SHA256 of the body (``X-Triagebot-Signature: sha256=<hex>``) from the settings. A source
with no credentials configured is refused: webhooks are never open by accident.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.events import Event
from bot.intake.alertmanager import parse_alertmanager
from bot.intake.errors import PayloadError
from bot.intake.generic import parse_generic
from bot.intake.grafana import parse_grafana
from bot.metrics import EVENTS
from bot.sanitize import clean_event

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-triagebot-signature"
ACCEPT_TIMEOUT_SECONDS = 30.0  # longest wait for a call's events to be stored or spooled
# Bodies up to this size are decoded and redacted on the event loop (a few ms at most);
# larger ones in a worker thread, so that a big batch never holds up other requests.
INLINE_DECODE_BYTES = 8192
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\s\";]+)", re.IGNORECASE)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def check_credentials(settings: Settings, source: str, headers: Any, body: bytes) -> str | None:
    """None when the request is authenticated, else the reason it is not."""
    token = settings.webhook_tokens.get(source)
    secret = settings.webhook_hmac_secrets.get(source)
    if not token and not secret:
        return f"no credentials configured for {source}; set TRIAGEBOT_WEBHOOK_TOKENS"
    if token:
        given = headers.get("authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip(), token):
            return None
    if secret:
        given = headers.get(SIGNATURE_HEADER, "")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if given and hmac.compare_digest(given, expected):
            return None
    return "missing or invalid credentials"


async def read_limited_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds ``limit`` bytes (checked while reading)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


Parsed = tuple[list[Event], int]  # events, and alerts past the per-call cap (not parsed)


def _parser(source: str, settings: Settings) -> Callable[[Any], Parsed]:
    limits = {"max_alerts": settings.max_alerts_per_call, "max_text_chars": settings.max_text_chars}

    def batch(parse: Callable[..., Any]) -> Callable[[Any], Parsed]:
        def run(data: Any) -> Parsed:
            parsed = parse(data, **limits)
            return parsed.events, parsed.dropped_alerts

        return run

    if source == "alertmanager":
        return batch(parse_alertmanager)
    if source == "grafana":
        return batch(parse_grafana)
    # More records than the cap raise PayloadError (a 422), nothing is dropped silently.
    return lambda data: (parse_generic(data, max_records=settings.max_alerts_per_call,
                                       max_text_chars=settings.max_text_chars), 0)


class BodyError(ValueError):
    """The body is not UTF-8 JSON that can be decoded; the message names the problem."""


def to_utf8(body: bytes, content_type: str) -> bytes:
    """``body`` in UTF-8: a body in another charset that its Content-Type declares
    (``application/json; charset=ISO-8859-1``, older ticket tools) is recoded; a body
    without a declared charset is taken as UTF-8 (JSON's own)."""
    found = _CHARSET.search(content_type)
    if not found:
        return body
    name = found.group(1)
    try:
        if codecs.lookup(name).name == "utf-8":
            return body
        return body.decode(name).encode("utf-8")
    except LookupError as exc:  # unknown, or not a text encoding ("base64")
        raise BodyError(f"unknown charset {name[:40]!r} in Content-Type") from exc
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not {name[:40]} as its Content-Type says") from exc


def decode_events(body: bytes, parse: Callable[[Any], Parsed]) -> Parsed:
    """Decode, parse and redact one webhook body (CPU-bound: run it off the event loop).

    Raises :class:`BodyError` for a body that is not decodable JSON and
    :class:`PayloadError` for JSON that is not a valid payload.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BodyError("body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BodyError(f"body is not JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:
        raise BodyError("body is not acceptable JSON: nested too deeply") from exc
    events, dropped = parse(data)
    return [clean_event(e) for e in events], dropped


def decode_and_submit(
    body: bytes, parse: Callable[[Any], Parsed], runtime: Any
) -> tuple[int, Future[list[int]] | None]:
    """Decode the body (:func:`decode_events`) and hand its events to the alert pipeline's
    writer thread. Returns the alerts past the per-call cap and the future of the stored
    row ids; None while the server is starting up (nothing is stored).

    Called on the event loop for a small body, in a worker thread for a larger one or
    before the pipeline exists. A request used to make three trips to worker threads
    (decode, look the pipeline up, wait for the store); under a storm their thread
    wake-ups and GIL hand-offs cost more CPU than the decoding itself."""
    events, dropped = decode_events(body, parse)
    if not runtime.ready.is_set():
        return dropped, None
    # The one shared pipeline (created once under the runtime's lock), or the one created.
    pipeline = runtime.components.get("alert_pipeline") or runtime.alert_pipeline()
    return dropped, pipeline.submit(events)


def webhook_routes(runtime: Any) -> list[Route]:
    settings: Settings = runtime.settings
    # Built once: the per-request path only looks the parser up.
    parsers = {name: _parser(name, settings) for name in ("alertmanager", "grafana", "generic")}

    async def receive(request: Request) -> Response:
        source = request.path_params["source"]
        if source not in parsers:
            return _error(404, f"unknown webhook source {source!r}")
        body = await read_limited_body(request, settings.max_body_bytes)
        if body is None:
            EVENTS.labels(source=source, outcome="too_large").inc()
            return _error(413, f"body larger than {settings.max_body_bytes} bytes")
        problem = check_credentials(settings, source, request.headers, body)
        if problem:
            EVENTS.labels(source=source, outcome="unauthorized").inc()
            return _error(401, problem)
        try:
            body = to_utf8(body, request.headers.get("content-type", ""))
            if len(body) <= INLINE_DECODE_BYTES and "alert_pipeline" in runtime.components:
                # A small body (one notification of a few alerts) is decoded on the loop: it
                # takes well under a millisecond, less than the trip to a worker thread.
                dropped, pending = decode_and_submit(body, parsers[source], runtime)
            else:
                dropped, pending = await run_in_threadpool(
                    decode_and_submit, body, parsers[source], runtime
                )
        except BodyError as exc:
            EVENTS.labels(source=source, outcome="rejected").inc()
            return _error(400, str(exc))
        except PayloadError as exc:
            EVENTS.labels(source=source, outcome="rejected").inc()
            return _error(422, str(exc))
        if pending is None:
            return _error(503, "starting up, retry shortly")
        try:
            # Awaited on the loop, shielded: a timeout leaves the store to finish (as
            # accept() did), it only stops waiting for it.
            stored = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(pending)), ACCEPT_TIMEOUT_SECONDS
            )
        except Exception:
            log.exception("cannot store webhook events")
            EVENTS.labels(source=source, outcome="store_failed").inc()
            return _error(503, "cannot store events now, retry later")
        EVENTS.labels(source=source, outcome="accepted").inc(len(stored))
        answer: dict[str, Any] = {"ok": True, "accepted": len(stored)}
        if dropped:  # an alert storm past the per-call cap: say so, do not fail the rest
            log.warning("%s webhook: %d alerts past the per-call cap were dropped", source, dropped)
            EVENTS.labels(source=source, outcome="dropped").inc(dropped)
            answer["dropped"] = dropped
        return JSONResponse(answer, status_code=202)

    return [Route("/webhooks/{source}", receive, methods=["POST"])]
