"""Relevance feedback re-ranks results for repeated queries, and only for those."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.answers import record_answer
from bot.events import Event, EventKind, EventSource
from bot.knowledge_base import RUNBOOKS
from bot.relevance import judgments_from_feedback
from bot.store import repository as repo
from bot.store.db import session_scope
from tests.conftest import copy_data_dir


@pytest.fixture(scope="module")
def services(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from bot.app import build_services
    from bot.config import Settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path_factory.mktemp("rel") / "data")
    svc = build_services(Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False))
    yield svc
    svc.close()


def top_runbook(services, text: str) -> str:
    hits = services.knowledge.search(RUNBOOKS, text, services.embedder.encode_one(text), k=5)
    return hits[0].doc_key


def click(services, text: str, kind: str, reason: str = "") -> None:
    event = Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=text)
    answer_id = record_answer(
        services.sessions, event=event, triage=services.assistant.triage(event), surface="test"
    )
    with session_scope(services.sessions) as session:
        repo.record_feedback(
            session=session, answer_id=answer_id, kind=kind, reason=reason, user_id="U1"
        )
    services.knowledge.relevance.refresh(force=True)


def test_judgments_follow_the_reason() -> None:
    answer = {
        "runbooks": [{"source": "ops", "document_path": "disk.md"}],
        "similar": [{"kind": "incident", "external_id": "INC-1"}],
    }
    assert {
        (j.index, j.doc_key, j.value) for j in judgments_from_feedback("helpful", "", answer)
    } == {
        ("runbooks", "ops:disk.md", 1.0),
        ("incidents", "incident:INC-1", 1.0),
    }
    wrong_runbook = judgments_from_feedback("not_helpful", "wrong_runbook", answer)
    assert [(j.index, j.value) for j in wrong_runbook] == [("runbooks", -1.0)]
    assert judgments_from_feedback("not_helpful", "too_long", answer) == []


def test_rejected_runbook_drops_for_the_repeated_query_only(services) -> None:
    query = "users say the checkout page is slow, p99 latency over 3 seconds since the deploy"
    other = "kafka consumer group email-sender lag keeps growing, messages pile up"
    first = top_runbook(services, query)
    other_before = top_runbook(services, other)
    click(services, query, "not_helpful", "wrong_runbook")
    assert top_runbook(services, query) != first
    # Same alert again with other values: still demoted.
    assert top_runbook(services, query.replace("3 seconds", "4 seconds")) != first
    # An unrelated query is untouched.
    assert top_runbook(services, other) == other_before


def test_confirmed_runbook_stays_first_and_reason_is_shown(services) -> None:
    query = "certificate for api.example.com expires in 5 days"
    first = top_runbook(services, query)
    click(services, query, "helpful")
    hits = services.knowledge.search(RUNBOOKS, query, services.embedder.encode_one(query), k=5)
    assert hits[0].doc_key == first
    assert any("confirmed helpful" in r for r in hits[0].reasons)
