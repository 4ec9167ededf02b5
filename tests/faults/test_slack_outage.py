"""Database unreachable: Slack channel messages and @mentions are spooled (no error reply)
and answered in their thread, once, when the database is back; the message shortcut is not
spooled and tells the person to retry."""

from __future__ import annotations

import time
import uuid
from typing import Any

from bot.metrics import EVENTS
from bot.spool import Spool
from tests.conftest import counter_value
from tests.faults.conftest import ALERTS, wait_until
from tests.faults.helpers import sql
from tests.slack.helpers import (
    channel_message,
    event_body,
    interaction_body,
    load_payload,
    mention,
    new_event_id,
    post,
    unique_ts,
)


def slack_events(outcome: str) -> float:
    return counter_value(EVENTS, source="slack", outcome=outcome)


def in_thread(app: Any, method: str, ts: str) -> list[Any]:
    return [c for c in app.fake.calls_of(method) if c.args.get("thread_ts") == ts]


def notes_about(app: Any, channel: str, ts: str, since: int) -> list[Any]:
    """Ephemeral notes posted after the first ``since`` about the message ``ts``: in its
    thread, or in its channel (a top-level message without replies has no thread to show
    them in)."""
    return [
        c
        for c in app.fake.calls_of("chat.postEphemeral")[since:]
        if c.args.get("channel") == channel and c.args.get("thread_ts") in (ts, None, "")
    ]


def answers_for(app: Any, ts: str) -> list[tuple]:
    return sql(app.settings.data_dir, "SELECT surface FROM triage_answers WHERE message_ts = ?", ts)


def test_message_and_mention_during_outage_are_spooled_then_answered_once(app) -> None:
    tag = uuid.uuid4().hex[:6]
    message = channel_message(ALERTS, f"kafka-broker-{tag} disk usage at 97% on /var/lib/kafka")
    asked = mention("CHELP", f"printer-{tag} on floor 2 prints blank pages")
    ts_message, ts_mention = message["event"]["ts"], asked["event"]["ts"]
    spooled_before = slack_events("spooled")
    earlier = {r.id for r in app.spool.records()}
    notes_before = len(app.fake.calls_of("chat.postEphemeral"))
    where = {ts_message: ALERTS, ts_mention: "CHELP"}

    app.switch.off()
    try:
        for payload in (message, asked):
            assert post(app.client, event_body(payload)).status_code == 200
        wait_until(
            lambda: slack_events("spooled") == spooled_before + 2, what="both events spooled"
        )
        # Two worker threads: either may be spooled first.
        spooled = [r for r in app.spool.records() if r.id not in earlier]
        assert {(r.kind, r.payload["handler"], r.payload["event_id"]) for r in spooled} == {
            ("slack", "message", message["event_id"]),
            ("slack", "mention", asked["event_id"]),
        }
        # A replay while the database is still down keeps both records.
        result = app.replayer.run_once()
        assert result.error and not result.applied and not result.dead_lettered
        assert {r.id for r in spooled} <= {r.id for r in app.spool.records()}
        time.sleep(0.3)
        for ts in (ts_message, ts_mention):
            assert not notes_about(app, where[ts], ts, notes_before)  # no error reply
            assert not in_thread(app, "chat.postMessage", ts)
    finally:
        app.switch.on()

    result = app.replayer.run_once()  # what the background replayer does after its backoff
    assert not result.error and not result.dead_lettered
    assert not list(app.spool.records())
    for ts in (ts_message, ts_mention):
        app.fake.wait_for(
            lambda c, ts=ts: c.method == "chat.postMessage" and c.args.get("thread_ts") == ts
        )
    # Slack retries the message now: its event id was recorded at replay, so no second answer.
    assert post(app.client, event_body(message), retry_num=1).status_code == 200
    time.sleep(0.5)
    for ts in (ts_message, ts_mention):
        assert len(in_thread(app, "chat.postMessage", ts)) == 1
        assert not notes_about(app, where[ts], ts, notes_before)
    assert answers_for(app, ts_message) == [("slack_message",)]
    assert answers_for(app, ts_mention) == [("slack_mention",)]


def test_replaying_a_spooled_message_twice_answers_it_once(app, tmp_path) -> None:
    """The answer was posted but the spool's progress was not saved (crash): replaying the
    record again is recognised and skipped; so is a second record of the same Slack event
    (a retry that was spooled too)."""
    spool = Spool(tmp_path / "spool")
    message = channel_message(ALERTS, f"nginx-{uuid.uuid4().hex[:6]} 502 errors spiking")
    ts = message["event"]["ts"]
    event_id = new_event_id()
    payload = {"handler": "message", "event": message["event"], "event_id": event_id}
    spool.append("slack", payload)
    (record,) = list(spool.records())
    assert app.runtime.apply_spooled(record) == "applied"  # ... and then the process died
    spool.append("slack", payload)  # Slack's retry of the same event, spooled as well
    result = spool.replay(app.runtime.apply_spooled)
    assert (result.applied, result.duplicates, result.remaining) == (0, 2, 0)
    time.sleep(0.3)
    assert len(in_thread(app, "chat.postMessage", ts)) == 1
    assert answers_for(app, ts) == [("slack_message",)]
    seen = sql(
        app.settings.data_dir, "SELECT count(*) FROM slack_events_seen WHERE event_id = ?", event_id
    )
    assert seen == [(1,)]
    spool.close()


def test_shortcut_during_outage_is_told_to_retry_not_spooled(app) -> None:
    payload = load_payload("message_shortcut.json", response_url=app.fake.response_url("outage"))
    ts = unique_ts()
    payload["message"]["ts"] = payload["message_ts"] = ts
    before = [r.id for r in app.spool.records()]
    notes_before = len(app.fake.calls_of("chat.postEphemeral"))

    app.switch.off()
    try:
        assert post(app.client, interaction_body(payload)).status_code == 200
        wait_until(lambda: notes_about(app, "CHELP", ts, notes_before), what="the notice")
        (notice,) = notes_about(app, "CHELP", ts, notes_before)
        # The message has no thread: the notice is shown in the channel.
        assert notice.args["user"] == "UALICE" and not notice.args.get("thread_ts")
        assert "cannot reach its database" in notice.args["text"]
        assert "please retry" in notice.args["text"]
        assert [r.id for r in app.spool.records()] == before  # nothing spooled
    finally:
        app.switch.on()
    time.sleep(0.3)
    assert not in_thread(app, "chat.postMessage", ts)
    assert answers_for(app, ts) == []
