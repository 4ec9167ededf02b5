"""Database unreachable: webhook alerts and feedback go to the local spool (202 / "Thanks,
recorded") and are replayed in order, exactly once, when the database is back."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.exc import OperationalError

from bot.metrics import SPOOL_RECORDS
from bot.spool import Spool
from tests.conftest import counter_value
from tests.faults.conftest import ALERTS, wait_until
from tests.faults.helpers import answer_id_of, ask, click_helpful, send_alert, sql
from tests.slack.helpers import correction_payload, interaction_body, post


def spooled(kind: str, outcome: str) -> float:
    return counter_value(SPOOL_RECORDS, kind=kind, outcome=outcome)


def test_switch_really_takes_the_database_away(app) -> None:
    app.switch.off()
    try:
        with pytest.raises(OperationalError), app.services.engine.connect():
            pass
    finally:
        app.switch.on()


def test_outage_spools_alerts_and_feedback_then_replays_in_order(app, faults_data_dir) -> None:
    _, reply = ask(app, ALERTS, "postgres replication lag growing on replica db-07")
    answer_id = answer_id_of(reply)
    user = "U" + uuid.uuid4().hex[:8].upper()
    names = [f"SpoolOrder{uuid.uuid4().hex[:6]}{i}" for i in range(4)]
    events_before = sql(faults_data_dir, "SELECT count(*) FROM events")[0][0]
    spooled_before = spooled("events", "spooled")

    app.switch.off()
    try:
        for name in names[:3]:
            answer = send_alert(app, name)
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"ok": True, "accepted": 1}
        click_helpful(app, answer_id, user=user)
        app.fake.wait_for(
            lambda c: c.method == "chat.postEphemeral"
            and c.args.get("user") == user
            and "Thanks, recorded: helpful" in c.args.get("text", "")
        )
        # Nothing reached the database; all of it is in the spool, on disk.
        assert sql(faults_data_dir, "SELECT count(*) FROM events")[0][0] == events_before
        assert sql(faults_data_dir, "SELECT count(*) FROM feedback WHERE user_id = ?", user) == [
            (0,)
        ]
        assert app.spool.pending() == 4
        kinds = [r.kind for r in app.spool.records()]
        assert kinds == ["events", "events", "events", "feedback"]
        assert spooled("events", "spooled") == spooled_before + 3
        # The replayer tries, fails, and keeps everything.
        result = app.replayer.run_once()
        assert result.error and result.applied == 0 and app.spool.pending() == 4
    finally:
        app.switch.on()
    # Back: one more alert arrives before the replay has run; it queues behind the spool.
    assert send_alert(app, names[3]).status_code == 202
    app.replayer.wake()
    wait_until(lambda: app.spool.pending() == 0, what="the spool to drain")
    assert app.pipeline.wait_idle(60)

    rows = sql(
        faults_data_dir,
        "SELECT id, title, outcome FROM events WHERE title LIKE 'SpoolOrder%' ORDER BY id",
    )
    stored = [t for _, t, _ in rows if any(t.startswith(n) for n in names)]
    assert [next(n for n in names if t.startswith(n)) for t in stored] == names  # order, once
    assert all(outcome != "queued" for _, t, outcome in rows if t in stored)
    feedback = sql(
        faults_data_dir, "SELECT answer_id, kind FROM feedback WHERE user_id = ?", user
    )
    assert feedback == [(answer_id, "helpful")]
    # Each alert was grouped and posted to the alert channel once it was stored.
    for name in names:
        app.fake.wait_for(
            lambda c, n=name: c.method == "chat.postMessage"
            and c.args.get("channel") == ALERTS
            and n in c.args.get("text", "") + c.blocks_text()
        )
    assert not list(app.spool.directory.glob("seg-*.jsonl"))


def test_replay_after_a_crash_mid_replay_applies_nothing_twice(app, tmp_path) -> None:
    """The record was applied but the spool's progress was not saved (crash): replaying it
    again is recognised by its id and skipped."""
    spool = Spool(tmp_path / "spool")
    name = f"CrashReplay{uuid.uuid4().hex[:6]}"
    from bot.alert_pipeline import event_to_dict
    from bot.intake.alertmanager import parse_alertmanager
    from tests.faults.helpers import notification

    events = parse_alertmanager(notification(name)).events
    spool.append("events", {"events": [event_to_dict(e) for e in events]})
    (record,) = list(spool.records())
    assert app.runtime.apply_spooled(record) == "applied"  # ... and then the process died
    result = spool.replay(app.runtime.apply_spooled)
    assert (result.applied, result.duplicates, result.remaining) == (0, 1, 0)
    assert app.pipeline.wait_idle(60)
    count = sql(app.settings.data_dir, "SELECT count(*) FROM events WHERE title LIKE ?", name + "%")
    assert count == [(1,)]
    spool.close()


def test_unappliable_record_is_dead_lettered_not_dropped(app, tmp_path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append("feedback", {"op": "click", "answer_id": 999_999_999, "kind": "helpful",
                              "user_id": "U1", "field": "", "value": "", "reason": ""})
    spool.append("events", {"events": [{"source": "nonsense"}]})
    before = spooled("feedback", "dead_letter")
    result = spool.replay(app.runtime.apply_spooled)
    assert (result.applied, result.dead_lettered, result.remaining) == (0, 2, 0)
    letters = spool.dead_letters()
    assert [d["kind"] for d in letters] == ["feedback", "events"]
    assert "999999999" in letters[0]["error"]
    assert spooled("feedback", "dead_letter") == before + 1
    spool.close()


def test_alert_meeting_a_locked_database_is_spooled_not_refused(app, faults_data_dir) -> None:
    """Another writer (a long import, say) holds SQLite's write lock past the intake's lock
    wait: the call is spooled and answered 202 before the webhook's own 30 s wait runs out,
    and the alert is stored once when the lock is gone (it used to get a 503 while it was
    also spooled, so Alertmanager's retry stored it twice)."""
    import sqlite3

    from bot.alert_pipeline import INTAKE_LOCK_WAIT_SECONDS

    name = f"LockedDb{uuid.uuid4().hex[:6]}"
    before = spooled("events", "spooled")
    holder = sqlite3.connect(faults_data_dir / "triagebot.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        answer = send_alert(app, name)
        assert INTAKE_LOCK_WAIT_SECONDS < 30.0
        assert answer.status_code == 202, answer.text
        assert spooled("events", "spooled") == before + 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    app.replayer.wake()
    wait_until(lambda: app.spool.pending() == 0, what="the spool to drain")
    assert app.pipeline.wait_idle(60)
    count = sql(faults_data_dir, "SELECT count(*) FROM events WHERE title LIKE ?", name + "%")
    assert count == [(1,)]


def click_correction(app, answer_id: int, value: str, user: str) -> None:
    payload = correction_payload(answer_id, value, user, app.fake.response_url("correct"))
    assert post(app.client, interaction_body(payload)).status_code == 200


def test_outage_spools_an_offered_correction_and_refuses_a_forged_one(app, faults_data_dir):
    """The labels of a correction are checked before the database too: junk is not even
    spooled (the person is told it was not recorded), an offered label is spooled as usual."""
    _, reply = ask(app, ALERTS, "WAL volume on db-09 at 97% and growing")
    answer_id = answer_id_of(reply)
    user = "U" + uuid.uuid4().hex[:8].upper()
    app.switch.off()
    try:
        click_correction(app, answer_id, f"{answer_id}|category|" + "junk " * 1000, user)
        app.fake.wait_for(lambda c: c.method == "chat.postEphemeral"
                          and c.args.get("user") == user
                          and "Not recorded" in c.args.get("text", ""))
        assert app.spool.pending() == 0
        click_correction(app, answer_id, f"{answer_id}|category|database", user)
        app.fake.wait_for(lambda c: c.method == "chat.postEphemeral"
                          and c.args.get("user") == user
                          and "should be *database*" in c.args.get("text", ""))
        assert app.spool.pending() == 1
    finally:
        app.switch.on()
    app.replayer.wake()
    wait_until(lambda: app.spool.pending() == 0, what="the spool to drain")
    query = "SELECT field, value FROM feedback WHERE user_id = ?"
    assert sql(faults_data_dir, query, user) == [("category", "database")]


def test_a_spooled_correction_with_a_label_not_offered_is_dead_lettered(app, tmp_path):
    """A spooled correction is checked again when it is replayed (a record written by an
    older version, or a label removed meanwhile): not stored, kept in the dead letters."""
    _, reply = ask(app, ALERTS, "certificate for api.internal expires in 2 days")
    answer_id = answer_id_of(reply)
    spool = Spool(tmp_path / "spool")
    spool.append("feedback", {"op": "click", "answer_id": answer_id, "kind": "correction",
                              "user_id": "USPOOL", "field": "category",
                              "value": "no-such-category", "reason": ""})
    result = spool.replay(app.runtime.apply_spooled)
    assert (result.applied, result.dead_lettered, result.remaining) == (0, 1, 0)
    (letter,) = spool.dead_letters()
    assert "RejectedCorrectionError" in letter["error"]
    assert sql(app.settings.data_dir, "SELECT count(*) FROM feedback WHERE user_id = 'USPOOL'") == [
        (0,)
    ]
    spool.close()
