"""Drift check: nothing to judge on few events, no drift on familiar events, drift on new ones."""

from __future__ import annotations

from bot.drift import (
    answered_by,
    check_drift,
    check_drift_all,
    feedback_verdicts,
    recent_window,
)
from bot.store import repository as repo
from bot.store.db import session_scope

OFF_TOPIC = [
    f"Recipe {i}: fold {i} egg whites into the batter and bake at {160 + i} degrees for 40 minutes"
    for i in range(40)
]


def add_events(services, texts: list[str]) -> None:
    with session_scope(services.sessions) as session:
        for text in texts:
            repo.record_event(session=session, source="cli", kind="message", text=text)


def test_drift_needs_enough_recent_events(services) -> None:
    add_events(services, OFF_TOPIC[:5])
    report = check_drift(services)
    assert report["should_retrain"] is False
    assert "not enough" in report["reason"]


def test_familiar_events_are_not_drift(services) -> None:
    texts, _ = services.classifiers.training_data("category")
    add_events(services, texts[:40])
    report = check_drift(services)
    assert report["recent_events"] == 40
    assert report["should_retrain"] is False, report["reason"]


def test_new_kind_of_events_is_drift_and_says_why(services) -> None:
    add_events(services, OFF_TOPIC)
    report = check_drift(services)
    assert report["should_retrain"] is True
    assert "embeddings shifted" in report["reason"]
    assert report["embedding_p_value"] <= 0.01


class Click:
    def __init__(self, kind: str, field: str = "", reason: str = "", *,
                 answer_id: int | None = None, user_id: str = "") -> None:
        self.kind, self.field, self.reason = kind, field, reason
        self.answer_id, self.user_id = answer_id, user_id


def test_feedback_verdicts_read_only_classification_feedback() -> None:
    clicks = [
        Click("helpful"),
        Click("correction", "category"),
        Click("correction", "team"),
        Click("not_helpful", reason="wrong_category"),
        Click("not_helpful", reason="wrong_runbook"),
        Click("root_cause"),
    ]
    assert feedback_verdicts(clicks, "category") == [True, False, False]


def test_one_person_gives_one_verdict_per_answer() -> None:
    # helpful on the whole answer, then the severity corrected, then corrected again: the
    # severity was wrong once, not right once and wrong twice
    clicks = [
        Click("helpful", answer_id=1, user_id="U1"),
        Click("correction", "severity", answer_id=1, user_id="U1"),
        Click("correction", "severity", answer_id=1, user_id="U1"),
        Click("helpful", answer_id=1, user_id="U2"),  # another person: a verdict of theirs
        Click("helpful", answer_id=2, user_id="U1"),  # another answer
        Click("helpful", answer_id=2, user_id="U1"),
    ]
    assert feedback_verdicts(clicks, "severity") == [False, True, True]
    assert feedback_verdicts(clicks, "category") == [True, True, True]


def test_feedback_judges_only_the_model_version_that_answered(services) -> None:
    # the corrections that led to a retrain must not keep judging the model that replaced
    # the one they corrected: drift would advise a retrain every hour for a week
    with session_scope(services.sessions) as session:
        old, new = (
            repo.record_answer(session=session, query="disk full", answer={},
                               model_versions={"category": version, "team": "team-1"}).id
            for version in ("category-old", "category-new"))
    with session_scope(services.sessions) as session:
        for user in ("U1", "U2", "U3"):
            repo.record_feedback(session=session, answer_id=old, kind="correction",
                                 field="category", value="storage", user_id=user)
        repo.record_feedback(session=session, answer_id=new, kind="helpful")
    window = recent_window(services, days=7)

    def verdicts(target: str, version: str | None) -> list[bool]:
        return feedback_verdicts(answered_by(window.feedback, target, version), target)

    assert verdicts("category", "category-new") == [True]
    assert verdicts("category", "category-old") == [False] * 3
    assert verdicts("team", "team-1") == [True]
    assert len(verdicts("category", None)) == 4  # no version: all of it
    # the drift check judges the active model, which gave none of these answers
    active = services.classifiers.active["category"].version
    assert active not in ("category-old", "category-new")
    assert check_drift(services, target="category", window=window)["feedback_judgments"] == 0


def test_every_target_is_checked_and_named(services) -> None:
    add_events(services, OFF_TOPIC)
    reports = check_drift_all(services)
    assert [r["target"] for r in reports] == list(services.classifiers.targets)
    judged = [r for r in reports if r["reference_texts"] >= 20]
    assert judged and all(r["should_retrain"] for r in judged)
    assert all("embeddings shifted" in r["reason"] for r in judged)
    (only,) = check_drift_all(services, targets=["severity"])
    assert only["target"] == "severity"


def test_the_drift_job_tells_the_admins_which_target_moved(services) -> None:
    from bot.jobs import job_drift

    add_events(services, OFF_TOPIC)
    told: list[str] = []
    result = job_drift(services, notify=lambda text, image: told.append(text))
    moved = [t for t, r in result.items() if r["should_retrain"]]
    assert set(result) == set(services.classifiers.targets) and moved
    (message,) = told  # one message for them all (tests/bot/test_drift_alerts.py)
    for t in moved:
        assert f"• *{t}* (`{result[t]['model_version']}`): {result[t]['finding']}" in message
    assert "*Next step*" in message


def test_a_target_is_judged_on_the_events_it_is_asked_about(services) -> None:
    """Tickets are given no severity and alerts no priority: a flood of off-topic tickets
    moved the severity model's drift verdict although it never saw one of them."""
    with session_scope(services.sessions) as session:
        for text in OFF_TOPIC:
            repo.record_event(session=session, source="generic", kind="ticket", text=text)
    window = recent_window(services, days=7)
    severity = check_drift(services, target="severity", window=window)
    assert severity["recent_events"] == 0 and severity["should_retrain"] is False
    assert "not enough to judge" in severity["reason"]
    priority = check_drift(services, target="priority", window=window)
    assert priority["recent_events"] == 40
    assert priority["reference_texts"] >= 20
    assert priority["should_retrain"] is True, priority["reason"]
