"""The Slack app end to end: signed requests through Starlette and Bolt, real triage on the
embedded samples, and assertions on the calls the fake Web API received."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from slack_sdk.models.blocks import Block

from bot.metrics import EVENTS
from bot.slack.ids import ActionId
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import Feedback, LabeledExample, TriageAnswer
from tests.conftest import counter_value
from tests.slack.conftest import ADMIN
from tests.slack.helpers import (
    action_values,
    channel_message,
    command_body,
    event_body,
    interaction_body,
    load_payload,
    mention,
    new_event_id,
    post,
    unique_ts,
)


def replies_in(fake, thread_ts: str, *, count: int = 1, timeout: float = 30.0):
    return fake.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("thread_ts") == thread_ts,
        count=count,
        timeout=timeout,
    )


def answers_for(harness, **where) -> list[TriageAnswer]:
    with session_scope(harness.services.sessions) as session:
        rows = session.query(TriageAnswer).filter_by(**where).all()
        session.expunge_all()
        return rows


def assert_valid_blocks(blocks: list[dict]) -> None:
    """slack_sdk's own Block Kit models check the documented length limits."""
    assert 0 < len(blocks) <= 50
    for raw in blocks:
        Block.parse(raw).validate_json()


def retry_ignored_count() -> float:
    return counter_value(EVENTS, source="slack", outcome="retry_ignored")


def ask(harness, channel: str, text: str, **kw):
    """Mention the bot and wait for its threaded answer; returns (payload, reply call)."""
    payload = mention(channel, text, **kw)
    response = post(harness.client, event_body(payload))
    assert response.status_code == 200
    reply = replies_in(harness.fake, payload["event"]["ts"])[0]
    return payload, reply


# --- events -------------------------------------------------------------------------------


def test_url_verification_challenge(harness):
    body = {"token": "x", "challenge": "abc123", "type": "url_verification"}
    response = post(harness.client, event_body(body))
    assert response.status_code == 200
    assert "abc123" in response.text


def test_mention_gets_threaded_answer_with_blocks_and_text(harness):
    payload, reply = ask(harness, "COPS", "disk full on db-01, /var/lib/postgresql at 100%")
    ts = payload["event"]["ts"]
    assert reply.args["channel"] == "COPS"
    assert reply.args["text"].startswith("Triage:")
    blocks = reply.args["blocks"]
    assert_valid_blocks(blocks)
    values = action_values(reply)
    for action in (ActionId.HELPFUL, ActionId.NOT_HELPFUL, ActionId.RECORD_ROOT_CAUSE):
        assert action in values
    (answer,) = answers_for(harness, message_ts=ts)
    assert answer.surface == "slack_mention"
    assert answer.channel == "COPS" and answer.thread_ts == ts
    assert values[ActionId.HELPFUL] == str(answer.id)
    assert "<@UBOT>" not in answer.query and "disk full on db-01" in answer.query


def test_mention_inside_a_thread_answers_in_that_thread(harness):
    parent = unique_ts()
    payload = mention("COPS", "redis latency spikes on cache-02")
    payload["event"]["thread_ts"] = parent
    assert post(harness.client, event_body(payload)).status_code == 200
    (reply,) = replies_in(harness.fake, parent)
    assert reply.args["channel"] == "COPS"


@pytest.mark.parametrize("text", ["help", "Help?", "  ", "hi"])
def test_mention_asking_for_help_gets_the_usage_not_a_triage(harness, fake_slack, text):
    """"@triagebot help" is the first thing a new user types: it is not an incident to
    classify (it drew similar tickets such as "need help to reset password")."""
    payload = mention("COPS", text)
    assert post(harness.client, event_body(payload)).status_code == 200
    (reply,) = replies_in(fake_slack, payload["event"]["ts"])
    assert reply.args["text"].startswith("Mention me with an alert or a question")
    assert answers_for(harness, message_ts=payload["event"]["ts"]) == []


