"""A leader that dies between Slack accepting a group's top message and storing its ts: the
next leader finds that message by its metadata and adopts it instead of posting it twice.

Real parts: the pipeline, SQLAlchemy on SQLite or PostgreSQL, the Slack poster (WebClient,
retries, pacers) against the local fake Web API. Fakes: Slack's side of the HTTP boundary,
and the clock. The "crash window" is made with the fake: it stores the first message posted
(Slack accepted it) and holds back its answer, so the leader never learns the ts; then the
leader dies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.alert_pipeline import LEASE_TTL_SECONDS
from bot.metrics import SLACK_CALLS
from bot.store.db import session_scope
from bot.store.models import AlertGroup, EventRecord
from bot.thread_adoption import CLOCK_MARGIN_SECONDS, GROUP_EVENT_TYPE
from tests.conftest import counter_value
from tests.fakes.slack_api import FakeSlackAPI
from tests.intake.pipeline_support import (
    FakeClock,
    NoveltyTriage,
    PipelineStore,
    alert,
    crash,
    slack_replica,
)

CHANNEL = "CALERTS"


class CrashWindowSlackAPI(FakeSlackAPI):
    """The fake Web API; the first chat.postMessage is stored (Slack accepted it) but its
    answer is held back until ``release`` is set: the poster never learns the ts."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.release = threading.Event()
        self.held = threading.Event()

    def _answer(self, method: str, args: dict[str, Any], ts: str) -> dict[str, Any]:
        body = super()._answer(method, args, ts)
        if method == "chat.postMessage" and not self.held.is_set():
            self.held.set()
            self.release.wait(30)
        return body


@dataclass
class Replicas:
    store: PipelineStore
    fake: CrashWindowSlackAPI
    clock: FakeClock
    pipelines: list[Any]

    def replica(self, holder: str) -> Any:
        pipeline = slack_replica(self.store, self.fake.api_url, self.clock, holder)
        self.pipelines.append(pipeline)
        return pipeline

    def groups(self) -> dict[str, tuple[int, str, int]]:
        """title -> (id, thread_ts, count)"""
        with session_scope(self.store.sessions) as session:
            return {
                g.summary["title"]: (g.id, g.thread_ts, g.count)
                for g in session.scalars(select(AlertGroup))
            }

    def outcomes(self) -> list[str]:
        with session_scope(self.store.sessions) as session:
            return list(session.scalars(select(EventRecord.outcome).order_by(EventRecord.id)))

    def leader_dies_in_the_crash_window(self) -> Any:
        """pod-a groups DiskFull and PodCrash; Slack accepts DiskFull's top message, pod-a
        dies before it hears back (PodCrash's post never started). Returns pod-a."""
        a = self.replica("pod-a")
        a.accept([alert("DiskFull", "fp-1"), alert("PodCrash", "fp-2")])
        assert self.fake.held.wait(15), "the first post never reached Slack"
        deadline = time.monotonic() + 15
        while a._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)  # both grouped; PodCrash's post waits behind DiskFull's
        crash(a)
        (accepted,) = self.fake.top_messages(CHANNEL)
        assert "DiskFull" in accepted["text"]
        assert {title: ts for title, (_, ts, _) in self.groups().items()} == {
            "DiskFull": "",  # Slack has its thread, the database does not
            "PodCrash": "",
        }
        return a


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[Replicas]:
    clock = FakeClock(1_700_000_000.0)
    fake = CrashWindowSlackAPI(clock)
    fake.start()
    store = PipelineStore(tmp_path, url=database_url, alert_triage_workers=1)
    made = Replicas(store, fake, clock, [])
    try:
        yield made
    finally:
        fake.release.set()  # the dead leader's thread wakes up: let it finish before closing
        for pipeline in made.pipelines:
            pipeline.wait_idle(timeout=15)
            pipeline.stop()
        fake.stop()
        store.close()


def take_over(replicas: Replicas) -> Any:
    """Alerts keep coming while nobody leads; pod-b takes the lease once it expired."""
    replicas.clock.now += LEASE_TTL_SECONDS + 1
    b = replicas.replica("pod-b")
    assert b.leader
    assert b.accept([alert("DiskFull", "fp-3"), alert("PodCrash", "fp-4")])
    assert b.wait_idle()
    return b


def history_calls(outcome: str) -> float:
    return counter_value(SLACK_CALLS, method="conversations.history", outcome=outcome)


