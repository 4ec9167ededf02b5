"""Settings: every setting documented in .env.example, and .env.example parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import ChannelMode, Settings, env_names

ROOT = Path(__file__).resolve().parents[2]


def _example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_every_setting_is_documented_in_env_example() -> None:
    missing = env_names() - _example_names()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_has_no_unknown_settings() -> None:
    unknown = _example_names() - env_names()
    assert not unknown, f"not a setting: {sorted(unknown)}"


def test_env_example_values_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / ".env.example").read_text()
    for name, value in re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE):
        if value:
            monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.port == 8080
    assert settings.slack_api_url == "https://slack.com/api/"


def test_slack_variables_use_slacks_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("TRIAGEBOT_CHANNEL_MODES", '{"C1": "alerts"}')
    settings = Settings(_env_file=None)
    assert settings.slack_enabled
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.mode_for_channel("C1") is ChannelMode.ALERTS
    assert settings.mode_for_channel("C2") is ChannelMode.OFF


def test_bad_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGEBOT_PORT", "not-a-port")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'triagebot.db').resolve()}"


@pytest.mark.parametrize("name", ["retrain_cron", "reindex_cron", "drift_cron"])
@pytest.mark.parametrize("bad", ["every hour", "61 * * * *", "0 3 * * * *", "0 3 * *"])
def test_bad_cron_is_rejected_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str, bad: str
) -> None:
    env = f"TRIAGEBOT_{name.upper()}"
    monkeypatch.setenv(env, bad)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    (error,) = err.value.errors()
    assert error["loc"] == (name,)
    assert env in error["msg"] and repr(bad) in error["msg"] and "cron" in error["msg"]


def test_valid_cron_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGEBOT_DRIFT_CRON", "*/5 1-3 * * mon-fri")
    settings = Settings(_env_file=None, retrain_cron="30 2 1 * *")
    assert settings.drift_cron == "*/5 1-3 * * mon-fri"
    assert settings.retrain_cron == "30 2 1 * *"
    assert settings.reindex_cron == "17 * * * *"


@pytest.mark.parametrize(("name", "value", "words"), [
    ("TRIAGEBOT_WEBHOOK_RECORD_VISIBILITY", "private:", "use public, helpdesk or private:"),
    ("TRIAGEBOT_WEBHOOK_RECORD_VISIBILITY", "everyone", "use public, helpdesk or private:"),
    ("TRIAGEBOT_RUNBOOK_URLS", '{"ops": "ftp://x/{path}"}', "must start with http(s)://"),
    ("TRIAGEBOT_RUNBOOK_URLS", '{"ops": "https://x/{name}"}', "unknown field(s) ['name']"),
])
def test_a_setting_no_answer_could_use_is_rejected_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    assert words in str(err.value)


def test_a_usable_record_visibility_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGEBOT_WEBHOOK_RECORD_VISIBILITY", " private:C0HELP ")
    assert Settings(_env_file=None).webhook_record_visibility == "private:C0HELP"