def test_direct_message_asking_for_help_gets_the_usage(harness, fake_slack):
    payload = channel_message("D0HELP", "help")
    payload["event"]["channel_type"] = "im"
    assert post(harness.client, event_body(payload)).status_code == 200
    (reply,) = replies_in(fake_slack, payload["event"]["ts"])
    assert reply.args["text"].startswith("Send me an alert or a question")
    assert answers_for(harness, message_ts=payload["event"]["ts"]) == []


def test_retried_event_is_answered_once_even_after_restart(harness, slack_services, fake_slack):
    payload = mention("COPS", "nginx 502 bad gateway on web-03")
    ts = payload["event"]["ts"]
    assert post(harness.client, event_body(payload)).status_code == 200
    replies_in(harness.fake, ts)
    before = retry_ignored_count()
    retry = post(harness.client, event_body(payload), retry_num=1)
    assert retry.status_code == 200
    assert retry_ignored_count() == before + 1
    # A restarted process (new runtime and Bolt app, same database) ignores it too.
    from tests.slack.conftest import SlackHarness

    restarted = SlackHarness(slack_services, fake_slack)
    try:
        again = post(restarted.client, event_body(payload), retry_num=2)
        assert again.status_code == 200
        assert retry_ignored_count() == before + 2
        # A later event in the same channel is answered, and the first one still only once.
        _, _ = ask(restarted, "COPS", "certificate expired on api gateway")
    finally:
        restarted.close()
    assert len(answers_for(harness, message_ts=ts)) == 1
    assert (
        len([c for c in fake_slack.calls_of("chat.postMessage") if c.args.get("thread_ts") == ts])
        == 1
    )


def test_bad_or_stale_signature_is_refused_and_nothing_is_done(harness):
    payload = mention("COPS", "disk full on db-09")
    ts = payload["event"]["ts"]
    bad = post(harness.client, event_body(payload), secret="wrong-secret")
    stale = post(harness.client, event_body(payload), timestamp=int(time.time()) - 6 * 60)
    assert bad.status_code == 401 and stale.status_code == 401
    # The event id was never recorded: a first delivery would still be handled.
    with session_scope(harness.services.sessions) as session:
        assert repo.mark_slack_event_seen(session=session, event_id=payload["event_id"])
        session.rollback()
    # Prove the pool is idle for this thread by answering a later, valid event first.
    ask(harness, "COPS", "disk full on db-10")
    assert answers_for(harness, message_ts=ts) == []
    assert not [c for c in harness.fake.calls if c.args.get("thread_ts") == ts]


def test_alertmanager_bot_message_in_alerts_channel_is_triaged(harness):
    payload = load_payload("bot_message_alertmanager.json")
    ts = unique_ts()
    payload["event_id"] = new_event_id()
    payload["event"].update({"ts": ts, "event_ts": ts})
    assert post(harness.client, event_body(payload)).status_code == 200
    (reply,) = replies_in(harness.fake, ts)
    assert_valid_blocks(reply.args["blocks"])
    (answer,) = answers_for(harness, message_ts=ts)
    assert answer.surface == "slack_message"
    assert "HostOutOfDiskSpace" in answer.query and "/var/lib/postgresql" in answer.query


def test_people_message_in_alerts_channel_is_triaged(harness):
    payload = channel_message("CALERTS", "checkout-api pods crashlooping, OOMKilled")
    ts = payload["event"]["ts"]
    assert post(harness.client, event_body(payload)).status_code == 200
    replies_in(harness.fake, ts)
    (answer,) = answers_for(harness, message_ts=ts)
    assert answer.surface == "slack_message"


def test_reactions_in_words_of_emoji_and_mentions_get_no_triage(harness):
    quiet = [channel_message("CALERTS", text)
             for text in (":eyes:", "+1 :white_check_mark:", "<@U0BOB> :point_up:", "👀 +1")]
    for payload in quiet:
        assert post(harness.client, event_body(payload)).status_code == 200
    sentinel = channel_message("CALERTS", ":fire: redis evicting keys on cache-02")
    assert post(harness.client, event_body(sentinel)).status_code == 200
    replies_in(harness.fake, sentinel["event"]["ts"])  # a report with an emoji is answered
    for payload in quiet:
        assert answers_for(harness, message_ts=payload["event"]["ts"]) == []


