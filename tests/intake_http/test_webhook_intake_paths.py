"""The webhook's ways to the alert pipeline: a small body decoded on the event loop, a large
one in a worker thread, the answer while starting up, and a store that fails or is slow.
A stand-in pipeline records what it was given (no database, no models)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import bot.webhooks as webhooks
from bot.config import Settings
from bot.webhooks import INLINE_DECODE_BYTES, webhook_routes
from tests.intake.payloads import alertmanager_payload

TOKEN = "paths-token"


class StandInPipeline:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], str]] = []
        self.outcome: Any = None  # None: ids at once; an exception: fails; "hold": never set
        self.held: list[Future[list[int]]] = []

    def submit(self, events: list[Any]) -> Future[list[int]]:
        self.calls.append((events, threading.current_thread().name))
        done: Future[list[int]] = Future()
        if isinstance(self.outcome, BaseException):
            done.set_exception(self.outcome)
        elif self.outcome == "hold":
            self.held.append(done)
        else:
            done.set_result(list(range(1, len(events) + 1)))
        return done


class StandInRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.ready.set()
        self.components: dict[str, Any] = {}
        self.created = 0

    def alert_pipeline(self) -> StandInPipeline:
        if "alert_pipeline" not in self.components:
            self.created += 1
            self.components["alert_pipeline"] = StandInPipeline()
        return self.components["alert_pipeline"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, StandInRuntime]:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", webhook_tokens={"alertmanager": TOKEN}
    )
    runtime = StandInRuntime(settings)
    client = TestClient(Starlette(routes=webhook_routes(runtime)))
    return client, runtime


def post(client: TestClient, body: bytes) -> Any:
    return client.post(
        "/webhooks/alertmanager",
        content=body,
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )


def small_body() -> bytes:
    body = json.dumps(alertmanager_payload()).encode()
    assert len(body) <= INLINE_DECODE_BYTES
    return body


def large_body() -> bytes:
    payload = alertmanager_payload()
    payload["alerts"][0]["annotations"]["description"] += " padding" * INLINE_DECODE_BYTES
    body = json.dumps(payload).encode()
    assert len(body) > INLINE_DECODE_BYTES
    return body


def test_small_body_on_the_loop_large_body_in_a_worker_thread(setup) -> None:
    client, runtime = setup
    pipeline = runtime.alert_pipeline()
    for body in (small_body(), large_body()):
        answer = post(client, body)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"ok": True, "accepted": 2}
    (small_events, small_thread), (large_events, large_thread) = pipeline.calls
    assert [e.status for e in small_events] == [e.status for e in large_events]
    assert small_events[0].title == large_events[0].title
    assert large_thread != small_thread, "a large body is decoded off the event loop"


def test_first_request_creates_the_pipeline_off_the_loop(setup) -> None:
    client, runtime = setup
    assert post(client, small_body()).status_code == 202
    assert runtime.created == 1
    assert post(client, small_body()).status_code == 202
    assert runtime.created == 1
    first, second = runtime.components["alert_pipeline"].calls
    assert first[1] != second[1], "created in a worker thread, then used from the loop"


def test_not_ready_answers_503_and_stores_nothing(setup) -> None:
    client, runtime = setup
    runtime.ready.clear()
    for body in (small_body(), large_body()):
        answer = post(client, body)
        assert answer.status_code == 503
        assert answer.json()["error"] == "starting up, retry shortly"
    assert "alert_pipeline" not in runtime.components


def test_bad_json_is_400_before_anything_is_stored(setup) -> None:
    client, runtime = setup
    pipeline = runtime.alert_pipeline()
    answer = post(client, b"{not json")
    assert answer.status_code == 400
    assert pipeline.calls == []


def test_a_failed_store_answers_503(setup) -> None:
    client, runtime = setup
    runtime.alert_pipeline().outcome = RuntimeError("database is locked")
    answer = post(client, small_body())
    assert answer.status_code == 503
    assert answer.json()["error"] == "cannot store events now, retry later"


def test_a_store_past_the_timeout_answers_503_and_is_left_to_finish(setup, monkeypatch) -> None:
    client, runtime = setup
    monkeypatch.setattr(webhooks, "ACCEPT_TIMEOUT_SECONDS", 0.2)
    pipeline = runtime.alert_pipeline()
    pipeline.outcome = "hold"
    answer = post(client, small_body())
    assert answer.status_code == 503
    (pending,) = pipeline.held
    # The writer thread sets the result later: the wait's timeout must not have cancelled
    # the future (set_result on a cancelled future raises and would stop the writer).
    assert not pending.cancelled()
    pending.set_result([1, 2])
