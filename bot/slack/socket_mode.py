"""Socket Mode: the same Bolt app over a WebSocket (no public URL needed)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.slack.http import slack_app_for

log = logging.getLogger(__name__)

# apps.connections.open errors that no retry cures: the app token is wrong.
TOKEN_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "not_allowed_token_type", "missing_scope",
})
RETRY_SECONDS = (1, 2, 5, 10, 30, 60)  # then every 60 s


def start_socket_mode(runtime: Any) -> SocketModeHandler:
    """Connect (non-blocking) with SLACK_APP_TOKEN and return the handler (``.close()`` stops).

    A wrong app token raises (start-up fails and says so). Slack or the network failing at
    start does not: the webhooks and the CLI keep working while Socket Mode is connected in
    the background, retried until Slack answers (once connected, slack_sdk reconnects by
    itself)."""
    settings = runtime.settings
    if not settings.slack_app_token:
        raise RuntimeError(
            "Socket Mode needs SLACK_APP_TOKEN (an xapp- token with connections:write)"
        )
    app = slack_app_for(runtime)
    if app is None:
        raise RuntimeError("Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    handler = SocketModeHandler(app, settings.slack_app_token)
    try:
        handler.connect()
    except Exception as exc:  # noqa: BLE001 - a token error raises, anything else is retried
        _refuse_bad_token(handler, exc)
        log.warning("Socket Mode: cannot connect to Slack yet (%s); retrying in the "
                    "background", _why(exc))
        threading.Thread(target=_connect_later, args=(handler,), daemon=True,
                         name="socket-mode-connect").start()
    return handler


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"apps.connections.open: {exc.response.get('error')}"
    return f"{exc.__class__.__name__}: {exc}"


def _refuse_bad_token(handler: SocketModeHandler, exc: BaseException) -> None:
    if isinstance(exc, SlackApiError) and exc.response.get("error") in TOKEN_ERRORS:
        handler.close()
        raise RuntimeError(
            f"Slack refused SLACK_APP_TOKEN ({exc.response.get('error')}): Socket Mode needs "
            "an app-level xapp- token with connections:write (see docs/slack.md, step 2b)"
        ) from exc


def _connect_later(handler: SocketModeHandler) -> None:
    for delay in itertools.chain(RETRY_SECONDS, itertools.repeat(RETRY_SECONDS[-1])):
        time.sleep(delay)
        if handler.client.closed:
            return
        try:
            handler.connect()
        except Exception as exc:  # noqa: BLE001 - logged, tried again
            try:
                _refuse_bad_token(handler, exc)
            except RuntimeError as refused:
                log.error("Socket Mode: %s", refused)
                return
            log.warning("Socket Mode: still cannot connect to Slack (%s); trying again",
                        _why(exc))
            continue
        log.info("Socket Mode: connected to Slack")
        return
