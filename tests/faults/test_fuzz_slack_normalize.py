"""Slack payload normalization (bot/slack/normalize.py) under arbitrary JSON-ish event dicts:
an Event, None (not a message to triage), or a clear ValueError; never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.events import Event, EventKind
from bot.slack.normalize import (
    is_top_level,
    is_triaged_subtype,
    message_text,
    plain_text,
    slack_event,
)
from tests.strategies import json_values

BLOCK = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["section", "header", "context", "rich_text", "divider"])
        | json_values,
        "text": st.fixed_dictionaries({}, optional={"text": json_values}) | json_values,
        "fields": st.lists(st.fixed_dictionaries({}, optional={"text": json_values}) | json_values),
        "elements": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.sampled_from(
                        ["text", "link", "user", "emoji", "rich_text_section", "rich_text_list"]
                    )
                    | json_values,
                    "text": json_values,
                    "url": json_values,
                    "user_id": json_values,
                    "name": json_values,
                    "elements": json_values,
                },
            )
            | json_values,
            max_size=4,
        )
        | json_values,
    },
)
ATTACHMENT = st.fixed_dictionaries(
    {},
    optional={
        "pretext": json_values,
        "title": json_values,
        "text": json_values,
        "fallback": json_values,
        "fields": st.lists(
            st.fixed_dictionaries({}, optional={"title": json_values, "value": json_values})
            | json_values,
            max_size=3,
        )
        | json_values,
        "blocks": st.lists(BLOCK, max_size=3) | json_values,
    },
)
SLACK_TEXT = st.text(max_size=60) | st.sampled_from(
    ["<@U123|bob> hi", "<https://x.io|x>", "<#C1|ops>", "<!here>", "&lt;&amp;&gt;", "<@", ">"]
)
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "app_mention"]) | json_values,
        "subtype": st.sampled_from([None, "", "bot_message", "message_changed"]) | json_values,
        "text": SLACK_TEXT | json_values,
        "user": json_values,
        "bot_id": json_values,
        "channel": st.text(max_size=12) | json_values,
        "ts": st.sampled_from(["1715000000.000100", ""]) | json_values,
        "thread_ts": st.sampled_from(["1715000000.000100", "1.2"]) | json_values,
        "hidden": json_values,
        "blocks": st.lists(BLOCK, max_size=3) | json_values,
        "attachments": st.lists(ATTACHMENT, max_size=3) | json_values,
    },
)


def normalize(event: Any) -> Event | None:
    """What the message listeners do with an event dict (bot/slack/messages.py)."""
    if not is_triaged_subtype(event) or not is_top_level(event):
        return None
    text = message_text(event, strip_user="UBOT")
    if not text:
        return None
    return slack_event(
        text=text,
        kind=EventKind.MESSAGE,
        channel=str(event.get("channel") or ""),
        author=str(event.get("user") or ""),
        ts=str(event.get("ts") or ""),
        raw=event,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENT)
@example({"text": "\x1b"})  # found by this test: only a terminal escape, nothing readable
def test_any_event_dict_normalizes_or_fails_clearly(event: dict[str, Any]) -> None:
    try:
        result = normalize(event)
    except ValueError as err:
        assert str(err)
        return
    assert result is None or (isinstance(result, Event) and result.text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_any_dict_at_all_never_crashes(event: dict[str, Any]) -> None:
    try:
        result = normalize(event)
    except ValueError as err:
        assert str(err)
        return
    assert result is None or isinstance(result, Event)


@given(st.text(max_size=200), st.none() | st.text(max_size=10))
def test_plain_text_takes_any_string(text: str, strip_user: str | None) -> None:
    assert isinstance(plain_text(text, strip_user=strip_user), str)
