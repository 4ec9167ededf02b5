"""Alerts processed out of the order they were received, across replicas: the grouping
leader takes its own alerts at once and the others' at its next poll, and a replica that
lost the database stores its spooled alerts when it is back. An older notification must not
undo a newer one (an alert resolved, then shown firing again).

Real parts: the pipeline, SQLAlchemy on SQLite or PostgreSQL, the Slack poster against the
local fake Web API. Fakes: Slack's side of the HTTP boundary and the clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.alert_pipeline import LEASE_TTL_SECONDS
from bot.events import AlertStatus, Event
from bot.store.db import session_scope
from bot.store.models import AlertGroup, EventRecord
from tests.fakes.slack_api import FakeSlackAPI
from tests.intake.pipeline_support import FakeClock, PipelineStore, alert, crash, slack_replica

CHANNEL = "CALERTS"
RECEIVED = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)


class Replicas:
    def __init__(self, store: PipelineStore, fake: FakeSlackAPI) -> None:
        self.store, self.fake = store, fake
        self.clock = FakeClock(RECEIVED.timestamp())
        self.pipelines: list[Any] = []

    def replica(self, holder: str) -> Any:
        pipeline = slack_replica(self.store, self.fake.api_url, self.clock, holder)
        self.pipelines.append(pipeline)
        return pipeline

    def outcomes(self) -> list[tuple[str, str]]:
        with session_scope(self.store.sessions) as session:
            return [(e.status, e.outcome) for e in
                    session.scalars(select(EventRecord).order_by(EventRecord.id))]

    def group(self) -> AlertGroup:
        with session_scope(self.store.sessions) as session:
            (group,) = session.scalars(select(AlertGroup))
            session.expunge(group)
            return group


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[Replicas]:
    fake = FakeSlackAPI().start()
    store = PipelineStore(tmp_path, url=database_url)
    made = Replicas(store, fake)
    yield made
    for pipeline in made.pipelines:
        pipeline.wait_idle(timeout=15)
        pipeline.stop()
    fake.stop()
    store.close()


def disk_full(status: AlertStatus, received_seconds: float) -> Event:
    return dataclasses.replace(
        alert("DiskFull", "fp-1"), status=status,
        received_at=RECEIVED + timedelta(seconds=received_seconds),
    )


def test_an_older_notification_stored_late_does_not_undo_a_newer_one(
    replicas: Replicas,
) -> None:
    a, b = replicas.replica("pod-a"), replicas.replica("pod-b")
    assert a.leader and not b.leader
    a.accept([disk_full(AlertStatus.FIRING, 0)])
    assert a.wait_idle()
    replicas.clock.now += 10
    a.accept([disk_full(AlertStatus.RESOLVED, 10)])  # the leader groups its own at once
    # pod-b had received a repeat of the firing notification at +5 s; it reaches the
    # database only now (pod-b was cut off and stores its spool, or was slower).
    b.accept([disk_full(AlertStatus.FIRING, 5)])
    a.lead()  # the leader's next poll
    assert a.wait_idle()

    assert replicas.outcomes() == [
        ("firing", "new_group"), ("resolved", "grouped"), ("firing", "duplicate"),
    ]
    group = replicas.group()
    assert group.status == "resolved" and group.count == 2
    assert group.summary["firing"] == 0 and group.summary["resolved"] == 1
    a.flush(force=True)
    (top,) = replicas.fake.top_messages(CHANNEL)
    # one alert, fired then resolved: one alert, not two (its status change is not an alert)
    assert top["text"].startswith("[RESOLVED] DiskFull: 1 alert(s)"), top["text"]

    # pod-a dies; pod-b rebuilds the group from the stored events, in id order: the late
    # firing (stored last) must not make the alert firing again there either.
    crash(a)
    replicas.clock.now += LEASE_TTL_SECONDS + 1
    assert b.lead()
    (state,) = b.groups.values()
    assert state.status == "resolved" and state.firing == set()
    b.accept([disk_full(AlertStatus.RESOLVED, 45)])  # Alertmanager repeats the resolve
    assert b.wait_idle()
    assert replicas.outcomes()[-1] == ("resolved", "duplicate")
