"""The "Record root cause and fix" form as people fill it in: hostile or very long text,
submitted twice, or for an answer that is gone; and what the next answers make of it."""

from __future__ import annotations

import json

from bot.slack.ids import ActionId
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import Feedback
from tests.slack.helpers import action_values, interaction_body, load_payload, post
from tests.slack.test_e2e import ask, assert_valid_blocks, ephemerals


def submit(harness, answer_id: int, thread_ts: str, root_cause: str, fix: str):
    submission = load_payload("view_submission_root_cause.json", answer_id=answer_id,
                              thread_ts=thread_ts, root_cause="RC", fix="FIX")
    values = submission["view"]["state"]["values"]
    values["rc_root_cause"]["root_cause_text"]["value"] = root_cause
    values["rc_fix"]["root_cause_fix"]["value"] = fix
    response = post(harness.client, interaction_body(submission))
    assert response.status_code == 200
    return response


def incident_of(harness, external_id: str):
    with session_scope(harness.services.sessions) as session:
        found = repo.incidents_by_external_id(session=session, ids=[external_id])
        row = found.get(external_id)
        if row is not None:
            session.expunge(row)
        return row


def test_hostile_text_never_pings_or_links_in_later_answers(harness, fake_slack):
    payload, reply = ask(harness, "COPS", "blorptank daemon on bt-04 segfaults at start")
    ts = payload["event"]["ts"]
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    cause = "blorptank config <!channel> <!here|here> <@U123> <#C999> *bold* ```"
    fix = "rollback blorptank <https://evil.example/x|see runbook> <!subteam^S1>"
    submit(harness, answer_id, ts, cause, fix)
    ephemerals(fake_slack, f"`slack:COPS:{ts}`")
    stored = incident_of(harness, f"slack:COPS:{ts}")
    assert stored.root_cause == cause and stored.resolution == fix  # as typed
    _, again = ask(harness, "COPS", "blorptank daemon segfaults at start again on bt-04")
    shown = again.blocks_text() + again.args["text"]
    assert "blorptank config" in shown
    for raw in ("<!channel>", "<!here", "<@U123>", "<#C999>", "<https://evil", "<!subteam"):
        assert raw not in shown, raw
    assert_valid_blocks(again.args["blocks"])


def test_longest_text_the_form_takes_still_renders_valid_answers(harness, fake_slack):
    payload, reply = ask(harness, "COPS", "zarquon-proxy on zq-02 drops websocket upgrades")
    ts = payload["event"]["ts"]
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    cause = ("zarquon-proxy upgrade header stripped by the sidecar " * 60)[:3000]
    fix = ("pin zarquon sidecar to 1.8 and restart the pool " * 70)[:3000]
    submit(harness, answer_id, ts, cause, fix)
    ephemerals(fake_slack, f"`slack:COPS:{ts}`")
    _, again = ask(harness, "COPS", "zarquon-proxy drops websocket upgrades on zq-02 again")
    assert "zarquon-proxy upgrade header stripped" in again.blocks_text()
    assert_valid_blocks(again.args["blocks"])
    assert len(again.args["text"]) <= 40000


def test_a_second_submission_replaces_the_first(harness, fake_slack):
    payload, reply = ask(harness, "COPS", "glimmerdb on gd-09 refuses connections after patch")
    ts = payload["event"]["ts"]
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    submit(harness, answer_id, ts, "glimmerdb max_conn reset to 10 by the patch", "set 500")
    ephemerals(fake_slack, f"`slack:COPS:{ts}`")
    submit(harness, answer_id, ts, "glimmerdb pg_hba reset by the patch", "restore pg_hba")
    ephemerals(fake_slack, f"`slack:COPS:{ts}`", count=2)
    stored = incident_of(harness, f"slack:COPS:{ts}")
    assert stored.root_cause == "glimmerdb pg_hba reset by the patch"
    _, again = ask(harness, "COPS", "glimmerdb refuses connections after patch on gd-09")
    text = again.blocks_text()
    assert "pg_hba reset" in text and "max_conn reset" not in text


def test_an_answer_that_is_gone_is_said_and_nothing_is_stored(harness, fake_slack):
    response = submit(harness, 987654, "1716000000.000001", "cause", "fix")
    assert response.text in ("", "null")
    ephemerals(fake_slack, "That answer (#987654) no longer exists.")
    assert incident_of(harness, "slack:COPS:1716000000.000001") is None
    with session_scope(harness.services.sessions) as session:
        assert session.query(Feedback).filter_by(answer_id=987654).count() == 0


def test_secrets_typed_into_the_form_are_redacted_before_storing(harness, fake_slack):
    payload, reply = ask(harness, "COPS", "vaultish on vt-01 login fails for the deploy bot")
    ts = payload["event"]["ts"]
    answer_id = int(action_values(reply)[ActionId.RECORD_ROOT_CAUSE])
    token = "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx"
    submit(harness, answer_id, ts, f"deploy bot token {token} expired", "password=hunter22x")
    ephemerals(fake_slack, f"`slack:COPS:{ts}`")
    stored = incident_of(harness, f"slack:COPS:{ts}")
    with session_scope(harness.services.sessions) as session:
        feedback = [f.value for f in session.query(Feedback).filter_by(answer_id=answer_id)]
    for text in (stored.root_cause, stored.resolution, json.dumps(feedback)):
        assert token not in text and "hunter22x" not in text
