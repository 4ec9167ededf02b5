"""The scheduled drift job as the admin channel sees it: recent events unlike the training
data give one readable message (targets, what was found, the next step), not four messages
every hour for as long as the drift lasts. Real models, events and database; the Slack Web
API is the local fake and the job's clock is set, nothing sleeps."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import jobs
from bot.config import Settings
from bot.store import repository as repo
from bot.store.db import session_scope
from tests.bot.test_drift import OFF_TOPIC, add_events
from tests.fakes.slack_api import FakeSlackAPI

ADMIN_CHANNEL = "CADMINS"
AT = datetime(2026, 12, 3, 5, 41, tzinfo=UTC)  # a fire time of the drift cron, "41 * * * *"
TARGETS = ("category", "severity", "priority", "team")


@pytest.fixture
def fake_slack():
    fake = FakeSlackAPI().start()
    yield fake
    fake.stop()


def scheduled_drift(services: Any, settings: Settings) -> Any:
    """The drift job as start_scheduler registers it (trigger and admin notifier included),
    and a way to run it at a given time."""
    runtime = types.SimpleNamespace(settings=settings, services=services)
    scheduler = jobs.start_scheduler(runtime)
    try:
        job = scheduler.get_job("drift")
    finally:
        scheduler.shutdown(wait=False)
    name, job_services, trigger = job.args

    def run_at(when: datetime) -> Any:
        jobs_clock[0] = when
        return jobs.run_scheduled_job(name, job_services, trigger, now=when, **job.kwargs)

    jobs_clock = [AT]
    return run_at, jobs_clock


def slack_settings(services: Any, fake: FakeSlackAPI, **overrides: Any) -> Settings:
    values = {"data_dir": services.settings.data_dir, "scheduler_enabled": True,
              "sync_seconds": 0, "slack_bot_token": "xoxb-test",
              "slack_signing_secret": "secret", "slack_api_url": fake.api_url,
              "admin_channel": ADMIN_CHANNEL, **overrides}
    return Settings(_env_file=None, **values)


def posted(fake: FakeSlackAPI) -> list[str]:
    return [c.args["text"] for c in fake.calls_of("chat.postMessage")
            if c.args.get("channel") == ADMIN_CHANNEL]


def test_drift_is_posted_once_then_again_when_it_changes_or_lasts_a_day(
        services, fake_slack, monkeypatch: pytest.MonkeyPatch) -> None:
    run_at, clock = scheduled_drift(services, slack_settings(services, fake_slack))
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    add_events(services, OFF_TOPIC)  # recipes in an incident channel: nothing like the history

    first = run_at(AT)
    assert first is not None and first.outcome == "ok", first.detail
    (message,) = posted(fake_slack)
    active = services.classifiers.active_versions()
    for target in TARGETS:  # every model, with its version and what was found
        assert f"• *{target}* (`{active[target]}`): text embeddings shifted" in message
    assert "label some of them" in message and "`triagebot train`" in message  # next step
    assert message.count("Next step") == 1  # said once, not once per model
    assert "Retrain now on the App Home" in message

    # the same drift an hour later (and the hour after): nothing new, nothing posted
    for hours in (1, 2):
        again = run_at(AT + timedelta(hours=hours))
        assert again is not None and again.outcome == "ok", again.detail
        assert again.detail["category"]["should_retrain"] is True  # still drifted
    assert len(posted(fake_slack)) == 1

    # a new category model is judged: its drift is news, the others' is not
    newer = services.classifiers.train("category", actor="test", force=True).version
    run_at(AT + timedelta(hours=3))
    assert len(posted(fake_slack)) == 2
    changed = posted(fake_slack)[-1]
    assert f"*category* (`{newer}`)" in changed
    assert "`triagebot train --target category`" in changed
    assert not any(f"*{t}*" in changed for t in TARGETS if t != "category")

    # still there a day after it was first posted: one reminder for those not posted since
    run_at(AT + timedelta(hours=24))
    assert len(posted(fake_slack)) == 3
    reminder = posted(fake_slack)[-1]
    assert all(f"*{t}*" in reminder for t in ("severity", "priority", "team"))
    assert "*category*" not in reminder
    run_at(AT + timedelta(hours=25))
    assert len(posted(fake_slack)) == 3


def test_a_failed_post_is_tried_again_at_the_next_run(
        services, fake_slack, monkeypatch: pytest.MonkeyPatch) -> None:
    run_at, clock = scheduled_drift(services, slack_settings(services, fake_slack))
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    add_events(services, OFF_TOPIC)
    fake_slack.fail("chat.postMessage", "channel_not_found")
    failed = run_at(AT)
    assert failed.outcome == "ok"  # the verdicts are recorded for the App Home all the same
    assert failed.detail["category"]["should_retrain"] is True
    assert len(posted(fake_slack)) == 1  # the attempt Slack refused
    run_at(AT + timedelta(hours=1))
    assert len(posted(fake_slack)) == 2  # not marked as told: posted again
    run_at(AT + timedelta(hours=2))
    assert len(posted(fake_slack)) == 2


def test_no_admin_channel_posts_nothing_and_a_later_one_is_told(
        services, fake_slack, monkeypatch: pytest.MonkeyPatch) -> None:
    add_events(services, OFF_TOPIC)
    quiet, clock = scheduled_drift(services, slack_settings(services, fake_slack,
                                                            admin_channel=""))
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    run = quiet(AT)
    assert run is not None and run.outcome == "ok", run.detail
    assert run.detail["team"]["should_retrain"] is True
    assert fake_slack.calls_of("chat.postMessage") == []
    # a hand run (`triagebot jobs run drift`: nowhere to post) does not count as told either
    assert jobs.run_job("drift", services).outcome == "ok"

    # once an admin channel is set, the drift nobody was told about is posted
    told, clock = scheduled_drift(services, slack_settings(services, fake_slack))
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    told(AT + timedelta(hours=1))
    (message,) = posted(fake_slack)
    assert "*team*" in message


def test_no_drift_posts_nothing(services, fake_slack, monkeypatch) -> None:
    run_at, clock = scheduled_drift(services, slack_settings(services, fake_slack))
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    texts, _ = services.classifiers.training_data("category")
    add_events(services, texts[:40])  # events like the history
    run = run_at(AT)
    assert run.outcome == "ok" and run.detail["category"]["should_retrain"] is False
    assert posted(fake_slack) == []
    with session_scope(services.sessions) as session:
        assert [r.outcome for r in repo.list_job_runs(session=session, name="drift")] == ["ok"]


def test_the_reminder_interval_is_a_setting(
        services, fake_slack, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRIAGEBOT_DRIFT_REMINDER_HOURS: an unchanged drift comes back after that many hours,
    and the message says when."""
    monkeypatch.setattr(services.settings, "drift_reminder_hours", 6.0)
    run_at, clock = scheduled_drift(services, slack_settings(services, fake_slack))
    monkeypatch.setattr(jobs, "utcnow", lambda: clock[0])
    add_events(services, OFF_TOPIC)

    run_at(AT)
    assert len(posted(fake_slack)) == 1
    assert "a reminder after 6 hours if it lasts" in posted(fake_slack)[0]
    run_at(AT + timedelta(hours=5))
    assert len(posted(fake_slack)) == 1  # unchanged, and not yet 6 hours
    run_at(AT + timedelta(hours=6))
    assert len(posted(fake_slack)) == 2  # the reminder
    assert "a reminder after 6 hours" in posted(fake_slack)[-1]


def test_the_reminder_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="drift_reminder_hours"):
        Settings(_env_file=None, drift_reminder_hours=0)
