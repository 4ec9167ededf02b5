"""Shared scaffolding of the AlertPipeline tests: a fake clock, alert events and a pipeline on
a fresh SQLite database (real schema), whose background flusher never edits on its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.events import AlertStatus, Event, EventKind, EventSource
from bot.triage_types import Triage

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


class NoveltyTriage:
    """A real (if small) answer, so that the top message carries a triage section."""

    def triage(self, event: Event) -> Triage:
        return Triage(query=event.text, novel=True, novelty_score=0.12)


def crash(pipeline: Any) -> None:
    """The process dies: no more grouping, and its lease is not handed over."""
    from bot.alert_pipeline import _release_holder

    pipeline._stopped.set()
    pipeline._step_down("crashed (test)")
    _release_holder(pipeline.holder)  # its process is gone, and its name with it


class FakePoster:
    """Slack's chat.postMessage / chat.update, recorded (text only), and the search of a
    channel's history for tagged messages answered from the posts recorded."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.tags: list[tuple[str, dict[str, Any] | None]] = []  # (channel, metadata) per post
        self.updates: list[tuple[str, str]] = []
        self.blocks: list[Any] = []  # of every post and update, in order
        self.replies: list[tuple[str, str]] = []  # (thread ts, text)

    def post(self, channel: str, text: str, blocks: Any, metadata: Any = None,
             thread_ts: str | None = None) -> str:
        if thread_ts:  # a reply in a thread, not a new thread
            self.replies.append((thread_ts, text))
            return f"reply-{len(self.replies)}"
        self.posts.append(text)
        self.blocks.append(blocks)
        self.tags.append((channel, metadata))
        return f"ts-{len(self.posts)}"

    def update(self, channel: str, ts: str, text: str, blocks: Any, metadata: Any = None) -> None:
        self.updates.append((ts, text))
        self.blocks.append(blocks)

    def tagged_messages(
        self, channel: str, event_type: str, oldest: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for n, (posted_in, meta) in reversed(list(enumerate(self.tags, 1))):
            if posted_in == channel and meta and meta["event_type"] == event_type:
                yield f"ts-{n}", meta["event_payload"]


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


def slack_replica(store: Any, api_url: str, clock: Any, holder: str) -> Any:
    """A pipeline of ``store`` posting through a real Slack client to the fake at ``api_url``
    (no pacing), as one replica named ``holder``."""
    from bot.slack.client import SlackPoster, make_web_client

    poster = SlackPoster(make_web_client("xoxb-test", api_url, timeout=60))
    poster.pacer.interval = poster.update_pacer.interval = 0.0
    return store.pipeline(assistant=NoveltyTriage(), poster=poster, clock=clock, holder=holder)
