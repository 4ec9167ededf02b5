"""tests/leak_guard.py fails the teardown that should have ended a thread of the bot, naming
its owner, and a test that left a handler on the root logger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests import leak_guard
from tests.intake.pipeline_support import FakeClock, PipelineStore


class Node:
    """Stands in for a pytest item: only its chain of nodes is read."""

    def listchain(self) -> list[Any]:
        return [self]


def test_a_thread_started_by_the_bot_must_end_with_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leak_guard, "JOIN_SECONDS", 0.2)
    store, owner = PipelineStore(tmp_path), Node()
    with leak_guard.owning(owner, "fixture 'replica' (module) of tests/x.py"):
        pipeline = store.pipeline(assistant=None, poster=None, clock=FakeClock())
    try:
        report = "\n".join(leak_guard._outliving_threads(owner, None))  # type: ignore[arg-type]
        assert "alert-flush, started by fixture 'replica' (module) of tests/x.py" in report
        assert leak_guard._outliving_threads(owner, None) == []  # type: ignore[arg-type]
    finally:
        pipeline.stop()
        store.close()

    with leak_guard.owning(owner, "test tests/x.py::test_y"):
        pipeline = store.pipeline(assistant=None, poster=None, clock=FakeClock())
    pipeline.stop()
    assert leak_guard._outliving_threads(owner, None) == []  # type: ignore[arg-type]


def test_a_root_handler_left_behind_is_reported_and_removed() -> None:
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        (problem,) = leak_guard._changed_root_handlers()
        assert "root logger's handlers were changed" in problem
        assert handler not in logging.getLogger().handlers
        assert leak_guard._changed_root_handlers() == []
    finally:
        logging.getLogger().removeHandler(handler)