def test_own_messages_edits_replies_and_off_channels_are_ignored(harness):
    ignored_ts = []
    own = load_payload("message_from_self.json")
    changed = load_payload("message_changed.json")
    reply = load_payload("thread_reply.json")
    off = channel_message("COFF", "disk full on db-04")
    for p in (own, changed, reply, off):
        p["event_id"] = new_event_id()
        if p is not off:
            ts = unique_ts()
            p["event"].update({"ts": ts, "event_ts": ts})
        ignored_ts.append(p["event"]["ts"])
        assert post(harness.client, event_body(p)).status_code == 200
    # Bounded wait on a later message in the same channels, then check nothing else came.
    sentinel = channel_message("CALERTS", "kafka consumer lag growing on orders topic")
    assert post(harness.client, event_body(sentinel)).status_code == 200
    replies_in(harness.fake, sentinel["event"]["ts"])
    ask(harness, "COFF", "mentions are answered even in off channels")
    posted = {c.args.get("thread_ts") for c in harness.fake.calls_of("chat.postMessage")}
    assert not posted.intersection(ignored_ts)
    for ts in ignored_ts:
        assert answers_for(harness, message_ts=ts) == []


# --- slash commands and shortcut --------------------------------------------------------------


def test_slash_triage_acks_then_responds_in_channel(harness, fake_slack):
    url = fake_slack.response_url("triage-1")
    payload = load_payload("slash_triage.json", response_url=url)
    response = post(harness.client, command_body(payload))
    assert response.status_code == 200
    (call,) = fake_slack.wait_for(
        lambda c: c.method == "response_url" and c.path.endswith("triage-1")
    )
    assert call.args["response_type"] == "in_channel"
    assert_valid_blocks(call.args["blocks"])
    assert "SSO" in json.dumps(call.args["blocks"])
    answers = answers_for(harness, surface="slash_triage")
    assert any("SSO returns 502" in a.query for a in answers)


def test_slash_command_without_text_shows_usage(harness, fake_slack):
    for command in ("/triage", "/similar", "/runbook"):
        payload = load_payload("slash_triage.json", response_url=fake_slack.response_url("u"))
        payload.update({"command": command, "text": "  "})
        response = post(harness.client, command_body(payload))
        assert response.status_code == 200
        assert "Usage" in response.text


def test_similar_and_runbook_answer_ephemerally(harness, fake_slack):
    for command in ("/similar", "/runbook"):
        name = command.strip("/")
        payload = load_payload("slash_triage.json", response_url=fake_slack.response_url(name))
        payload.update({"command": command, "text": "disk full on database server"})
        assert post(harness.client, command_body(payload)).status_code == 200
        (call,) = fake_slack.wait_for(lambda c, n=name: c.path.endswith(f"/response/{n}"))
        assert call.args["response_type"] == "ephemeral"
        assert_valid_blocks(call.args["blocks"])
        rows = [b["text"]["text"] for b in call.args["blocks"][1:]]
        assert rows
        for row in rows:  # a similarity in [0, 1], not the fused rank score (1.38 was shown)
            (similarity,) = re.findall(r"\(similarity (\d+\.\d\d)\)", row)
            assert 0.0 <= float(similarity) <= 1.0
            assert "\n" in row  # and what the hit says, not its title alone
        if command == "/similar":  # past cases show what was found and done
            assert any("Fix: " in row for row in rows), rows


def test_message_shortcut_replies_in_that_messages_thread(harness, fake_slack):
    payload = load_payload("message_shortcut.json", response_url=fake_slack.response_url("sc"))
    ts = unique_ts()
    payload["message"]["ts"] = payload["message_ts"] = ts
    assert post(harness.client, interaction_body(payload)).status_code == 200
    (reply,) = replies_in(fake_slack, ts)
    assert reply.args["channel"] == "CHELP"
    (answer,) = answers_for(harness, message_ts=ts)
    assert answer.surface == "slack_shortcut" and answer.requested_by == "UALICE"
    assert "VPN" in answer.query


# --- feedback ------------------------------------------------------------------------------------


def click(harness, name: str, answer_id: int, **subs) -> None:
    payload = load_payload(
        name, answer_id=answer_id, response_url=harness.fake.response_url("click"), **subs
    )
    assert post(harness.client, interaction_body(payload)).status_code == 200


