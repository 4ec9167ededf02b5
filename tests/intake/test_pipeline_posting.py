"""AlertPipeline posts new groups' threads off the grouping thread: a slow Slack post holds up
neither grouping nor other channels, and what changes while it is in flight is not lost.

Real parts: SQLite, the Slack poster (WebClient + per-channel pacer) against the local fake
Web API, whose chat.postMessage for one alert name waits on an Event the test releases.
No timing assertions: the tests wait for things to happen (bounded), never compare durations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.events import Event
from tests.fakes.slack_api import Call, FakeSlackAPI
from tests.faults.conftest import wait_until
from tests.intake.pipeline_support import WINDOW, FakeClock, PipelineStore, alert

HELD = "DiskFull"  # chat.postMessage of this alert's group waits for the gate


class GatedSlackAPI(FakeSlackAPI):
    """The fake Web API; posting a message whose text has ``HELD`` waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def _answer(self, method: str, args: dict[str, Any], ts: str) -> dict[str, Any]:
        if method == "chat.postMessage" and HELD in str(args.get("text", "")):
            self.gate.wait(30)  # the call is recorded already: the post is "in flight"
        return super()._answer(method, args, ts)


class RecordingTriage:
    """Records which events were triaged (in which order); no answer."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def triage(self, event: Event) -> None:
        self.seen.append(event.title)


def posted(name: str, channel: str = "CALERTS") -> Callable[[Call], bool]:
    return lambda c: (
        c.method == "chat.postMessage"
        and c.args.get("channel") == channel
        and name in str(c.args.get("text", ""))
    )


class Harness:
    def __init__(self, pipeline: Any, fake: GatedSlackAPI, clock: FakeClock, triage: Any) -> None:
        self.pipeline, self.fake, self.clock, self.triage = pipeline, fake, clock, triage

    def send(self, event: Event) -> int:
        (row_id,) = self.pipeline.accept([event])
        return row_id

    def outcomes(self, *ids: int) -> dict[int, str]:
        from sqlalchemy import select

        from bot.store.db import session_scope
        from bot.store.models import EventRecord

        with session_scope(self.pipeline.sessions) as session:
            rows = session.execute(
                select(EventRecord.id, EventRecord.outcome).where(EventRecord.id.in_(ids))
            ).all()
        return {row_id: outcome for row_id, outcome in rows}

    def wait_outcomes(self, expected: dict[int, str]) -> None:
        wait_until(lambda: self.outcomes(*expected) == expected, what=f"outcomes {expected}")

    def hold_first_post(self) -> int:
        """Send the first HELD alert and wait until its thread's post is in flight."""
        row_id = self.send(alert(HELD, "fp-a1"))
        self.fake.wait_for(posted(HELD), timeout=15)
        return row_id


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    from bot.slack.client import SlackPoster, make_web_client

    fake = GatedSlackAPI().start()
    store = PipelineStore(tmp_path, slack_api_url=fake.api_url, alert_triage_workers=2)
    poster = SlackPoster(make_web_client("xoxb-test", fake.api_url, timeout=60))
    poster.pacer.interval = 0.0
    poster.update_pacer.interval = 0.0
    clock, triage = FakeClock(), RecordingTriage()
    pipeline = store.pipeline(assistant=triage, poster=poster, clock=clock)
    try:
        yield Harness(pipeline, fake, clock, triage)
    finally:
        fake.gate.set()
        pipeline.wait_idle()
        pipeline.stop()
        fake.stop()
        store.close()


def test_a_slow_post_holds_up_neither_grouping_nor_other_channels(harness: Harness) -> None:
    a1 = harness.hold_first_post()
    a2 = harness.send(alert(HELD, "fp-a2"))
    b1 = harness.send(alert("PodCrash", "fp-b1", channel="CDB"))
    b2 = harness.send(alert("PodCrash", "fp-b2", channel="CDB"))

    # While DiskFull's thread is being posted, later events are grouped and recorded, and
    # the new group in another channel is triaged and posted.
    harness.fake.wait_for(posted("PodCrash", channel="CDB"), timeout=15)
    harness.wait_outcomes({a2: "grouped", b1: "new_group", b2: "grouped"})
    assert harness.triage.seen == [HELD, "PodCrash"]
    # The first event stays "queued" until its thread exists (a restart would re-queue it).
    assert harness.outcomes(a1) == {a1: "queued"}

    harness.fake.gate.set()
    assert harness.pipeline.wait_idle()
    assert harness.outcomes(a1) == {a1: "new_group"}
    assert harness.pipeline.posts == 2
    assert all(state.thread_ts for state in harness.pipeline.groups.values())


def test_events_during_the_first_post_show_in_the_top_message(harness: Harness) -> None:
    from bot.store.db import session_scope
    from bot.store.models import AlertGroup

    pipeline = harness.pipeline
    harness.hold_first_post()
    ids = [harness.send(alert(HELD, f"fp-a{i}")) for i in (2, 3)]
    harness.wait_outcomes(dict.fromkeys(ids, "grouped"))
    (key,) = pipeline.groups
    # Its window passes meanwhile: the sweep must keep a group whose post is in flight.
    harness.clock.now += 2 * WINDOW
    harness.send(alert("PodCrash", "fp-b1", channel="CDB"))  # opens a group, sweeps
    b2 = harness.send(alert("PodCrash", "fp-b2", channel="CDB"))
    harness.wait_outcomes({b2: "grouped"})
    assert key in pipeline.groups

    harness.fake.gate.set()
    assert pipeline.wait_idle()
    (first,) = harness.fake.calls_of("chat.postMessage")[:1]
    assert HELD in first.args["text"] and "1 alert(s)" in first.args["text"]  # rendered early
    state = pipeline.groups[key]
    assert state.thread_ts and state.dirty

    assert pipeline.flush(force=True) >= 1
    (edit,) = [c for c in harness.fake.calls_of("chat.update") if c.args["ts"] == state.thread_ts]
    assert "3 alert(s)" in edit.args["text"]
    assert not state.dirty
    with session_scope(pipeline.sessions) as session:
        assert session.get(AlertGroup, state.row_id).thread_ts == state.thread_ts


def test_wait_idle_waits_for_an_in_flight_post(harness: Harness) -> None:
    pipeline = harness.pipeline
    a1 = harness.hold_first_post()
    a2 = harness.send(alert(HELD, "fp-a2"))
    harness.wait_outcomes({a2: "grouped"})  # every event is grouped; one post is in flight

    assert not pipeline.wait_idle(timeout=0.2)
    assert pipeline.posts == 0

    harness.fake.gate.set()
    assert pipeline.wait_idle()
    assert pipeline.posts == 1 and harness.outcomes(a1) == {a1: "new_group"}
