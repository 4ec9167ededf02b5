"""AlertPipeline forgets groups once the grouper has expired them (fake clock, real SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.events import Event
from tests.intake.pipeline_support import WINDOW, FakeClock, FakePoster, PipelineStore, alert


class NoTriage:
    def triage(self, event: Event) -> None:
        return None


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[Any]:
    store = PipelineStore(tmp_path)
    made: list[Any] = []

    def make(poster: Any = None) -> tuple[Any, FakeClock]:
        clock = FakeClock()
        made.append(store.pipeline(assistant=NoTriage(), poster=poster, clock=clock))
        return made[-1], clock

    yield make
    for pipeline in made:
        pipeline.stop()
    store.close()


def send(pipeline: Any, event: Event) -> None:
    assert len(pipeline.accept([event])) == 1
    assert pipeline.wait_idle()


def test_expired_groups_are_evicted_and_the_map_shrinks(make_pipeline: Any) -> None:
    pipeline, clock = make_pipeline()
    send(pipeline, alert("DiskFull", "fp-a"))
    (group_a,) = pipeline.groups
    clock.now += WINDOW - 10
    send(pipeline, alert("HighLatency", "fp-b"))
    assert len(pipeline.groups) == 2 and group_a in pipeline.groups  # A is still open

    clock.now += 20  # A: WINDOW + 10 s without an event (expired); B: 20 s (open)
    send(pipeline, alert("PodCrash", "fp-c"))
    assert group_a not in pipeline.groups
    assert len(pipeline.groups) == 2

    # The same alert after expiry opens a new group, as before eviction existed.
    send(pipeline, alert("DiskFull", "fp-a"))
    assert group_a not in pipeline.groups and len(pipeline.groups) == 3


def test_a_group_with_a_pending_update_is_kept_until_flushed(make_pipeline: Any) -> None:
    poster = FakePoster()
    pipeline, clock = make_pipeline(poster)
    send(pipeline, alert("DiskFull", "fp-a"))
    (group_a,) = pipeline.groups
    clock.now += 5
    send(pipeline, alert("DiskFull", "fp-a2"))  # grouped: the top message must be edited
    assert pipeline.groups[group_a].dirty and pipeline.groups[group_a].count == 2

    clock.now += WINDOW + 30
    send(pipeline, alert("PodCrash", "fp-c"))
    assert group_a in pipeline.groups  # expired, but its last count is not shown yet

    assert pipeline.flush(force=True) == 1
    assert poster.updates[-1][0] == "ts-1" and "2 alert(s)" in poster.updates[-1][1]
    clock.now += WINDOW
    send(pipeline, alert("HighLatency", "fp-d"))
    assert group_a not in pipeline.groups


def test_the_top_message_counts_alerts_not_their_status_changes(make_pipeline: Any) -> None:
    from dataclasses import replace

    from bot.events import AlertStatus

    poster = FakePoster()
    pipeline, clock = make_pipeline(poster)
    for n in range(3):
        send(pipeline, alert("DiskFull", f"fp-{n}"))
        clock.now += 1
    for n in range(2):  # two of the three resolve
        send(pipeline, replace(alert("DiskFull", f"fp-{n}"), status=AlertStatus.RESOLVED))
        clock.now += 1
    pipeline.flush(force=True)
    text = poster.updates[-1][1] if poster.updates else poster.posts[-1]
    assert "[FIRING] DiskFull: 3 alert(s): 1 firing, 2 resolved" in text, text
