"""Restart: a Slack event retried after a restart (same event_id; new services and runtime on
the same data folder) gets no second reply, and what was spooled before the restart is
replayed at start-up."""

from __future__ import annotations

import time
import uuid

from tests.conftest import copy_data_dir
from tests.faults.conftest import ALERTS, App, make_settings, wait_until
from tests.faults.helpers import ask, send_alert, sql
from tests.slack.helpers import event_body, post


def test_restart_replays_the_spool_and_ignores_retried_events(
    fake, sample_data_dir, tmp_path
) -> None:
    from bot.app import build_services

    # A process of its own on a data folder of its own: the package's shared app keeps
    # running for the other tests (stopping it here left them a dead replayer).
    faults_data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    first_services = build_services(make_settings(faults_data_dir, fake.api_url))
    app = App(first_services, fake)
    payload, _ = ask(app, "CHELP", "the wiki returns 500 for every page edit")
    ts = payload["event"]["ts"]
    name = f"BeforeRestart{uuid.uuid4().hex[:6]}"
    app.switch.off()
    try:
        assert send_alert(app, name).status_code == 202
    finally:
        # The process dies with the record still in the spool (no replay ran): its spool
        # replayer stops while the database is still unreachable, or a replay could slip
        # into the moment between the database coming back and the replayer stopping.
        app.runtime.stop()
        app.close()
        app.spool.close()
        first_services.close()
    assert sql(faults_data_dir, "SELECT count(*) FROM events WHERE title LIKE ?", name + "%") == [
        (0,)
    ]

    services = build_services(make_settings(faults_data_dir, app.fake.api_url))
    restarted = App(services, app.fake)
    try:
        # Start-up replayed the spool: stored once, processed, posted.
        wait_until(lambda: restarted.spool.pending() == 0, what="start-up replay")
        assert restarted.pipeline.wait_idle(60)
        rows = sql(
            faults_data_dir, "SELECT outcome FROM events WHERE title LIKE ?", name + "%"
        )
        assert len(rows) == 1 and rows[0][0] != "queued"
        app.fake.wait_for(
            lambda c: c.method == "chat.postMessage"
            and c.args.get("channel") == ALERTS
            and name in c.args.get("text", "") + c.blocks_text()
        )
        # Slack retries the first event against the new process: acknowledged, not answered.
        again = post(restarted.client, event_body(payload), retry_num=1)
        assert again.status_code == 200
        ask(restarted, "CHELP", "new laptop cannot join the office wifi")  # work goes on
        time.sleep(0.5)
        replies = [
            c for c in app.fake.calls_of("chat.postMessage") if c.args.get("thread_ts") == ts
        ]
        assert len(replies) == 1
        answers = sql(
            faults_data_dir, "SELECT count(*) FROM triage_answers WHERE message_ts = ?", ts
        )
        assert answers == [(1,)]
    finally:
        restarted.close()
        restarted.spool.close()
        services.close()