def ephemerals(fake, text: str, count: int = 1):
    return fake.wait_for(
        lambda c: c.method == "chat.postEphemeral" and text in c.args.get("text", ""),
        count=count,
    )


def test_feedback_controls_are_stored_against_the_answer(harness, fake_slack):
    _, reply = ask(harness, "COPS", "postgres replication lag on db-02 keeps growing")
    answer_id = int(action_values(reply)[ActionId.HELPFUL])
    click(harness, "block_actions_helpful.json", answer_id)
    click(harness, "block_actions_not_helpful.json", answer_id)
    click(harness, "block_actions_correct_label.json", answer_id, label="database")
    ephemerals(fake_slack, "Thanks, recorded: helpful")
    ephemerals(fake_slack, "Thanks, recorded: not helpful (Wrong runbook)")
    ephemerals(fake_slack, "should be *database*")
    with session_scope(harness.services.sessions) as session:
        rows = session.query(Feedback).filter_by(answer_id=answer_id).order_by(Feedback.id).all()
        got = {(r.kind, r.field, r.value, r.reason, r.user_id) for r in rows}
        examples = session.query(LabeledExample).filter_by(feedback_id=rows[-1].id).all()
        query = session.get(TriageAnswer, answer_id).query
        audit = [a for a in repo.list_audit(session=session) if a.subject == f"answer:{answer_id}"]
        example = [(e.field, e.label, e.text, e.origin) for e in examples]
    assert got == {
        ("helpful", "", "", "", "UALICE"),
        ("not_helpful", "", "", "wrong_runbook", "UALICE"),
        ("correction", "category", "database", "", "UALICE"),
    }
    assert example == [("category", "database", query, "feedback")]
    assert len([a for a in audit if a.action == "feedback"]) == 3


def test_more_posts_the_full_details(harness, fake_slack):
    _, reply = ask(harness, "COPS", "TLS certificate expires in 3 days on api.example.com")
    answer_id = int(action_values(reply)[ActionId.MORE])
    click(harness, "block_actions_more.json", answer_id)
    (call,) = ephemerals(fake_slack, "Triage details")
    assert_valid_blocks(call.args["blocks"])
    assert call.args["user"] == "UALICE"


def test_root_cause_modal_creates_an_incident_found_by_the_next_triage(harness, fake_slack):
    text = "quux-cache on cache-07 flaps with zorblax handshake errors"
    payload, reply = ask(harness, "COPS", text)
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    click(harness, "block_actions_record_root_cause.json", answer_id)
    (opened,) = fake_slack.wait_for(
        lambda c: (
            c.method == "views.open"
            and json.loads(c.args["view"]["private_metadata"])["answer_id"] == answer_id
        )
    )
    assert opened.args["view"]["callback_id"] == "root_cause_modal"
    cause = "zorblax session table overflow in quux-cache after the 4.2 upgrade"
    fix = "raise zorblax.max_sessions to 65536 and restart quux-cache"
    submission = load_payload(
        "view_submission_root_cause.json",
        answer_id=answer_id,
        thread_ts=payload["event"]["ts"],
        root_cause=cause,
        fix=fix,
    )
    response = post(harness.client, interaction_body(submission))
    assert response.status_code == 200
    ephemerals(fake_slack, f"saved as incident `slack:COPS:{payload['event']['ts']}`")  # this one
    with session_scope(harness.services.sessions) as session:
        (incident,) = [i for i in repo.list_incidents(session=session) if i.root_cause == cause]
        assert (incident.kind, incident.source_name, incident.visibility) == (
            "incident",
            "slack",
            "public",
        )
        assert incident.resolution == fix and incident.resolved_by == "UALICE"
        kinds = [f.kind for f in session.query(Feedback).filter_by(answer_id=answer_id)]
    assert kinds == ["root_cause"]
    _, again = ask(harness, "COPS", "quux-cache flapping again with zorblax handshake errors")
    assert "zorblax session table overflow" in again.blocks_text()


