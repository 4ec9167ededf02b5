"""The alert writer's INSERT: one statement per group commit on a Core connection, the ids
handed back per call and in the order of the events, every column as the ORM stored it.

Real parts: SQLAlchemy on SQLite or PostgreSQL (migrated schema), the pipeline's writer
thread. No Slack: the pipeline here only stores (it does not lead, so nothing is grouped)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.alert_pipeline import _insert_events
from bot.events import AlertStatus
from bot.store.db import session_scope
from bot.store.models import EventRecord
from tests.intake.pipeline_support import FakeClock, PipelineStore, alert

RECEIVED = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def numbered(n: int) -> object:
    return dataclasses.replace(
        alert(f"Alert{n}", f"fp-{n}", channel=f"C{n}"),
        labels={"alertname": f"Alert{n}", "n": str(n), "ünïcode": "värde"},
        status=AlertStatus.RESOLVED if n % 2 else AlertStatus.FIRING,
        group_key=f'{{}}:{{alertname="Alert{n}"}}',
        received_at=RECEIVED + timedelta(seconds=n),
    )


def stored(store: PipelineStore) -> dict[int, EventRecord]:
    with session_scope(store.sessions) as session:
        rows = list(session.scalars(select(EventRecord).order_by(EventRecord.id)))
        for row in rows:
            session.expunge(row)
    return {row.id: row for row in rows}


def test_ids_come_back_per_call_in_the_order_of_the_events(
    database_url: str, tmp_path: Path
) -> None:
    store = PipelineStore(tmp_path, url=database_url)
    try:
        calls = [[numbered(1)], [numbered(2), numbered(3), numbered(4)], [], [numbered(5)]]
        with store.engine.begin() as connection:
            ids = _insert_events(connection, calls)
        with store.engine.begin() as connection:  # a group commit of one call of one event
            (single,) = _insert_events(connection, [[numbered(6)]])
        rows = stored(store)
    finally:
        store.close()
    assert [len(call) for call in ids] == [1, 3, 0, 1]
    flat = [i for call in ids for i in call] + single
    assert flat == sorted(flat) and len(set(flat)) == 6
    assert sorted(rows) == flat
    for n, row_id in enumerate(flat, 1):
        row, event = rows[row_id], numbered(n)
        assert (row.title, row.text, row.fingerprint, row.external_id, row.channel) == (
            event.title, event.text, event.fingerprint, event.external_id, event.channel
        )
        assert row.labels == {"alertname": f"Alert{n}", "n": str(n), "ünïcode": "värde"}
        assert (row.source, row.kind, row.status) == (
            "alertmanager", "alert", "resolved" if n % 2 else "firing"
        )
        assert row.group_key == event.group_key
        assert row.outcome == "queued" and row.author == "" and row.group_id is None
        received = row.received_at if row.received_at.tzinfo else row.received_at.replace(
            tzinfo=UTC
        )
        assert received == event.received_at


def test_a_failed_group_commit_stores_nothing_of_it(database_url: str, tmp_path: Path) -> None:
    """The INSERT and its commit are one transaction: a statement that fails after the
    events were inserted leaves none of them behind (the callers are told, or spooled)."""
    store = PipelineStore(tmp_path, url=database_url)
    try:
        try:
            with store.engine.begin() as connection:
                _insert_events(connection, [[numbered(1)], [numbered(2)]])
                raise RuntimeError("the connection ended mid-transaction")
        except RuntimeError:
            pass
        assert stored(store) == {}
    finally:
        store.close()


def test_concurrent_calls_each_get_their_own_events_ids(
    database_url: str, tmp_path: Path
) -> None:
    """Calls submitted together share group commits; each future holds its events' ids."""
    from bot.alert_pipeline import LEASE_NAME, _when
    from bot.store import repository as repo

    store = PipelineStore(tmp_path, url=database_url)
    clock = FakeClock()
    with session_scope(store.sessions) as session:  # another replica groups: this one stores
        assert repo.acquire_lease(session=session, name=LEASE_NAME, holder="pod-b",
                                  ttl=timedelta(hours=1), now=_when(clock()))
    pipeline = store.pipeline(assistant=None, poster=None, clock=clock, holder="pod-a")
    try:
        assert not pipeline.leader  # no grouping: only the writer's part is looked at
        calls = [[numbered(3 * i + 1), numbered(3 * i + 2)] if i % 2 else [numbered(3 * i + 1)]
                 for i in range(40)]
        futures = [pipeline.submit(events) for events in calls]
        answers = [future.result(timeout=30) for future in futures]
        rows = stored(store)
    finally:
        pipeline.stop()
        store.close()
    assert [len(ids) for ids in answers] == [len(events) for events in calls]
    for events, ids in zip(calls, answers, strict=True):
        assert [rows[i].fingerprint for i in ids] == [e.fingerprint for e in events]
    assert len(rows) == sum(len(events) for events in calls)
