"""Starting the Slack app logs nothing alarming when the tokens come from the environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.conftest import make_settings


def test_no_token_unused_warning_when_slack_bot_token_is_in_the_environment(
    tmp_path: Path, fake_slack: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With SLACK_BOT_TOKEN in the environment (Docker, Helm, systemd), every start logged
    Bolt's "As you gave `client` as well, `token` will be unused.", as if the bot token were
    ignored: Bolt reads the variable by itself beside the client that carries the token."""
    from bot.server import Runtime
    from bot.slack.bolt_app import build_bolt_app

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    runtime = Runtime(make_settings(tmp_path, fake_slack.api_url))
    with caplog.at_level(logging.DEBUG):
        app, _bot = build_bolt_app(runtime)
    assert app.client.token == "xoxb-test"
    assert not [r for r in caplog.records if "will be unused" in r.getMessage()], caplog.text