def test_notification_text_never_carries_mentions_or_links_from_stored_text(harness, fake_slack):
    """A message's ``text`` is mrkdwn too (it is the notification): a title or fix someone
    typed with ``<!channel>`` or ``<http://...|label>`` must not ping the channel or hide a
    link in every later answer that quotes that incident."""
    # Slack sends a typed "<!channel>" as "&lt;!channel&gt;"; the stored query has it raw.
    payload, reply = ask(harness, "COPS", "frobnitz-queue on mq-11 wedged &lt;!channel&gt;")
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    submission = load_payload(
        "view_submission_root_cause.json",
        answer_id=answer_id,
        thread_ts=payload["event"]["ts"],
        root_cause="frobnitz consumer deadlock <!here>",
        fix="restart frobnitz <!channel> see <http://evil.example|the runbook>",
    )
    assert post(harness.client, interaction_body(submission)).status_code == 200
    ephemerals(fake_slack, f"`slack:COPS:{payload['event']['ts']}`")
    _, again = ask(harness, "COPS", "frobnitz-queue wedged again on mq-11")
    text = again.args["text"]
    assert "Most similar: slack:COPS:" in text  # the recorded incident is quoted
    assert "<!" not in text and "<http" not in text
    assert "&lt;!channel&gt;" in text and "&lt;http://evil.example|the runbook&gt;" in text
    response_url = fake_slack.response_url("similar-escape")
    command = load_payload("slash_triage.json", response_url=response_url)
    command.update(command="/similar", text="frobnitz-queue wedged &lt;!channel&gt;")
    assert post(harness.client, command_body(command)).status_code == 200
    (found,) = fake_slack.wait_for(
        lambda c: c.method == "response_url" and c.path.endswith("similar-escape")
    )
    assert "<!" not in found.args["text"] and "&lt;!channel&gt;" in found.args["text"]


def seen_by_the_user(fake, call) -> bool:
    """Slack shows an ephemeral message posted into a thread only when that thread already
    has replies (chat.postEphemeral, ``thread_ts``); else the person sees nothing."""
    thread = call.args.get("thread_ts")
    kept = fake.messages.get(call.args["channel"], [])
    return not thread or any(m.get("thread_ts") == thread for m in kept)


def test_feedback_on_a_top_level_answer_is_acknowledged_where_the_user_sees_it(
    harness, fake_slack
):
    """/triage answers (and alert-group messages) are top-level messages without a thread:
    the "Thanks, recorded" notes, "More" and the root-cause confirmation must not go into a
    thread that does not exist."""
    url = fake_slack.response_url("triage-top-level")
    command = load_payload("slash_triage.json", response_url=url)
    command.update(channel_id="CTOP", text="kafka broker kafka-3 under-replicated partitions")
    assert post(harness.client, command_body(command)).status_code == 200
    (answer,) = fake_slack.wait_for(lambda c: c.path.endswith("/triage-top-level"))
    answer_id = int(action_values(answer)[ActionId.HELPFUL])
    answer_ts = unique_ts()  # the ts Slack gave the posted answer; it has no thread

    def top_level_click(name: str, **subs):
        payload = load_payload(
            name, answer_id=answer_id, response_url=fake_slack.response_url("c"), **subs
        )
        payload["channel"]["id"] = payload["container"]["channel_id"] = "CTOP"
        payload["container"]["message_ts"] = payload["message"]["ts"] = answer_ts
        payload["container"].pop("thread_ts", None)
        payload["message"].pop("thread_ts", None)
        assert post(harness.client, interaction_body(payload)).status_code == 200

    top_level_click("block_actions_helpful.json")
    top_level_click("block_actions_more.json")
    top_level_click("block_actions_record_root_cause.json")
    (opened,) = fake_slack.wait_for(
        lambda c: c.method == "views.open"
        and json.loads(c.args["view"]["private_metadata"])["answer_id"] == answer_id
    )
    meta = json.loads(opened.args["view"]["private_metadata"])
    submission = load_payload(
        "view_submission_root_cause.json",
        answer_id=answer_id,
        thread_ts=answer_ts,
        root_cause="ISR shrink after kafka-3 lost its disk",
        fix="replaced the disk, partitions caught up",
    )
    submission["view"]["private_metadata"] = json.dumps(meta)
    assert post(harness.client, interaction_body(submission)).status_code == 200
    notes = fake_slack.wait_for(
        lambda c: c.method == "chat.postEphemeral" and c.args.get("channel") == "CTOP", count=3
    )
    assert {n.args["text"].split(":")[0].split("\n")[0] for n in notes} == {
        "Thanks, recorded",
        "Triage details",
    }
    assert [n.args.get("thread_ts") for n in notes if not seen_by_the_user(fake_slack, n)] == []
    with session_scope(harness.services.sessions) as session:
        found = repo.incidents_by_external_id(session=session, ids=[f"slack:CTOP:{answer_ts}"])
    assert found  # the answer's own ts still names the recorded incident


