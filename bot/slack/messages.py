"""Channel messages, @mentions and the "Triage this message" shortcut.

Listeners only filter and hand off; triage and posting run on the worker pool.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from bot.config import ChannelMode
from bot.events import EventKind
from bot.metrics import EVENTS
from bot.slack.ids import CallbackId, Surface
from bot.slack.normalize import (
    has_words,
    is_top_level,
    is_triaged_subtype,
    message_text,
    slack_event,
)
from bot.slack.service import SlackBot, Where
from bot.spool import SpoolRecord, already_applied, mark_applied
from bot.store import repository as repo
from bot.store.db import session_scope

log = logging.getLogger(__name__)

LEADING_MENTIONS = re.compile(r"^(?:\s*@[UW][A-Z0-9]+[:,]?\s*)+")

# Handler names of spooled messages and mentions (see :func:`apply_spooled_message`).
SPOOL_MESSAGE = "message"
SPOOL_MENTION = "mention"

MENTION_USAGE = (
    "Mention me with an alert or a question, e.g. `@triagebot disk full on db-01`, and I reply "
    "in the thread with the likely category, similar past incidents, the runbook and next steps."
)
DM_USAGE = (
    "Send me an alert or a question, e.g. `disk full on db-01`, and I reply in the thread with "
    "the likely category, similar past incidents, the runbook and next steps."
)
# A mention or direct message of only these words asks how to use the bot: answered with
# the usage, not classified (a triage of "help" finds "need help to reset password").
ASKS_FOR_USAGE = {"", "help", "usage", "hi", "hello", "hey", "how", "what"}


def asks_for_usage(text: str) -> bool:
    return text.strip(" \t\n?!.:,").lower() in ASKS_FOR_USAGE


def register(app: App, bot: SlackBot) -> None:
    @app.event("message")
    def on_message(body: dict, event: dict, context: dict) -> None:
        bot.learn_identity(body, context)
        if not _wanted(bot, event):
            EVENTS.labels(source="slack", outcome="ignored").inc()
            return
        where = Where(event.get("channel", ""), "", event.get("ts", ""))
        bot.submit(
            triage_channel_message,
            bot,
            dict(event),
            where=where,
            event_id=context.get("deferred_event_id"),
            spool_as=SPOOL_MESSAGE,
        )

    @app.event("app_mention")
    def on_mention(body: dict, event: dict, context: dict) -> None:
        bot.learn_identity(body, context)
        if bot.is_self(event) or event.get("subtype") == "message_changed":
            return
        # Notes about a failure go to the mention's thread only when it is in one (the
        # answer would open it; Slack hides an ephemeral message in a thread without replies).
        where = Where(event.get("channel", ""), event.get("user", ""), event.get("thread_ts", ""))
        bot.submit(
            triage_mention,
            bot,
            dict(event),
            where=where,
            event_id=context.get("deferred_event_id"),
            spool_as=SPOOL_MENTION,
        )

    @app.shortcut(CallbackId.TRIAGE_MESSAGE_SHORTCUT)
    def on_shortcut(ack: Any, shortcut: dict, respond: Any) -> None:
        # Not spooled: the person is waiting with a ``respond`` that expires; told to retry.
        ack()
        channel = (shortcut.get("channel") or {}).get("id", "")
        user = (shortcut.get("user") or {}).get("id", "")
        message = shortcut.get("message") or {}
        where = Where(channel, user, message.get("thread_ts", ""))
        bot.submit(triage_shortcut, bot, channel, user, dict(message), respond, where=where)


def _wanted(bot: SlackBot, event: dict) -> bool:
    """Cheap checks on Bolt's thread: new top-level messages from people or integrations."""
    if not is_triaged_subtype(event) or not is_top_level(event):
        return False
    if bot.is_self(event):
        return False
    # A message that mentions the bot is answered by the app_mention listener.
    return not bot.mentions_self(event.get("text", ""))


