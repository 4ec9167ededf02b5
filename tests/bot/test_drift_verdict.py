"""`triagebot models drift` with enough events for a verdict: feedback only decides once
there is enough of it, and every verdict tells the admin what to do next."""

from __future__ import annotations

from bot.drift import check_drift
from bot.store import repository as repo
from bot.store.db import session_scope
from tests.bot.test_drift import OFF_TOPIC, add_events


def judge(services, verdicts: list[bool], target: str = "category") -> None:
    """One answer of the active ``target`` model per verdict, judged by its own person:
    Helpful (right) or a correction of ``target`` (wrong)."""
    version = services.classifiers.active[target].version
    with session_scope(services.sessions) as session:
        for i, right in enumerate(verdicts):
            answer = repo.record_answer(session=session, query=f"disk full on db-{i:02d}",
                                        answer={}, model_versions={target: version})
            if right:
                repo.record_feedback(session=session, answer_id=answer.id, kind="helpful",
                                     user_id=f"U{i}")
            else:
                repo.record_feedback(session=session, answer_id=answer.id, kind="correction",
                                     field=target, value="storage", user_id=f"U{i}")


def familiar_events(services) -> None:
    texts, _ = services.classifiers.training_data("category")
    add_events(services, texts[:40])


def test_one_wrong_click_is_not_a_reason_to_retrain(services) -> None:
    """A single "wrong" click made feedback accuracy 0.00 against the model's 0.78: the
    drift check advised a retrain (and the App Home showed a warning) on one opinion."""
    familiar_events(services)
    judge(services, [False])
    report = check_drift(services, target="category")
    assert report["feedback_judgments"] == 1
    assert report["should_retrain"] is False, report["reason"]
    assert "1 judgment" in report["reason"] and "too few" in report["reason"]


def test_feedback_that_shows_a_worse_model_advises_a_retrain_and_how(services) -> None:
    familiar_events(services)
    judge(services, [True] * 10 + [False] * 20)
    report = check_drift(services, target="category")
    assert report["should_retrain"] is True
    assert "feedback accuracy 0.33" in report["reason"]
    assert "`triagebot train --target category`" in report["reason"]


def test_a_shifted_stream_says_what_to_do_about_it(services) -> None:
    add_events(services, OFF_TOPIC)
    report = check_drift(services, target="category")
    assert report["should_retrain"] is True
    reason = report["reason"]
    assert "embeddings shifted" in reason
    # retraining on the same labels changes nothing: recent events need labels first
    assert "label" in reason.split("embeddings shifted", 1)[1]
    assert "`triagebot train --target category`" in reason


def test_too_few_events_says_how_many_are_needed(services) -> None:
    add_events(services, OFF_TOPIC[:5])
    report = check_drift(services, target="category")
    assert report["should_retrain"] is False
    assert "5 recent events" in report["reason"] and "20" in report["reason"]
