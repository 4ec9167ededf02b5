"""Socket Mode: the same Bolt app over a WebSocket (no public URL needed)."""

from __future__ import annotations

from typing import Any

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.slack.http import slack_app_for


def start_socket_mode(runtime: Any) -> SocketModeHandler:
    """Connect (non-blocking) with SLACK_APP_TOKEN and return the handler (``.close()`` stops)."""
    settings = runtime.settings
    if not settings.slack_app_token:
        raise RuntimeError(
            "Socket Mode needs SLACK_APP_TOKEN (an xapp- token with connections:write)"
        )
    app = slack_app_for(runtime)
    if app is None:
        raise RuntimeError("Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    handler = SocketModeHandler(app, settings.slack_app_token)
    handler.connect()
    return handler
