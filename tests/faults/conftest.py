"""Fault injection on real parts: one running app (HTTP + webhooks + Slack, fake Web API) on a
private copy of the sample data, and a switch that makes its database unreachable.

The database "goes away" at the connection boundary: the engine's pool is emptied and a
``do_connect`` listener raises the driver's own OperationalError while the switch is off, which
is what SQLAlchemy sees when a SQLite file cannot be opened or a server refuses connections.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tests.conftest import copy_data_dir
from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.helpers import SECRET

TOKEN = "faults-token"
ALERTS = "CALERTS"


class FaultySlackAPI(FakeSlackAPI):
    """The fake Web API, plus real HTTP 5xx answers on demand."""

    def server_error(self, n: int, *, method: str | None = None, status: int = 503) -> None:
        """The next ``n`` calls (of ``method``, or any) get HTTP ``status``."""
        with self._cond:
            self._failures.append((method, status, "service_unavailable", n))


class DatabaseSwitch:
    """Turns the engine's database off (connections refused) and on again."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.down = False
        event.listen(engine, "do_connect", self._connect)

    def _connect(self, *_args: Any) -> None:
        if self.down:
            raise sqlite3.OperationalError("unable to open database file (fault injected)")
        return None  # let the dialect connect as usual

    def off(self) -> None:
        self.down = True
        self.engine.dispose()  # drop pooled connections: the next use must connect

    def on(self) -> None:
        self.down = False

    def remove(self) -> None:
        self.down = False
        event.remove(self.engine, "do_connect", self._connect)


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_settings(data_dir: Path, api_url: str) -> Any:
    from bot.config import Settings

    return Settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'triagebot.db'}",
        scheduler_enabled=False,
        sync_seconds=0,  # tests/bot/test_sync.py drives the sync itself
        load_samples=False,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=api_url,
        alert_channel=ALERTS,
        channel_modes={ALERTS: "alerts", "CHELP": "helpdesk"},
        default_channel_mode="off",
        webhook_tokens={"alertmanager": TOKEN},
        workers=2,
    )


class App:
    """A started runtime with its HTTP client, fake Slack and database switch."""

    def __init__(self, services: Any, fake: FaultySlackAPI) -> None:
        from starlette.testclient import TestClient

        from bot.lifecycle import register_background_parts
        from bot.server import Runtime, create_http_app

        self.services = services
        self.fake = fake
        self.settings = services.settings
        self.runtime = Runtime(self.settings)
        register_background_parts(self.runtime)  # as `triagebot serve` does
        self.http_app = create_http_app(self.settings, self.runtime)
        self.runtime.start(services, background=False)
        self.client = TestClient(self.http_app)
        self.bot = self.runtime.components["slack_bot"]
        self.bot.poster.pacer.interval = 0.0
        self.bot.poster.update_pacer.interval = 0.0
        self.pipeline = self.runtime.components["alert_pipeline"]
        self.pipeline.poster.pacer.interval = 0.0
        self.pipeline.poster.update_pacer.interval = 0.0
        self.spool = self.runtime.components["spool"]
        self.replayer = self.runtime.components["spool_replayer"]
        self.switch = DatabaseSwitch(services.engine)

    def close(self) -> None:
        self.switch.remove()
        self.client.close()
        self.runtime.stop()
        self.runtime.components["workers"].shutdown(wait=True)


@pytest.fixture(scope="package")
def fake() -> Iterator[FaultySlackAPI]:
    server = FaultySlackAPI().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def faults_data_dir(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_data_dir(sample_data_dir, tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture(scope="package")
def app(faults_data_dir: Path, fake: FaultySlackAPI) -> Iterator[App]:
    from bot.app import build_services

    services = build_services(make_settings(faults_data_dir, fake.api_url))
    running = App(services, fake)
    yield running
    running.close()
    running.spool.close()
    services.close()