def test_error_on_a_top_level_mention_is_shown_in_the_channel(harness, fake_slack):
    """The answer to a top-level mention opens its thread; when posting it fails there is no
    thread, so the error note must go to the channel to be seen."""
    fake_slack.fail("chat.postMessage", "invalid_blocks")
    payload = mention("CTOPERR", "haproxy backend web-pool all servers down")
    assert post(harness.client, event_body(payload)).status_code == 200
    (note,) = fake_slack.wait_for(
        lambda c: c.method == "chat.postEphemeral" and c.args.get("channel") == "CTOPERR"
    )
    assert note.args["text"].startswith("Something went wrong (ref ")
    assert seen_by_the_user(fake_slack, note), note.args


def test_root_cause_modal_requires_both_fields(harness):
    submission = load_payload(
        "view_submission_root_cause.json", answer_id=1, thread_ts="1.1", root_cause="", fix=""
    )
    response = post(harness.client, interaction_body(submission))
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert set(errors) == {"rc_root_cause", "rc_fix"}


def test_bad_action_value_reports_a_reference_id(harness, fake_slack):
    click(harness, "block_actions_record_root_cause.json", "not-a-number")
    (call,) = fake_slack.wait_for(
        lambda c: c.method == "chat.postEphemeral"
        and c.args["channel"] == "COPS"
        and "Something went wrong (ref " in c.args.get("text", "")
    )
    ref = call.args["text"].split("(ref ")[1][:8]
    assert len(ref) == 8 and int(ref, 16) >= 0


# --- rate limits ------------------------------------------------------------------------------


def test_rate_limited_post_is_retried_after_retry_after(harness, fake_slack):
    fake_slack.rate_limit(1, retry_after=1, method="chat.postMessage")
    payload = mention("COPS", "load balancer health checks failing on lb-01")
    ts = payload["event"]["ts"]
    assert post(harness.client, event_body(payload)).status_code == 200
    (reply,) = replies_in(fake_slack, ts)
    limited = [c for c in fake_slack.calls if c.method == "chat.postMessage" and c.status == 429]
    assert limited and limited[-1].args.get("thread_ts") == ts
    assert reply.at - limited[-1].at >= 1.0  # waited for Retry-After before retrying


# --- admin ---------------------------------------------------------------------------


def channel_mode(harness, channel: str) -> str | None:
    with session_scope(harness.services.sessions) as session:
        return repo.get_channel_mode(session=session, channel=channel)


def test_config_command_is_admin_only(harness, fake_slack):
    payload = load_payload("slash_config.json", response_url=fake_slack.response_url("cfg"))
    refused = post(harness.client, command_body(payload))
    assert refused.status_code == 200 and "only triagebot admins" in refused.text
    assert channel_mode(harness, "CNEW") is None
    payload["user_id"] = ADMIN
    assert post(harness.client, command_body(payload)).status_code == 200
    fake_slack.wait_for(lambda c: c.path.endswith("/response/cfg") and "`alerts`" in c.args["text"])
    assert channel_mode(harness, "CNEW") == "alerts"
    # The new mode is used at once: a plain message there is now triaged.
    message = channel_message("CNEW", "disk full on db-11")
    assert post(harness.client, event_body(message)).status_code == 200
    replies_in(fake_slack, message["event"]["ts"])


