"""A running HTTP app with webhooks and Slack (pointed at a local stand-in) on sample data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import copy_data_dir
from tests.fakes.slack_api import FakeSlackAPI

TOKEN = "am-token"
GRAFANA_SECRET = "grafana-hmac"
CHANNEL = "CALERTS"


@pytest.fixture(scope="package")
def fake() -> Iterator[FakeSlackAPI]:
    server = FakeSlackAPI().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def harness(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake: FakeSlackAPI):
    from bot.app import build_services
    from bot.config import Settings
    from bot.server import Runtime, create_http_app

    data_dir = copy_data_dir(sample_data_dir, tmp_path_factory.mktemp("webhooks") / "data")
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        scheduler_enabled=False,
        sync_seconds=0,  # tests/bot/test_sync.py drives the sync itself
        slack_bot_token="xoxb-test",
        slack_signing_secret="s",
        slack_api_url=fake.api_url,
        alert_channel=CHANNEL,
        webhook_tokens={"alertmanager": TOKEN, "generic": TOKEN},
        webhook_hmac_secrets={"grafana": GRAFANA_SECRET},
        max_body_bytes=200_000,
        max_alerts_per_call=500,
    )
    services = build_services(settings)
    runtime = Runtime(settings)
    runtime.start(services, background=False)
    client = TestClient(create_http_app(settings, runtime))
    pipeline_holder: dict[str, Any] = {}

    def pipeline() -> Any:
        if "p" not in pipeline_holder:
            pipeline_holder["p"] = runtime.components["alert_pipeline"]
            pipeline_holder["p"].poster.pacer.interval = 0.0
            pipeline_holder["p"].poster.update_pacer.interval = 0.0
        return pipeline_holder["p"]

    yield client, services, pipeline
    runtime.stop()  # its pipeline's threads would go on calling the stopped Slack stand-in
    runtime.components["workers"].shutdown(wait=True)
    client.close()
    services.close()


