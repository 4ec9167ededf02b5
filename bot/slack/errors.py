"""One global Bolt error handler: log with a short reference id, tell the person if known."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from slack_bolt import App

from bot.slack.service import SlackBot, Where
from bot.slack.views import form_reply_ts


def where_from_body(body: Mapping[str, Any]) -> Where:
    """Channel, user and thread of any Slack payload (event, command, action, view)."""
    # Only a thread that exists: Slack does not show an ephemeral message in a thread
    # without replies (a failed answer to a top-level message never opened one).
    event = body.get("event") or {}
    if event:
        return Where(
            str(event.get("channel", "")),
            str(event.get("user", "")),
            str(event.get("thread_ts") or ""),
        )
    if "command" in body:
        return Where(str(body.get("channel_id", "")), str(body.get("user_id", "")), "")
    user = str((body.get("user") or {}).get("id", ""))
    channel = str((body.get("channel") or {}).get("id", ""))
    message = body.get("message") or {}
    container = body.get("container") or {}
    thread_ts = str(message.get("thread_ts") or container.get("thread_ts") or "")
    view = body.get("view") or {}
    if not channel and view.get("private_metadata"):
        try:
            meta = json.loads(view["private_metadata"])
        except (json.JSONDecodeError, TypeError):
            meta = {}
        if isinstance(meta, dict):
            channel = str(meta.get("channel", ""))
            thread_ts = form_reply_ts(meta)
    return Where(channel, user, thread_ts)


def register(app: App, bot: SlackBot) -> None:
    @app.error
    def on_error(error: Exception, body: dict) -> None:
        bot.report_error(error, where_from_body(body or {}))
