"""AlertPipeline.stop() ends the pipeline's threads: a stopped pipeline calls Slack no more.

Its flush thread outlived stop() and went on editing the top message of every changed group:
once the Slack stand-in of a test had stopped, it logged "chat.update failed" every few
seconds until the end of the run ("--- Logging error ---" after the last test).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.intake.pipeline_support import (
    FakeClock,
    FakePoster,
    NoveltyTriage,
    PipelineStore,
    alert,
)

UPDATE_INTERVAL = 0.05  # the flusher edits changed top messages every 50 ms


def test_stop_ends_the_threads_and_the_edits_of_top_messages(tmp_path: Path) -> None:
    from bot.alert_pipeline import AlertPipeline

    store = PipelineStore(tmp_path)
    poster, clock = FakePoster(), FakeClock()
    pipeline = AlertPipeline(settings=store.settings, sessions=store.sessions,
                             assistant=NoveltyTriage(), poster=poster, clock=clock,
                             update_interval=UPDATE_INTERVAL)
    try:
        pipeline.accept([alert("DiskFull", "fp-1")])
        assert pipeline.wait_idle()
        assert len(poster.posts) == 1
        # a call accepted just before stop() is stored, not dropped
        late = pipeline.submit([alert("DiskFull", "fp-2")])
        pipeline.stop()
        assert late.done() and len(late.result()) == 1

        assert [t.name for t in pipeline.threads() if t.is_alive()] == []
        # a changed group, due for an edit: the flusher of a running pipeline edits it
        (state,) = pipeline.groups.values()
        updates = len(poster.updates)
        state.dirty, clock.now = True, clock.now + 60
        time.sleep(UPDATE_INTERVAL * 10)
        assert len(poster.updates) == updates

        began = time.monotonic()
        with pytest.raises(RuntimeError, match="stopped"):
            pipeline.accept([alert("DiskFull", "fp-3")])
        assert time.monotonic() - began < 1, "a call after stop() must not wait for a writer"
        pipeline.stop()  # again: nothing left to end
    finally:
        pipeline.stop()
        store.close()


def test_stop_ends_the_threads_of_a_pipeline_that_never_led(tmp_path: Path) -> None:
    from bot.alert_pipeline import AlertPipeline

    store, clock = PipelineStore(tmp_path), FakeClock()
    leader = store.pipeline(assistant=NoveltyTriage(), poster=None, clock=clock, holder="pod-a")
    follower = AlertPipeline(settings=store.settings, sessions=store.sessions,
                             assistant=NoveltyTriage(), poster=None, clock=clock, holder="pod-b")
    try:
        assert leader.leader and not follower.leader
        follower.stop()
        assert [t.name for t in follower.threads() if t.is_alive()] == []
    finally:
        leader.stop()
        follower.stop()
        store.close()
