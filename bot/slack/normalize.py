"""From Slack payloads to plain text and :class:`~bot.events.Event`.

Monitoring integrations (Alertmanager, Grafana, Datadog, PagerDuty ...) post ``bot_message``
events whose text often lives in legacy ``attachments`` or in ``blocks``; all of it is read.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bot.events import Event, EventKind, EventSource
from bot.sanitize import clean_text
from knowledge.repair import repair_text

MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
BARE_LINK = re.compile(r"<(https?://[^>|]+)>")
CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
SPECIAL = re.compile(r"<!(?:subteam\^[A-Z0-9]+\|)?([^>|]+)(?:\|[^>]*)?>")

# Subtypes that are new top-level messages worth triaging; every other subtype
# (message_changed, message_deleted, channel_join, thread_broadcast ...) is ignored.
TRIAGED_SUBTYPES = {None, "", "bot_message", "file_share"}


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list-ish payload value (anything else is ignored, not fatal)."""
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _str(value: Any) -> str:
    """A payload value that should be text: strings (and numbers) as text, anything else ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def plain_text(text: str, *, strip_user: str | None = None) -> str:
    """Slack's escaped mrkdwn as plain text; removes mentions of ``strip_user``.

    Repaired first (mojibake, control characters), as every text is before it is stored: a
    message of terminal escapes alone has no readable text, and gets no triage."""
    if not text:
        return ""
    text = repair_text(text)
    if strip_user:
        text = re.sub(rf"<@{re.escape(strip_user)}(?:\|[^>]*)?>", " ", text)
    text = MENTION.sub(lambda m: f"@{m.group(1)}", text)
    text = LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = BARE_LINK.sub(lambda m: m.group(1), text)
    text = CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    text = SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = html.unescape(text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _block_texts(blocks: Iterable[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for block in _dicts(blocks):
        kind = block.get("type")
        if kind in ("section", "header"):
            text = block.get("text")
            if isinstance(text, Mapping):
                out.append(_str(text.get("text")))
            out.extend(_str(field.get("text")) for field in _dicts(block.get("fields")))
        elif kind == "context":
            out.extend(_str(e.get("text")) for e in _dicts(block.get("elements")))
        elif kind == "rich_text":
            out.append(_rich_text(block.get("elements") or ()))
    return [t for t in out if t]


def _rich_text(elements: Iterable[Mapping[str, Any]], depth: int = 0) -> str:
    parts: list[str] = []
    if depth > 20:
        return ""
    for el in _dicts(elements):
        kind = el.get("type")
        if kind == "text":
            parts.append(_str(el.get("text")))
        elif kind == "link":
            parts.append(_str(el.get("text")) or _str(el.get("url")))
        elif kind == "user":
            parts.append(f"<@{_str(el.get('user_id'))}>")
        elif kind == "emoji":
            parts.append(f":{_str(el.get('name'))}:")
        elif "elements" in el:
            parts.append(_rich_text(el["elements"], depth + 1))
            if kind in ("rich_text_section", "rich_text_preformatted", "rich_text_list"):
                parts.append("\n")
    return "".join(parts)


def _attachment_texts(attachments: Iterable[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for att in _dicts(attachments):
        for key in ("pretext", "title", "text"):
            if _str(att.get(key)):
                out.append(_str(att[key]))
        for field in _dicts(att.get("fields")):
            title, value = _str(field.get("title")), _str(field.get("value"))
            if title or value:
                out.append(f"{title}: {value}".strip(": "))
        if not any(_str(att.get(k)) for k in ("pretext", "title", "text")) and _str(
            att.get("fallback")
        ):
            out.append(_str(att["fallback"]))
        out.extend(_block_texts(att.get("blocks") or ()))
    return out


def message_text(message: Mapping[str, Any], *, strip_user: str | None = None) -> str:
    """All readable text of a message: its text, blocks (when they add something), attachments."""
    texts: list[str] = []
    main = _str(message.get("text"))
    if main:
        texts.append(main)
    for extra in _block_texts(message.get("blocks") or ()):
        # Messages typed by people repeat their text as a rich_text block: skip duplicates.
        if plain_text(extra) and plain_text(extra) not in plain_text(main):
            texts.append(extra)
    texts.extend(_attachment_texts(message.get("attachments") or ()))
    seen: list[str] = []
    for t in texts:
        cleaned = plain_text(t, strip_user=strip_user)
        if cleaned and cleaned not in seen:
            seen.append(cleaned)
    return "\n".join(seen)


def is_top_level(message: Mapping[str, Any]) -> bool:
    thread_ts = message.get("thread_ts")
    return not thread_ts or thread_ts == message.get("ts")


def is_triaged_subtype(message: Mapping[str, Any]) -> bool:
    subtype = message.get("subtype")
    if subtype is not None and not isinstance(subtype, str):
        return False
    return subtype in TRIAGED_SUBTYPES and not message.get("hidden")


def slack_event(
    *,
    text: str,
    kind: EventKind,
    channel: str,
    author: str,
    ts: str,
    thread_ts: str = "",
    raw: Mapping[str, Any] | None = None,
) -> Event:
    """One normalized event for a Slack message or command."""
    text = clean_text(text)
    title = text.splitlines()[0][:200] if text else ""
    return Event(
        source=EventSource.SLACK,
        kind=kind,
        text=text,
        title=title,
        channel=channel,
        author=author,
        thread_ts=thread_ts or ts,
        external_id=f"slack:{channel}:{ts}" if ts else "",
        raw=dict(raw or {}),
    )


_NOT_WORDS = re.compile(r":[a-z0-9_+'-]{1,100}:|@[UWB][A-Z0-9]{2,20}|#C[A-Z0-9]{2,20}")


def has_words(text: str) -> bool:
    """Whether a message says anything once emoji (``:fire:``) and mentions of people or
    channels are left out: "+1 :eyes: @U123" in an alert channel is a reaction, not a report."""
    return re.search(r"[^\W\d_]{2}", _NOT_WORDS.sub(" ", text)) is not None
