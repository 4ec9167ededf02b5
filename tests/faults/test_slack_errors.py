"""Slack Web API errors: 429 and 5xx are retried (429 after Retry-After) and the reply
arrives; when every retry fails, the failure is logged and counted and the person is told."""

from __future__ import annotations

import logging

from bot.metrics import SLACK_CALLS
from tests.conftest import counter_value
from tests.faults.helpers import ask
from tests.slack.helpers import event_body, mention, post


def failed_posts(outcome: str) -> float:
    return counter_value(SLACK_CALLS, method="chat.postMessage", outcome=outcome)


def rejected(fake, ts: str, status: int) -> list:
    return [
        c
        for c in fake.calls
        if c.method == "chat.postMessage" and c.status == status and c.args.get("thread_ts") == ts
    ]


def test_429_is_retried_after_retry_after_and_the_reply_arrives(app) -> None:
    app.fake.rate_limit(2, retry_after=1, method="chat.postMessage")
    payload, reply = ask(app, "CHELP", "users cannot log in, SSO returns 502")
    limited = rejected(app.fake, payload["event"]["ts"], 429)
    assert len(limited) == 2
    assert reply.at - limited[-1].at >= 1.0  # waited for Retry-After
    assert limited[-1].at - limited[0].at >= 1.0


def test_5xx_is_retried_and_the_reply_arrives(app) -> None:
    app.fake.server_error(2, method="chat.postMessage", status=503)
    payload, reply = ask(app, "CHELP", "VPN keeps disconnecting for the sales team")
    assert len(rejected(app.fake, payload["event"]["ts"], 503)) == 2
    assert reply.args["channel"] == "CHELP"


def test_when_all_retries_fail_it_is_logged_counted_and_told(app, caplog) -> None:
    # Retries: 3 on 429; the 4th answer is final. The ephemeral notice is not limited.
    app.fake.rate_limit(4, retry_after=0, method="chat.postMessage")
    before = failed_posts("ratelimited")
    payload = mention("CHELP", "printer on floor 3 shows paper jam forever")
    caplog.set_level(logging.ERROR, logger="bot.slack.service")
    notes_before = len(app.fake.calls_of("chat.postEphemeral"))
    assert post(app.client, event_body(payload)).status_code == 200
    app.fake.wait_for(lambda c: c.method == "chat.postEphemeral", count=notes_before + 1)
    # The mention is top-level and its answer never opened a thread: told in the channel.
    (notice,) = [
        c
        for c in app.fake.calls_of("chat.postEphemeral")[notes_before:]
        if c.args.get("channel") == "CHELP" and "Something went wrong (ref " in c.args["text"]
    ]
    assert not notice.args.get("thread_ts")
    ref = notice.args["text"].split("(ref ")[1][:8]
    assert len(rejected(app.fake, payload["event"]["ts"], 429)) == 4
    assert failed_posts("ratelimited") == before + 1
    assert any(ref in r.getMessage() and "ratelimited" in r.getMessage() for r in caplog.records)
