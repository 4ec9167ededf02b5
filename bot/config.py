"""Settings: the only module that reads the environment.

Every setting is ``TRIAGEBOT_<NAME>`` except Slack's own variable names. Every field
must be documented in ``.env.example`` (a test checks it).
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_PUBLIC_API_URL = "https://slack.com/api/"


class ChannelMode(StrEnum):
    ALERTS = "alerts"
    HELPDESK = "helpdesk"
    OFF = "off"


class Settings(BaseSettings):
    """All configuration of one triagebot process."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGEBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
    )

    # --- storage -------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Folder for SQLite, indexes, models.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/triagebot.db"
    )
    load_samples: bool = Field(True, description="Load bundled samples into an empty database.")

    # --- HTTP server ---------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(4, ge=1, le=64, description="Background worker threads for triage.")
    max_body_bytes: int = Field(1_000_000, ge=1024)
    log_level: str = "INFO"
    log_json: bool = False

    # --- models --------------------------------------------------------------------
    embedding_model: str | None = Field(
        None, description="sentence-transformers model name or path; default bundled MiniLM."
    )
    embedding_backend: Literal["torch", "onnx-int8"] = Field(
        "torch", description="torch (sentence-transformers) or onnx-int8 (an int8 ONNX export "
        "run by onnxruntime: ~0.5 GB less memory, short texts 1.6-2.4x faster, ticket-length "
        "texts not; vectors within cosine 0.99).")
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    torch_threads: int = Field(2, ge=1, le=64)
    max_text_chars: int = Field(4000, ge=100)
    redact_pii: bool = Field(True, description="Redact e-mails, phone and card numbers too.")
    redact_extra_patterns: list[str] = Field(
        default_factory=list, description="JSON list of extra regexes to redact."
    )
    exact_index_max: int = Field(50_000, ge=100)
    min_precision: float = Field(0.9, gt=0, le=1)
    promote_min_accuracy_gain: float = 0.0
    promote_min_macro_f1_gain: float = 0.0
    promote_max_coverage_loss: float = Field(
        0.05, ge=0, le=1,
        description="A retrained model answering this much less often is not promoted.")
    min_labels_per_target: int = Field(
        30, ge=2, description="Below this, a target uses zero-shot classification."
    )
    targets: str = Field(
        "category,severity,priority,team", description="Comma list of fields to classify."
    )
    taxonomy_file: Path | None = Field(
        None, description="YAML of target -> {label: description} for zero-shot; "
        "unset: the bundled sample taxonomy."
    )
    novelty_threshold: float | None = Field(
        None, description="Override the data-derived novelty similarity threshold."
    )

    # --- Slack ---------------------------------------------------------------------
    slack_bot_token: str | None = Field(None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_signing_secret: str | None = Field(
        None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET")
    )
    slack_app_token: str | None = Field(None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_api_url: str = Field(SLACK_PUBLIC_API_URL, validation_alias=AliasChoices("SLACK_API_URL"))
    admin_users: str = Field("", description="Comma list of Slack user ids with admin rights.")
    admin_channel: str = Field("", description="Channel id for retrain and drift reports.")
    channel_modes: dict[str, ChannelMode] = Field(
        default_factory=dict, description='JSON: {"C0123": "alerts", "C0456": "helpdesk"}'
    )
    default_channel_mode: ChannelMode = ChannelMode.OFF
    alert_channel: str = Field("", description="Default Slack channel for webhook alerts.")
    routes: list[dict[str, str]] = Field(
        default_factory=list,
        description='JSON list: [{"match": "team=dba-team", "channel": "C0DB"}]',
    )

    # --- webhooks ------------------------------------------------------------------
    webhook_tokens: dict[str, str] = Field(
        default_factory=dict, description='JSON: {"alertmanager": "token", "grafana": "..."}'
    )
    webhook_hmac_secrets: dict[str, str] = Field(default_factory=dict)
    max_alerts_per_call: int = Field(1000, ge=1)
    dedup_window_seconds: int = Field(3600, ge=0)
    group_window_seconds: int = Field(900, ge=0)
    alert_triage_workers: int = Field(
        2, ge=1, le=16, description="Threads that triage new alert groups and post their threads."
    )
    answer_each_alert_name: bool = Field(
        True, description="A thread whose group holds alerts of another name than the first "
        "(Alertmanager group_by: [team], say) gets a reply with that alert's own answer, for "
        "up to 5 names per thread.")
    ask_root_cause_on_resolve: bool = Field(
        True, description="When every alert of a thread has resolved, reply in the thread with "
        "how long it lasted and the button to record its root cause and fix (once per thread).")
    learn_solved_records: bool = Field(
        True, description="Store tickets and incidents that come to /webhooks/generic with a "
        "resolution or root cause as past records (searchable at once, training data).")
    webhook_record_visibility: str = Field(
        "public", description="Who sees those records in answers: public, helpdesk or "
        "private:<channel id>. A record already stored keeps its own.")

    # --- scheduler -----------------------------------------------------------------
    scheduler_enabled: bool = True
    sync_seconds: int = Field(
        60, ge=0, description="How often this process picks up models and indexes changed by "
        "the CLI or another replica (0: never, restart after changes).")
    retrain_cron: str = "0 3 * * *"
    reindex_cron: str = "17 * * * *"
    drift_cron: str = "41 * * * *"
    drift_reminder_hours: float = Field(
        24, gt=0, description="An unchanged drift warning is posted to the admin channel "
        "again after this many hours while it lasts (a changed one at once).")
    runbook_sources: dict[str, Path] = Field(
        default_factory=dict, description='JSON: {"ops": "/srv/runbooks"} re-indexed hourly'
    )
    runbook_urls: dict[str, str] = Field(
        default_factory=dict, description='JSON: {"ops": "https://github.com/acme/runbooks/'
        'blob/main/{path}"}: where each source\'s runbooks are read in a browser, linked '
        "from answers (fields in docs/configuration.md)")

    @field_validator("runbook_urls")
    @classmethod
    def _valid_runbook_urls(cls, value: dict[str, str]) -> dict[str, str]:
        from knowledge.runbook_urls import check_template

        return {source: check_template(template) for source, template in value.items()}

    @field_validator("retrain_cron", "reindex_cron", "drift_cron")
    @classmethod
    def _valid_cron(cls, value: str, info: ValidationInfo) -> str:
        """Fail at start-up, not when ``serve`` registers the job."""
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            name = f"TRIAGEBOT_{info.field_name}".upper()
            raise ValueError(
                f"{name}={value!r} is not a valid 5-field cron expression "
                f"(minute hour day month weekday): {exc}"
            ) from exc
        return value

    @field_validator("webhook_record_visibility")
    @classmethod
    def _known_visibility(cls, value: str) -> str:
        from bot.slack.visibility import is_visibility

        value = value.strip()
        if is_visibility(value):
            return value
        raise ValueError("use public, helpdesk or private:<channel id>")

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'triagebot.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def onnx_dir(self) -> Path:
        """Where the onnx-int8 embedding backend keeps its export of the model."""
        return self.models_dir / "onnx"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def admin_user_ids(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.admin_users.split(",") if u.strip())

    @property
    def target_fields(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.targets.split(",") if t.strip())

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    def mode_for_channel(self, channel: str) -> ChannelMode:
        return self.channel_modes.get(channel, self.default_channel_mode)


def env_names(settings_cls: type[BaseSettings] = Settings) -> set[str]:
    """The environment variable name of every setting (for the .env.example check)."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
        else:
            names.add(f"{prefix}{name}".upper())
    return names