def test_app_home_shows_models_and_admin_buttons(harness, fake_slack):
    def home_of(user: str):
        return lambda c: c.method == "views.publish" and c.args["user_id"] == user

    # other tests publish App Home for the admin too: wait for one more than before
    before = {user: len([c for c in fake_slack.calls if home_of(user)(c)])
              for user in ("UALICE", ADMIN)}
    for user in ("UALICE", ADMIN):
        payload = load_payload("app_home_opened.json", user=user)
        payload["event_id"] = new_event_id()
        assert post(harness.client, event_body(payload)).status_code == 200
    alice = fake_slack.wait_for(home_of("UALICE"), count=before["UALICE"] + 1)[-1]
    admin = fake_slack.wait_for(home_of(ADMIN), count=before[ADMIN] + 1)[-1]
    for call in (alice, admin):
        text = json.dumps(call.args["view"])
        assert "Search indexes" in text and "Active models" in text
        assert "in the last 7 days" in text or "answers judged by feedback" in text
        assert "drift check" in text  # each model says how it does in use
        assert_valid_blocks(call.args["view"]["blocks"])
    assert ActionId.HOME_RETRAIN not in json.dumps(alice.args["view"])
    assert ActionId.HOME_RETRAIN in json.dumps(admin.args["view"])


@pytest.mark.parametrize(("payload_name", "action", "user"), [
    ("block_actions_home_retrain.json", "home_retrain_requested", "UMALLORY"),
    ("block_actions_home_rollback.json", "home_rollback_requested", "UMALLET"),
])
def test_home_admin_actions_refused_for_non_admin(harness, fake_slack, payload_name, action,
                                                  user):
    # the buttons are only shown to admins, but anyone can forge the request
    before = harness.services.classifiers.active_versions()
    payload = load_payload(payload_name, user=user, target="category")
    assert post(harness.client, interaction_body(payload)).status_code == 200
    fake_slack.wait_for(
        lambda c: c.method == "views.publish" and c.args["user_id"] == user
        and "Only triagebot admins" in json.dumps(c.args["view"]))
    with session_scope(harness.services.sessions) as session:
        actions = [a.action for a in repo.list_audit(session=session) if a.actor == user]
    assert action not in actions
    assert harness.services.classifiers.active_versions() == before


@pytest.mark.parametrize(("target", "notice"), [
    ("<!here>", "Roll back: no model is loaded for “&lt;!here&gt;”"),  # forged, and escaped
    ("category", "Roll back refused: category: no earlier promoted version"),
])
def test_home_rollback_says_why_it_did_nothing(harness, fake_slack, target, notice):
    before = harness.services.classifiers.active_versions()
    payload = load_payload("block_actions_home_rollback.json", user=ADMIN, target=target)
    assert post(harness.client, interaction_body(payload)).status_code == 200
    fake_slack.wait_for(lambda c: c.method == "views.publish" and c.args["user_id"] == ADMIN
                        and notice in json.dumps(c.args["view"], ensure_ascii=False))
    assert harness.services.classifiers.active_versions() == before
    with session_scope(harness.services.sessions) as session:
        done = [a for a in repo.list_audit(session=session)
                if a.actor == ADMIN and a.action == "home_rollback_done" and a.subject == target]
    assert done and notice.split(":")[0] in done[-1].detail["summary"]


def audited(session, action: str) -> list:
    return [a for a in repo.list_audit(session=session) if a.action == action]


@pytest.mark.parametrize("task", ["retrain", "reindex"])
def test_home_retrain_and_reindex_wait_for_the_run_already_going(harness, fake_slack, task):
    """A retrain takes minutes on real history: a second click (or the nightly job running
    meanwhile) must not start a second one beside it. The Home buttons take the job's lease."""
    with session_scope(harness.services.sessions) as session:
        assert repo.acquire_lease(
            session=session, name=task, holder="nightly-job", ttl=timedelta(hours=1)
        )
        versions = len(repo.list_model_versions(session=session))
        requested = len(audited(session, f"home_{task}_requested"))
    try:
        payload = load_payload("block_actions_home_retrain.json", user=ADMIN)
        payload["actions"][0].update(action_id=f"home_{task}", value=task)
        assert post(harness.client, interaction_body(payload)).status_code == 200
        fake_slack.wait_for(
            lambda c: c.method == "views.publish" and c.args["user_id"] == ADMIN
            and f"A {task} is already running" in json.dumps(c.args["view"])
        )
        with session_scope(harness.services.sessions) as session:
            assert len(repo.list_model_versions(session=session)) == versions
            assert len(audited(session, f"home_{task}_requested")) == requested  # not started
    finally:
        with session_scope(harness.services.sessions) as session:
            repo.release_lease(session=session, name=task, holder="nightly-job")


