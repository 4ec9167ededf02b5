"""bot.jobs: one schedule per job, read from the settings; the lease of a job run."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from bot import jobs
from bot.config import Settings
from bot.jobs import HOUSEKEEPING_CRON, JOBS, RUN_LEASE_TTL, job_crons, run_job
from bot.store.db import session_scope
from bot.store.models import JobLease, JobRun

ROOT = Path(__file__).resolve().parents[2]


def test_every_job_has_a_valid_cron_from_the_settings() -> None:
    settings = Settings(
        _env_file=None, retrain_cron="1 2 * * *", reindex_cron="3 * * * *", drift_cron="5 * * * *"
    )
    crons = job_crons(settings)
    assert list(crons) == list(JOBS)
    assert crons == {
        "retrain": "1 2 * * *",
        "reindex": "3 * * * *",
        "drift": "5 * * * *",
        "housekeeping": HOUSEKEEPING_CRON,
    }
    assert HOUSEKEEPING_CRON == "7 4 * * *"
    for cron in crons.values():
        CronTrigger.from_crontab(cron, timezone="UTC")


def test_defaults() -> None:
    assert job_crons(Settings(_env_file=None)) == {
        "retrain": "0 3 * * *",
        "reindex": "17 * * * *",
        "drift": "41 * * * *",
        "housekeeping": "7 4 * * *",
    }


# --- the lease of a run: renewed while it runs, freed soon when its process dies ----------

DEAD_RUN = """
import os, sys, types
from bot.jobs import JOBS, run_job
from bot.store import db

engine = db.make_engine(sys.argv[1])
services = types.SimpleNamespace(sessions=db.make_session_factory(engine))
JOBS["housekeeping"] = lambda services, notify: os._exit(9)  # the pod dies mid-job (OOM)
run_job("housekeeping", services, holder="pod-a")
"""


@pytest.fixture
def job_services(database_url: str):
    from bot.store import db

    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield types.SimpleNamespace(sessions=db.make_session_factory(engine))
    engine.dispose()


def test_a_job_whose_process_died_is_free_to_run_again_within_minutes(
    database_url: str, job_services
) -> None:
    """A replica killed during a job (OOMKilled in a retrain, SIGKILL) kept the job's lease
    for an hour: the scheduled runs were skipped as "running elsewhere", `jobs run` refused,
    and `jobs list` showed the dead run as running for good."""
    dead = subprocess.run([sys.executable, "-c", DEAD_RUN, database_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dead.returncode == 9, dead.stderr
    with session_scope(job_services.sessions) as session:
        lease = session.get(JobLease, "housekeeping")
        (run,) = session.scalars(select(JobRun)).all()
        assert lease is not None and lease.holder == "pod-a" and run.outcome == "running"
        expires = lease.expires_at.replace(tzinfo=lease.expires_at.tzinfo or UTC)
    assert expires - datetime.now(UTC) <= RUN_LEASE_TTL

    later = datetime.now(UTC) + RUN_LEASE_TTL + timedelta(seconds=1)
    again = run_job("housekeeping", job_services, holder="pod-b", now=later)
    assert again is not None and again.outcome == "ok"
    with session_scope(job_services.sessions) as session:
        outcomes = [r.outcome for r in session.scalars(select(JobRun).order_by(JobRun.id))]
    assert outcomes == ["interrupted", "ok"]


def test_a_long_job_keeps_its_lease(job_services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "RUN_LEASE_TTL", timedelta(seconds=1))
    started, finish = threading.Event(), threading.Event()

    def slow(services: object, notify: object) -> dict:
        started.set()
        finish.wait(10)
        return {}

    monkeypatch.setitem(JOBS, "housekeeping", slow)
    first = threading.Thread(target=run_job, args=("housekeeping", job_services),
                             kwargs={"holder": "pod-a"})
    first.start()
    try:
        assert started.wait(10)
        time.sleep(2.5)  # well past the TTL: renewed meanwhile
        assert run_job("housekeeping", job_services, holder="pod-b") is None
    finally:
        finish.set()
        first.join(10)
    assert run_job("housekeeping", job_services, holder="pod-b") is not None


# --- one run per scheduled fire time across replicas --------------------------------------

AT = datetime(2026, 12, 3, 4, 7, tzinfo=UTC)  # housekeeping's daily fire time


def counting_housekeeping(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []
    monkeypatch.setitem(JOBS, "housekeeping", lambda services, notify: ran.append("x") or {})
    return ran


def test_the_slot_is_the_latest_fire_time_within_the_misfire_grace() -> None:
    daily = CronTrigger.from_crontab(HOUSEKEEPING_CRON, timezone="UTC")
    hourly = CronTrigger.from_crontab("17 * * * *", timezone="UTC")
    assert jobs.scheduled_slot(daily, AT) == AT
    assert jobs.scheduled_slot(daily, AT + timedelta(seconds=1.7)) == AT  # a slower replica
    assert jobs.scheduled_slot(daily, AT + timedelta(minutes=59)) == AT  # fired late
    assert jobs.scheduled_slot(daily, AT - timedelta(seconds=1)) is None  # yesterday's: too old
    assert jobs.scheduled_slot(daily, AT + jobs.MISFIRE_GRACE + timedelta(seconds=1)) is None
    five_past = datetime(2026, 12, 3, 5, 16, 59, tzinfo=UTC)
    assert jobs.scheduled_slot(hourly, five_past) == datetime(2026, 12, 3, 4, 17, tzinfo=UTC)
    assert jobs.scheduled_slot(hourly, five_past + timedelta(seconds=1)) == five_past.replace(
        minute=17, second=0)


def test_a_quick_job_runs_once_per_schedule_across_replicas(
    job_services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each replica's trigger fires; the first replica finished (and freed the lease) before
    the second fired, which used to run the job a second time: two drift warnings."""
    ran = counting_housekeeping(monkeypatch)
    trigger = CronTrigger.from_crontab(HOUSEKEEPING_CRON, timezone="UTC")
    first = jobs.run_scheduled_job("housekeeping", job_services, trigger, holder="pod-a",
                                   now=AT + timedelta(milliseconds=40))
    second = jobs.run_scheduled_job("housekeeping", job_services, trigger, holder="pod-b",
                                    now=AT + timedelta(seconds=1.5))
    assert first is not None and first.outcome == "ok" and first.slot is not None
    assert second is None and ran == ["x"]

    # A manual run is not a schedule: it runs at once.
    assert run_job("housekeeping", job_services, holder="pod-b") is not None
    # The next day's fire time is a new slot.
    next_day = jobs.run_scheduled_job("housekeeping", job_services, trigger, holder="pod-b",
                                      now=AT + timedelta(days=1, seconds=2))
    assert next_day is not None and ran == ["x", "x", "x"]
    with session_scope(job_services.sessions) as session:
        slots = [r.slot for r in session.scalars(select(JobRun).order_by(JobRun.id))]
    assert [s is None for s in slots] == [False, True, False]
    assert slots[2].replace(tzinfo=UTC) - slots[0].replace(tzinfo=UTC) == timedelta(days=1)


