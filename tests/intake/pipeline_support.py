"""Shared scaffolding of the AlertPipeline tests: a fake clock, alert events and a pipeline on
a fresh SQLite database (real schema), whose background flusher never edits on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.events import AlertStatus, Event, EventKind, EventSource

WINDOW = 60  # seconds; the pipeline sweeps expired groups at most every WINDOW / 4


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def alert(name: str, fingerprint: str, channel: str = "") -> Event:
    return Event(
        source=EventSource.ALERTMANAGER,
        kind=EventKind.ALERT,
        text=f"[critical] {name} on host-1",
        title=name,
        labels={"alertname": name, "service": name.lower()},
        status=AlertStatus.FIRING,
        fingerprint=fingerprint,
        channel=channel,
    )


class FakePoster:
    """Slack's chat.postMessage / chat.update, recorded (text only)."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.updates: list[tuple[str, str]] = []

    def post(self, channel: str, text: str, blocks: Any) -> str:
        self.posts.append(text)
        return f"ts-{len(self.posts)}"

    def update(self, channel: str, ts: str, text: str, blocks: Any) -> None:
        self.updates.append((ts, text))


class PipelineStore:
    """A migrated SQLite database and the settings the pipeline reads (CALERTS, WINDOW)."""

    def __init__(self, tmp_path: Path, url: str = "", **settings: Any) -> None:
        from bot.config import Settings
        from bot.store import db

        url = url or f"sqlite:///{tmp_path / 'pipeline.db'}"
        db.upgrade(url)
        self.engine = db.make_engine(url)
        self.sessions = db.make_session_factory(self.engine)
        self.settings = Settings(
            _env_file=None,
            data_dir=tmp_path,
            database_url=url,
            alert_channel="CALERTS",
            group_window_seconds=WINDOW,
            dedup_window_seconds=WINDOW,
            **settings,
        )

    def pipeline(self, *, assistant: Any, poster: Any, clock: FakeClock, **options: Any) -> Any:
        from bot.alert_pipeline import AlertPipeline

        return AlertPipeline(
            settings=self.settings,
            sessions=self.sessions,
            assistant=assistant,
            poster=poster,
            clock=clock,
            update_interval=1e9,  # the background flusher never edits: only flush(force=True)
            **options,
        )

    def close(self) -> None:
        self.engine.dispose()
