"""Migrations and repository functions, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select

from bot.store import db
from bot.store import repository as repo
from bot.store.models import Feedback


@pytest.fixture
def factory(database_url: str):
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield db.make_session_factory(engine)
    engine.dispose()


def test_upgrade_creates_schema_and_is_idempotent(database_url: str) -> None:
    db.upgrade(database_url)
    db.upgrade(database_url)  # second run changes nothing and does not fail
    engine = db.make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"incidents", "runbook_chunks", "feedback", "model_versions", "events"} <= tables
    engine.dispose()


def test_incident_upsert_reports_added_updated_unchanged(factory) -> None:
    with db.session_scope(factory) as session:
        row, status = repo.upsert_incident(
            session=session, external_id="INC-1", title="disk full", category="storage"
        )
        assert status == "added" and row.id
    with db.session_scope(factory) as session:
        _, status = repo.upsert_incident(
            session=session, external_id="INC-1", title="disk full", category="storage"
        )
        assert status == "unchanged"
        _, status = repo.upsert_incident(
            session=session, external_id="INC-1", title="disk full", category="database"
        )
        assert status == "updated"
    with db.session_scope(factory) as session:
        assert repo.count_incidents(session=session) == 1
        with pytest.raises(TypeError):
            repo.upsert_incident(session=session, external_id="INC-2", colour="red")


def test_runbook_chunks_replaced_and_deleted_with_document(factory) -> None:
    with db.session_scope(factory) as session:
        doc = repo.save_runbook_document(
            session=session,
            source="ops",
            path="disk.md",
            title="Disk",
            content_hash="a" * 64,
            meta={"service": "node"},
            sections=[(("Disk", "Meaning"), "m"), (("Disk", "Mitigation"), "1. df -h")],
        )
        doc_id = doc.id
    with db.session_scope(factory) as session:
        doc = repo.save_runbook_document(
            session=session,
            source="ops",
            path="disk.md",
            title="Disk",
            content_hash="b" * 64,
            meta={},
            sections=[(("Disk", "Mitigation"), "1. du -xh")],
        )
        assert doc.id == doc_id
        assert [c.text for c in doc.chunks] == ["1. du -xh"]
    with db.session_scope(factory) as session:
        removed = repo.delete_runbook_documents(session=session, ids=[doc_id])
        assert len(removed) == 1
    with db.session_scope(factory) as session:
        assert repo.list_runbook_chunks(session=session) == []


def test_slack_event_seen_only_once(factory) -> None:
    with db.session_scope(factory) as session:
        assert repo.mark_slack_event_seen(session=session, event_id="Ev1") is True
    with db.session_scope(factory) as session:
        assert repo.mark_slack_event_seen(session=session, event_id="Ev1") is False
        assert repo.mark_slack_event_seen(session=session, event_id="Ev2") is True


def test_model_activation_retires_previous(factory) -> None:
    with db.session_scope(factory) as session:
        first = repo.add_model_version(session=session, target="category", version="category-1")
        repo.activate_model(session=session, row=first)
        second = repo.add_model_version(session=session, target="category", version="category-2")
        replaced = repo.activate_model(session=session, row=second)
        assert replaced is not None and replaced.version == "category-1"
    with db.session_scope(factory) as session:
        active = repo.get_active_model(session=session, target="category")
        assert active is not None and active.version == "category-2"
        statuses = {m.version: m.status for m in repo.list_model_versions(session=session)}
        assert statuses == {"category-1": "retired", "category-2": "active"}


def test_lease_is_exclusive_until_expiry(factory) -> None:
    now = datetime.now(UTC)
    with db.session_scope(factory) as session:
        assert repo.acquire_lease(
            session=session, name="retrain", holder="a", ttl=timedelta(minutes=5), now=now
        )
    with db.session_scope(factory) as session:
        assert not repo.acquire_lease(
            session=session, name="retrain", holder="b", ttl=timedelta(minutes=5), now=now
        )
    with db.session_scope(factory) as session:
        later = now + timedelta(minutes=6)
        assert repo.acquire_lease(
            session=session, name="retrain", holder="b", ttl=timedelta(minutes=5), now=later
        )


def test_concurrent_feedback_writers_lose_nothing(factory) -> None:
    with db.session_scope(factory) as session:
        answer = repo.record_answer(session=session, query="disk full", answer={})
        answer_id = answer.id
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(25):
                with db.session_scope(factory) as session:
                    repo.record_feedback(
                        session=session,
                        answer_id=answer_id,
                        kind="helpful",
                        user_id=f"U{worker}",
                        value=str(i),
                    )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session_scope(factory) as session:
        rows = session.scalars(select(Feedback)).all()
        assert len(rows) == 8 * 25
        assert len({(r.user_id, r.value) for r in rows}) == 8 * 25


def test_feedback_counts_each_persons_latest_rating_of_an_answer_once(factory) -> None:
    """The App Home read "50% helpful (1 of 2 rated answers)" when one person clicked
    Helpful then Not helpful on one answer; three people rating one answer were three."""
    with db.session_scope(factory) as session:
        first, second = (repo.record_answer(session=session, query=q, answer={}).id
                         for q in ("disk full", "vpn down"))
        clicks = [(first, "U1", "helpful"), (first, "U1", "not_helpful"),  # changed mind
                  (first, "U2", "helpful"), (first, "U3", "helpful"),
                  (second, "U1", "helpful"), (second, "U1", "helpful")]      # double click
        for answer_id, user, kind in clicks:
            repo.record_feedback(session=session, answer_id=answer_id, kind=kind, user_id=user)
        for user in ("U1", "U2"):
            repo.record_feedback(session=session, answer_id=first, kind="correction",
                                 field="category", value="storage", user_id=user)
    with db.session_scope(factory) as session:
        counts = repo.feedback_counts(session=session)
    assert counts == {"helpful": 3, "not_helpful": 1, "rated_answers": 2, "correction": 2}