def test_a_slot_whose_replica_died_runs_again_a_failed_one_does_not(
    job_services, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = counting_housekeeping(monkeypatch)
    other = AT + timedelta(days=1)
    with session_scope(job_services.sessions) as session:
        # pod-a died in the run for AT (its lease has expired); the run for `other` failed.
        session.add(JobRun(name="housekeeping", holder="pod-a", slot=AT, outcome="running"))
        session.add(JobRun(name="housekeeping", holder="pod-a", slot=other, outcome="failed",
                           finished_at=other))
    again = run_job("housekeeping", job_services, holder="pod-b", slot=AT)
    assert again is not None and again.outcome == "ok" and ran == ["x"]
    assert run_job("housekeeping", job_services, holder="pod-b", slot=other) is None
    assert ran == ["x"]
    with session_scope(job_services.sessions) as session:
        outcomes = [r.outcome for r in session.scalars(select(JobRun).order_by(JobRun.id))]
    assert outcomes == ["interrupted", "failed", "ok"]


def test_the_scheduler_runs_each_job_for_its_slot() -> None:
    from types import SimpleNamespace

    scheduler = jobs.start_scheduler(SimpleNamespace(
        settings=Settings(_env_file=None, scheduler_enabled=True, sync_seconds=0),
        services=SimpleNamespace(classifiers=SimpleNamespace(retrain_needed={}))))
    try:
        registered = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
    assert set(registered) == set(JOBS)
    for name, job in registered.items():
        assert job.func is jobs.run_scheduled_job
        assert job.args[0] == name and job.args[2] is job.trigger
        assert job.misfire_grace_time == jobs.MISFIRE_GRACE.total_seconds()
