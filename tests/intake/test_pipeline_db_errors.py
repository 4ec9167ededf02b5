"""A statement of the grouping leader fails once (its connection ends: a PostgreSQL failover,
a restart, ``pg_terminate_backend``) while the database itself stays up. Nothing may be lost
for good: the alert is grouped, its outcome stored and its thread posted once the database
answers again, without waiting for another replica to take the grouping over.

Real parts: the pipeline, SQLAlchemy on PostgreSQL (the failure is a real terminated
backend), the Slack poster against the local fake Web API. Fakes: Slack's side of the HTTP
boundary and the clock. PostgreSQL only: SQLite has no server connection to end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from bot.store.db import session_scope
from bot.store.models import AlertGroup, EventRecord
from tests.conftest import POSTGRES_URL
from tests.fakes.slack_api import FakeSlackAPI
from tests.intake.pipeline_support import FakeClock, NoveltyTriage, PipelineStore, alert
from tests.postgres import fresh_database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set"),
]

CHANNEL = "CALERTS"


class Leader:
    def __init__(self, url: str, tmp_path: Path) -> None:
        from bot.slack.client import SlackPoster, make_web_client

        self.url = url
        self.fake = FakeSlackAPI().start()
        self.store = PipelineStore(tmp_path, url=url)
        poster = SlackPoster(make_web_client("xoxb-test", self.fake.api_url, timeout=60))
        poster.pacer.interval = poster.update_pacer.interval = 0.0
        self.pipeline = self.store.pipeline(
            assistant=NoveltyTriage(), poster=poster, clock=FakeClock(1_700_000_000.0),
            holder="pod-a",
        )
        assert self.pipeline.leader

    def interrupt(self, table: str, send: Any) -> None:
        """Lock ``table`` against writes from another connection (SHARE: foreign-key checks
        still pass), run ``send``, wait until a statement of
        the pipeline waits for the lock, end that backend, release the lock."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as locker, engine.connect() as admin:
                locker.execute(text("BEGIN"))
                locker.execute(text(f"LOCK TABLE {table} IN SHARE MODE"))
                locker_pid = locker.execute(text("SELECT pg_backend_pid()")).scalar()
                sender = threading.Thread(target=send)
                sender.start()
                deadline, ended = time.monotonic() + 30, 0
                while not ended and time.monotonic() < deadline:
                    ended = admin.execute(text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                        "AND pid NOT IN (pg_backend_pid(), :locker)"
                    ), {"locker": locker_pid}).scalar()
                    time.sleep(0.05)
                locker.execute(text("ROLLBACK"))
                sender.join(30)
                assert ended, f"no statement of the pipeline waited for {table}"
        finally:
            engine.dispose()

    def wait(self, check: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {self.outcomes()}, {self.groups()}")

    def outcomes(self) -> list[str]:
        with session_scope(self.store.sessions) as session:
            return list(session.scalars(select(EventRecord.outcome).order_by(EventRecord.id)))

    def groups(self) -> list[tuple[str, int, bool]]:
        with session_scope(self.store.sessions) as session:
            return [(g.summary["title"], g.count, bool(g.thread_ts))
                    for g in session.scalars(select(AlertGroup).order_by(AlertGroup.id))]

    def close(self) -> None:
        self.pipeline.wait_idle(timeout=10)
        self.pipeline.stop()
        self.fake.stop()
        self.store.close()


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[Leader]:
    with fresh_database(POSTGRES_URL) as url:
        made = Leader(url, tmp_path)
        try:
            yield made
        finally:
            made.close()


def test_a_failed_write_of_the_triage_still_posts_the_thread(leader: Leader) -> None:
    """The new group's triage is stored (triage_answers) just before its thread is posted."""
    leader.interrupt("triage_answers", lambda: leader.pipeline.accept([alert("DiskFull", "fp-1")]))
    leader.wait(lambda: leader.outcomes() == ["new_group"], "the first alert's outcome")
    assert leader.groups() == [("DiskFull", 1, True)]
    (top,) = leader.fake.top_messages(CHANNEL)
    assert top["text"].startswith("[FIRING] DiskFull")


def test_a_failed_write_of_the_outcomes_is_written_again(leader: Leader) -> None:
    """Outcomes and group counts are written in batches (events, alert_groups)."""
    leader.pipeline.accept([alert("DiskFull", "fp-1")])
    leader.wait(lambda: leader.outcomes() == ["new_group"], "the first alert's outcome")
    leader.interrupt("alert_groups", lambda: leader.pipeline.accept([alert("DiskFull", "fp-2")]))
    leader.wait(lambda: leader.outcomes() == ["new_group", "grouped"], "the second outcome")
    assert leader.groups() == [("DiskFull", 2, True)]
    assert len(leader.fake.top_messages(CHANNEL)) == 1


def test_a_failed_write_of_a_new_group_opens_it_on_the_next_try(leader: Leader) -> None:
    """A new group is stored (alert_groups) when its first alert is grouped; the second
    alert of the same notification must not open it in its place and leave the first
    uncounted."""
    both = [alert("DiskFull", "fp-1"), alert("DiskFull", "fp-2")]
    leader.interrupt("alert_groups", lambda: leader.pipeline.accept(both))
    leader.wait(lambda: leader.outcomes() == ["new_group", "grouped"], "both outcomes")
    assert leader.groups() == [("DiskFull", 2, True)]
    (top,) = leader.fake.top_messages(CHANNEL)
    assert top["text"].startswith("[FIRING] DiskFull")
