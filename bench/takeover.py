"""Take-over cost: how long a replica needs to rebuild the open alert groups when it takes the
alert-grouping lease (a restart, a rolling update, the leader's crash).

Fills a fresh database through the real AlertPipeline (no Slack, no triage: only grouping and
storage are timed) with ``--alerts`` alerts from ``--problems`` problems, stops that pipeline,
then times the construction of a new one, which takes the lease and restores every open
group (its replay is capped at the newest 50,000 events).

    .venv/bin/python bench/takeover.py [--alerts 20000] [--problems 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.alert_pipeline import AlertPipeline  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.events import AlertStatus, Event, EventKind, EventSource  # noqa: E402
from bot.store import db  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402


class NoTriage:
    def triage(self, event: Event) -> None:
        return None


def storm(alerts: int, problems: int) -> list[Event]:
    return [
        Event(
            source=EventSource.ALERTMANAGER,
            kind=EventKind.ALERT,
            text=f"[critical] Problem{i % problems} firing on 10.0.{i // 250 % 250}.{i % 250}",
            title=f"Problem{i % problems}",
            labels={"alertname": f"Problem{i % problems}", "service": f"svc-{i % problems}"},
            status=AlertStatus.FIRING,
            fingerprint=f"fp-{i}",
        )
        for i in range(alerts)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--postgres", default="", help="admin URL: run on a fresh database")
    args = parser.parse_args()

    with contextlib.ExitStack() as cleanup:
        tmp = Path(tempfile.mkdtemp(prefix="triagebot-takeover-"))
        url = f"sqlite:///{tmp / 'triagebot.db'}"
        if args.postgres:
            url = cleanup.enter_context(fresh_database(args.postgres, prefix="triagebot_bench"))
        db.upgrade(url)
        engine = db.make_engine(url)
        cleanup.callback(engine.dispose)
        sessions = db.make_session_factory(engine)
        settings = Settings(_env_file=None, data_dir=tmp, database_url=url)

        def pipeline(holder: str) -> AlertPipeline:
            return AlertPipeline(
                settings=settings, sessions=sessions, assistant=NoTriage(), poster=None,
                holder=holder,
            )

        first = pipeline("bench-a")
        events = storm(args.alerts, args.problems)
        started = time.perf_counter()
        for i in range(0, len(events), 500):
            first.accept(events[i : i + 500])
        assert first.wait_idle(600), "the first pipeline did not finish grouping"
        fill = time.perf_counter() - started
        first.stop()

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        second = pipeline("bench-b")
        takeover = time.perf_counter() - started
        assert second.leader, "the second pipeline did not take the lease"
        restored = len(second.groups)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        second.stop()

    print("\n| figure | value |\n| --- | --- |")
    print(f"| database | {url.split(':', 1)[0]} |")
    print(f"| alerts stored and grouped (problems) | {args.alerts} ({args.problems}) |")
    print(f"| grouping them through the pipeline took | {fill:.1f} s |")
    print(f"| open groups restored at the take-over | {restored} |")
    print(f"| take-over (lease, restore, replay) took | **{takeover:.2f} s** |")
    print(f"| peak RSS of this process before / after | {rss_before:.0f} / {rss_after:.0f} MB |")


if __name__ == "__main__":
    main()