def triage_channel_message(bot: SlackBot, event: dict) -> None:
    channel = event.get("channel", "")
    # A direct message to the bot is always a request; channels follow their mode.
    mode = ChannelMode.ALERTS if event.get("channel_type") == "im" else bot.channel_mode(channel)
    if mode == ChannelMode.OFF:
        EVENTS.labels(source="slack", outcome="channel_off").inc()
        return
    text = message_text(event, strip_user=bot.bot_user_id or None)
    if not text.strip():
        return
    if event.get("channel_type") != "im" and not has_words(text):
        EVENTS.labels(source="slack", outcome="no_words").inc()  # emoji, mentions, "+1"
        return
    if event.get("channel_type") == "im" and asks_for_usage(text):
        ts = event.get("ts", "")
        bot.poster.post(channel, DM_USAGE, None, thread_ts=ts)
        return
    from_integration = event.get("subtype") == "bot_message" or bool(event.get("bot_id"))
    if mode == ChannelMode.HELPDESK:
        kind = EventKind.TICKET
    else:
        kind = EventKind.ALERT if from_integration else EventKind.MESSAGE
    ts = event.get("ts", "")
    author = event.get("user") or event.get("bot_id") or event.get("username") or ""
    normalized = slack_event(text=text, kind=kind, channel=channel, author=author, ts=ts, raw=event)
    bot.answer_in_thread(
        normalized, mode=str(mode), surface=Surface.MESSAGE, thread_ts=ts, message_ts=ts
    )


def triage_mention(bot: SlackBot, event: dict) -> None:
    channel = event.get("channel", "")
    ts = event.get("ts", "")
    thread_ts = event.get("thread_ts") or ts
    user = event.get("user", "")
    text = message_text(event, strip_user=bot.bot_user_id or None)
    text = _strip_leading_mentions(text)
    if asks_for_usage(text):
        bot.poster.post(channel, MENTION_USAGE, None, thread_ts=thread_ts)
        return
    mode = bot.channel_mode(channel)
    kind = EventKind.TICKET if mode == ChannelMode.HELPDESK else EventKind.MESSAGE
    normalized = slack_event(
        text=text, kind=kind, channel=channel, author=user, ts=ts, thread_ts=thread_ts, raw=event
    )
    bot.answer_in_thread(
        normalized,
        mode=str(mode),
        surface=Surface.MENTION,
        thread_ts=thread_ts,
        message_ts=ts,
        user=user,
    )


def triage_shortcut(bot: SlackBot, channel: str, user: str, message: dict, respond: Any) -> None:
    text = message_text(message, strip_user=bot.bot_user_id or None)
    if not text:
        respond(text="That message has no text I can triage.", response_type="ephemeral")
        return
    ts = message.get("ts", "")
    thread_ts = message.get("thread_ts") or ts
    mode = bot.channel_mode(channel)
    kind = EventKind.TICKET if mode == ChannelMode.HELPDESK else EventKind.MESSAGE
    normalized = slack_event(
        text=text,
        kind=kind,
        channel=channel,
        author=message.get("user", ""),
        ts=ts,
        thread_ts=thread_ts,
        raw=message,
    )
    answer_id, result = bot.triage_and_record(
        normalized,
        mode=str(mode),
        surface=Surface.SHORTCUT,
        thread_ts=thread_ts,
        message_ts=ts,
        user=user,
    )
    text_out, blocks = bot.render(result, answer_id, query_line=f"Requested by <@{user}>")
    try:
        bot.poster.post(channel, text_out, blocks, thread_ts=thread_ts)
    except SlackApiError as exc:
        if exc.response.get("error") not in ("not_in_channel", "channel_not_found"):
            raise
        respond(text=text_out, blocks=blocks, response_type="ephemeral", replace_original=False)


def apply_spooled_message(bot: SlackBot, record: SpoolRecord) -> str:
    """Answer a Slack message or mention spooled while the database was down.

    The record's marker (and the Slack event id, when it was not recorded yet) is committed
    *before* the work: "duplicate" when either was seen, so a message is answered at most
    once even if the process dies after posting and before the spool saves its progress. A
    database still down raises before the marker is written (the record stays for the next
    replay); one that fails during the work leaves the message unanswered.
    """
    payload = record.payload
    handler = SPOOLED_HANDLERS.get(str(payload.get("handler")))
    event = payload.get("event")
    if handler is None or not isinstance(event, dict):
        raise ValueError(f"unknown spooled Slack handler {payload.get('handler')!r}")
    event_id = str(payload.get("event_id") or "")
    services = bot.services()
    with session_scope(services.sessions) as session:
        if already_applied(session, record.id):
            return "duplicate"
        mark_applied(session, record)
        if event_id and not repo.mark_slack_event_seen(session=session, event_id=event_id):
            return "duplicate"
    handler(bot, event)
    return "applied"


def _strip_leading_mentions(text: str) -> str:
    """Drop user mentions left at the start (e.g. when our own user id is not known yet)."""
    return LEADING_MENTIONS.sub("", text).strip()


SPOOLED_HANDLERS: dict[str, Callable[[SlackBot, dict], None]] = {
    SPOOL_MESSAGE: triage_channel_message,
    SPOOL_MENTION: triage_mention,
}
