"""One set of real services (embedded samples) and one fake Slack Web API per session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.helpers import SECRET

ADMIN = "UADMIN"
CHANNEL_MODES = {"CALERTS": "alerts", "CHELP": "helpdesk", "COFF": "off"}


@pytest.fixture(scope="session")
def fake_slack() -> Iterator[FakeSlackAPI]:
    fake = FakeSlackAPI().start()
    fake.private_channels.add("CPRIV")
    yield fake
    fake.stop()


def make_settings(data_dir: Path, api_url: str, **overrides: Any) -> Any:
    from bot.config import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'triagebot.db'}",
        "slack_bot_token": "xoxb-test",
        "slack_signing_secret": SECRET,
        "slack_api_url": api_url,
        "scheduler_enabled": False,
        "sync_seconds": 0,  # tests/bot/test_sync.py drives the sync itself
        "admin_users": ADMIN,
        "channel_modes": CHANNEL_MODES,
        "default_channel_mode": "off",
        "workers": 2,
        "load_samples": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def slack_services(tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlackAPI) -> Any:
    """Real services on a temp data folder with the samples loaded (built once)."""
    from bot.app import build_services
    from bot.samples import load_samples

    data_dir = tmp_path_factory.mktemp("slack-data")
    settings = make_settings(data_dir, fake_slack.api_url)
    services = build_services(settings)
    load_samples(services)
    yield services
    services.close()


class SlackHarness:
    """The Starlette app in a TestClient, plus handles on the runtime and the fake."""

    def __init__(self, services: Any, fake: FakeSlackAPI) -> None:
        from starlette.testclient import TestClient

        from bot.server import Runtime, create_http_app

        self.services = services
        self.fake = fake
        self.settings = services.settings
        self.runtime = Runtime(self.settings)
        self.runtime.start(services, background=False)
        self.http_app = create_http_app(self.settings, self.runtime)
        self.bot = self.runtime.components["slack_bot"]
        # Pacing is tested with a fake clock; here it would only slow the suite down.
        self.bot.poster.pacer.interval = 0.0
        self.bot.poster.update_pacer.interval = 0.0
        self.client = TestClient(self.http_app)

    def close(self) -> None:
        self.runtime.stop()  # its alert pipeline would go on calling the stopped stand-in
        self.client.close()
        self.runtime.components["workers"].shutdown(wait=True)


@pytest.fixture(scope="session")
def harness(slack_services: Any, fake_slack: FakeSlackAPI) -> Iterator[SlackHarness]:
    h = SlackHarness(slack_services, fake_slack)
    yield h
    h.close()


@contextmanager
def private_harness(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                    fake_slack: FakeSlackAPI, name: str) -> Iterator[SlackHarness]:
    """A bot on its own copy of the sample data folder, for tests that change its models
    (train, promote, roll back) and must not change them for the other modules."""
    from bot.app import build_services
    from tests.conftest import copy_data_dir

    data_dir = copy_data_dir(sample_data_dir, tmp_path_factory.mktemp(name) / "data")
    services = build_services(make_settings(data_dir, fake_slack.api_url))
    harness = SlackHarness(services, fake_slack)
    try:
        yield harness
    finally:
        harness.close()
        services.close()