def test_home_reindex_frees_its_lease_when_done(harness, fake_slack):
    payload = load_payload("block_actions_home_retrain.json", user=ADMIN)
    payload["actions"][0].update(action_id="home_reindex", value="reindex")
    assert post(harness.client, interaction_body(payload)).status_code == 200
    fake_slack.wait_for(
        lambda c: c.method == "views.publish" and c.args["user_id"] == ADMIN
        and "no runbook sources configured" in json.dumps(c.args["view"])
    )
    with session_scope(harness.services.sessions) as session:  # free for the nightly job
        assert repo.acquire_lease(
            session=session, name="reindex", holder="nightly-job", ttl=timedelta(hours=1)
        )
        repo.release_lease(session=session, name="reindex", holder="nightly-job")


def test_not_configured_answers_503(tmp_path, fake_slack):
    from starlette.testclient import TestClient

    from bot.server import Runtime, create_http_app
    from tests.slack.conftest import make_settings

    settings = make_settings(tmp_path, fake_slack.api_url, slack_bot_token=None)
    app = create_http_app(settings, Runtime(settings))
    with TestClient(app) as client:
        response = client.post("/slack/events", content=b"{}")
    assert response.status_code == 503
    assert "SLACK_BOT_TOKEN" in response.json()["error"]


def test_global_error_handler_tells_the_user_a_reference(harness, fake_slack, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.bot, "learn_identity", broken)
    payload = mention("CERR", "anything")
    assert post(harness.client, event_body(payload)).status_code == 200
    (call,) = fake_slack.wait_for(
        lambda c: c.method == "chat.postEphemeral" and c.args.get("channel") == "CERR"
    )
    assert call.args["user"] == "UALICE"
    assert call.args["text"].startswith("Something went wrong (ref ")


def test_the_same_click_twice_is_one_judgment(harness, fake_slack):
    """A double click on Helpful (or the same correction chosen again) stored two feedback
    rows: `models drift` counted two judgments, the App Home two helpful answers and the
    retrain two identical labels, for one person's one opinion. Stored once now; a different
    choice by the same person (another label) is still stored."""
    _, reply = ask(harness, "COPS", "redis evicting keys, memory at maxmemory on cache-03")
    answer_id = int(action_values(reply)[ActionId.HELPFUL])
    for _ in range(2):
        click(harness, "block_actions_helpful.json", answer_id)
        click(harness, "block_actions_correct_label.json", answer_id, label="memory")
    click(harness, "block_actions_correct_label.json", answer_id, label="database")
    ephemerals(fake_slack, "Thanks, recorded: helpful", count=2)
    ephemerals(fake_slack, "should be *memory*", count=2)
    ephemerals(fake_slack, "should be *database*")
    with session_scope(harness.services.sessions) as session:
        rows = session.query(Feedback).filter_by(answer_id=answer_id).order_by(Feedback.id).all()
        got = [(r.kind, r.value) for r in rows]
        labels = [e.label for r in rows
                  for e in session.query(LabeledExample).filter_by(feedback_id=r.id)]
    assert got == [("helpful", ""), ("correction", "memory"), ("correction", "database")]
    assert labels == ["memory", "database"]
    # back to the first choice: a change of mind, stored, so that it is the latest label
    click(harness, "block_actions_correct_label.json", answer_id, label="memory")
    ephemerals(fake_slack, "should be *memory*", count=3)
    with session_scope(harness.services.sessions) as session:
        rows = session.query(Feedback).filter_by(answer_id=answer_id).order_by(Feedback.id).all()
        assert [r.value for r in rows][-1] == "memory" and len(rows) == 4