def test_a_thread_posted_just_before_the_leader_died_is_adopted_not_posted_again(
    replicas: Replicas,
) -> None:
    replicas.leader_dies_in_the_crash_window()
    (first_post,) = replicas.fake.calls_of("chat.postMessage")
    disk_ts = replicas.fake.top_messages(CHANNEL)[0]["ts"]
    ok_before = history_calls("ok")

    b = take_over(replicas)

    groups = replicas.groups()
    disk_id, pod_id = groups["DiskFull"][0], groups["PodCrash"][0]
    # Exactly one thread per group: DiskFull's message adopted, PodCrash's posted once.
    top = replicas.fake.top_messages(CHANNEL)
    assert [m["metadata"]["event_payload"]["group_id"] for m in top] == [disk_id, pod_id]
    assert groups["DiskFull"] == (disk_id, disk_ts, 2)
    assert groups["PodCrash"] == (pod_id, top[1]["ts"], 2)
    assert (b.adopted, b.posts) == (1, 1)
    assert "queued" not in replicas.outcomes()
    # Every top message is tagged with its group; one history search served both groups.
    assert first_post.args["metadata"] == {
        "event_type": GROUP_EVENT_TYPE,
        "event_payload": {"group_id": disk_id},
    }
    (search,) = replicas.fake.calls_of("conversations.history")
    assert search.args["channel"] == CHANNEL and search.args["include_all_metadata"] == "1"
    assert float(search.args["oldest"]) == 1_700_000_000.0 - CLOCK_MARGIN_SECONDS
    assert history_calls("ok") == ok_before + 1

    # The adopted message is edited to the current count, as any changed group is.
    replicas.fake.reset()
    assert b.flush(force=True) >= 1  # PodCrash's too, unless its post showed both alerts
    edits = {c.args["ts"]: c.args["text"] for c in replicas.fake.calls_of("chat.update")}
    assert "2 alert(s)" in edits[disk_ts]
    assert replicas.fake.top_messages(CHANNEL)[0]["text"] == edits[disk_ts]
    assert replicas.fake.top_messages(CHANNEL)[0]["metadata"]["event_payload"] == {
        "group_id": disk_id
    }


def test_a_failed_history_search_posts_the_threads_again(
    replicas: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    replicas.leader_dies_in_the_crash_window()
    replicas.fake.fail("conversations.history", "missing_scope")
    failed_before = history_calls("missing_scope")

    with caplog.at_level(logging.WARNING, logger="bot.thread_adoption"):
        b = take_over(replicas)

    # Better a duplicate than no thread: both groups have a thread of their own, posted by b.
    groups = replicas.groups()
    posted_by_b = [c.args for c in replicas.fake.calls_of("chat.postMessage")][1:]
    assert sorted(a["metadata"]["event_payload"]["group_id"] for a in posted_by_b) == sorted(
        group_id for group_id, _, _ in groups.values()
    )
    assert all(ts and count == 2 for _, ts, count in groups.values())
    assert (b.adopted, b.posts) == (0, 2)
    assert "queued" not in replicas.outcomes()
    # One search for the channel, failed once, counted and warned about once.
    assert len([c for c in replicas.fake.calls if c.method == "conversations.history"]) == 1
    assert history_calls("missing_scope") == failed_before + 1
    (warning,) = [r for r in caplog.records if r.name == "bot.thread_adoption"]
    assert "missing_scope" in warning.getMessage()


def test_new_groups_are_posted_tagged_without_a_history_search(tmp_path: Path) -> None:
    from bot.slack.client import SlackPoster, make_web_client

    clock = FakeClock(1_700_000_000.0)
    fake = FakeSlackAPI(clock=clock).start()
    store = PipelineStore(tmp_path, alert_triage_workers=1)
    poster = SlackPoster(make_web_client("xoxb-test", fake.api_url, timeout=60))
    poster.pacer.interval = 0.0
    pipeline = store.pipeline(assistant=NoveltyTriage(), poster=poster, clock=clock)
    try:
        pipeline.accept([alert("DiskFull", "fp-1"), alert("PodCrash", "fp-2")])
        assert pipeline.wait_idle()
        posts = fake.calls_of("chat.postMessage")
        assert [c.args["metadata"]["event_type"] for c in posts] == [GROUP_EVENT_TYPE] * 2
        assert [c.method for c in fake.calls if c.method != "chat.postMessage"] == []
    finally:
        pipeline.stop()
        fake.stop()
        store.close()


def test_tagged_messages_pages_through_the_history_newest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The poster's history search against the fake, which pages as Slack does."""
    from bot.slack.client import SlackPoster, make_web_client

    monkeypatch.setattr("bot.slack.client.HISTORY_PAGE", 2)
    clock = FakeClock(1_700_000_000.0)
    fake = FakeSlackAPI(clock=clock).start()
    try:
        poster = SlackPoster(make_web_client("xoxb-test", fake.api_url))
        poster.pacer.interval = 0.0
        for n in range(5):
            clock.now += 10
            tag = {"event_type": "t", "event_payload": {"n": n}}
            ts = poster.post("C1", f"message {n}", None, metadata=tag)
            poster.post("C1", "reply", None, thread_ts=ts, metadata=tag)  # not in the history
        poster.post("C1", "untagged", None)
        poster.post("C2", "elsewhere", None, metadata={"event_type": "t", "event_payload": {}})

        found = list(poster.tagged_messages("C1", "t", oldest=1_700_000_020.0))

        assert [payload["n"] for _, payload in found] == [4, 3, 2, 1]  # ts after oldest only
        pages = fake.calls_of("conversations.history")
        assert len(pages) == 3 and [p.args["limit"] for p in pages] == ["2"] * 3
        first = fake.calls_of("conversations.history")[0]
        assert first.args["include_all_metadata"] == "1"
    finally:
        fake.stop()
