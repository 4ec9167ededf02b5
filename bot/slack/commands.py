"""Slash commands: /triage, /similar, /runbook and the admin-only /triagebot-config.

Each acks at once (empty text: the usage help is the ack); the work runs on the worker pool
and answers through ``respond()`` (the command's response_url).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.config import ChannelMode
from bot.events import EventKind
from bot.slack.blocks import escape, render_search_results
from bot.slack.ids import Surface
from bot.slack.normalize import plain_text, slack_event
from bot.slack.service import SlackBot, Where
from bot.slack.visibility import visibility_for_channel

USAGE = {
    "/triage": "Usage: `/triage <alert text or question>`: classifies it and shows similar "
    "incidents, the runbook and next steps in this channel.",
    "/similar": "Usage: `/similar <text>`: lists past incidents and tickets like it (only you "
    "see the answer).",
    "/runbook": "Usage: `/runbook <text>`: finds the best runbook sections (only you see them).",
    "/triagebot-config": "Usage: `/triagebot-config alerts|helpdesk|off` (admins): how I "
    "treat messages in this channel. `alerts`: triage every new message; `helpdesk`: triage "
    "messages as tickets; `off`: only answer mentions and commands. Without an argument: show "
    "the current mode.",
}


def register(app: App, bot: SlackBot) -> None:
    @app.command("/triage")
    def on_triage(ack: Any, command: dict, respond: Any) -> None:
        text = command.get("text", "").strip()
        if not text:
            ack(text=USAGE["/triage"])
            return
        ack()
        bot.submit(slash_triage, bot, dict(command), respond, where=_where(command))

    @app.command("/similar")
    def on_similar(ack: Any, command: dict, respond: Any) -> None:
        text = command.get("text", "").strip()
        if not text:
            ack(text=USAGE["/similar"])
            return
        ack()
        bot.submit(slash_search, bot, dict(command), respond, "incident", where=_where(command))

    @app.command("/runbook")
    def on_runbook(ack: Any, command: dict, respond: Any) -> None:
        text = command.get("text", "").strip()
        if not text:
            ack(text=USAGE["/runbook"])
            return
        ack()
        bot.submit(slash_search, bot, dict(command), respond, "runbook", where=_where(command))

    @app.command("/triagebot-config")
    def on_config(ack: Any, command: dict, respond: Any) -> None:
        user = command.get("user_id", "")
        arg = command.get("text", "").strip().lower()
        if arg and not bot.is_admin(user):
            ack(
                text="Sorry, only triagebot admins can change channel modes "
                "(ask an admin, or see TRIAGEBOT_ADMIN_USERS)."
            )
            return
        if arg and arg not in {m.value for m in ChannelMode}:
            ack(text=f"Unknown mode `{escape(arg)}`. {USAGE['/triagebot-config']}")
            return
        ack()
        bot.submit(slash_config, bot, dict(command), respond, where=_where(command))


def _where(command: dict) -> Where:
    return Where(command.get("channel_id", ""), command.get("user_id", ""), "")


def slash_triage(bot: SlackBot, command: dict, respond: Any) -> None:
    channel = command.get("channel_id", "")
    user = command.get("user_id", "")
    text = plain_text(command.get("text", ""))
    mode = bot.channel_mode(channel)
    kind = EventKind.TICKET if mode == ChannelMode.HELPDESK else EventKind.MESSAGE
    event = slack_event(text=text, kind=kind, channel=channel, author=user, ts="", raw=command)
    answer_id, result = bot.triage_and_record(
        event, mode=str(mode), surface=Surface.SLASH_TRIAGE, user=user
    )
    query = escape(text if len(text) <= 200 else text[:199] + "…")
    out_text, blocks = bot.render(result, answer_id, query_line=f"<@{user}> asked: {query}")
    respond(text=out_text, blocks=blocks, response_type="in_channel")


def slash_search(bot: SlackBot, command: dict, respond: Any, kind: str) -> None:
    text = plain_text(command.get("text", ""))
    services = bot.services()
    channel = command.get("channel_id", "")
    mode = bot.channel_mode(channel)
    # Filtered inside the index (before top-k), so hidden items never shrink the answer.
    visible = visibility_for_channel(channel, str(mode))
    search = services.assistant.search
    if kind == "incident":
        results = [
            hit
            for k in ("incident", "ticket")
            for hit in search(text, kind=k, k=8, visibility=visible)
        ]
        results.sort(key=lambda r: -float(r.get("score", 0.0)))
    else:
        results = search(text, kind="runbook", k=8, visibility=visible)
    title = "Similar incidents and tickets" if kind == "incident" else "Runbook sections"
    out_text, blocks = render_search_results(
        f"{title} for: {text[:150]}", results[:5], empty="Nothing close found."
    )
    respond(text=out_text, blocks=blocks, response_type="ephemeral")


def slash_config(bot: SlackBot, command: dict, respond: Any) -> None:
    channel = command.get("channel_id", "")
    user = command.get("user_id", "")
    arg = command.get("text", "").strip().lower()
    if not arg:
        mode = bot.channel_mode(channel)
        respond(
            text=f"This channel's mode is `{mode}`. {USAGE['/triagebot-config']}",
            response_type="ephemeral",
        )
        return
    mode = ChannelMode(arg)
    bot.set_channel_mode(channel, mode, user)
    respond(
        text=f"<@{user}> set this channel's triagebot mode to `{mode}`.", response_type="in_channel"
    )
