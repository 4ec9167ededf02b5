"""Scheduled jobs: retrain, re-index runbook sources, drift check, housekeeping.

APScheduler 3 runs the triggers in each replica, but every run first takes a lease row in
the database, so two runs of a job never overlap, and records the fire time it was scheduled
for (its slot), so with several replicas each slot runs once even when the job is over before
the next replica's trigger fires. Missed runs coalesce into one. Every run is recorded in
``job_runs`` with its outcome; ``triagebot jobs run NAME`` runs the same code by hand, at once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot.leases import held_lease
from bot.metrics import JOB_RUNS
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import JobRun, SlackEventSeen

log = logging.getLogger(__name__)

# A job run's lease, renewed every quarter of it while the job runs (bot.leases): a replica
# killed in a job (OOMKilled in a retrain) frees it within this time instead of an hour.
RUN_LEASE_TTL = timedelta(minutes=2)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
# A fire time missed by this much (the replica was busy or starting) still runs, late.
MISFIRE_GRACE = timedelta(hours=1)
# A model trained on other embeddings is retrained this long after start (not during it).
RETRAIN_AFTER_START = timedelta(seconds=30)


def job_retrain(services: Any, notify: Callable[..., None] | None = None) -> dict[str, Any]:
    """Retrain every target from labels + feedback; report promotions to the admins."""
    results = services.classifiers.train_all(actor="scheduler")
    summary: dict[str, Any] = {"promoted": [], "rejected": [], "skipped": []}
    for r in results:
        if isinstance(r, str):
            summary["skipped"].append(r)
        elif r.promoted:
            summary["promoted"].append(r.version)
        else:
            summary["rejected"].append(r.version)
    if notify is not None and summary["promoted"]:
        from bot.reports import retrain_report

        text, image = retrain_report(services, results)
        notify(text, image)
    return summary


def job_reindex(services: Any, notify: Callable[..., None] | None = None) -> dict[str, Any]:
    """Re-index every configured runbook source (incremental)."""
    done = {}
    for source, path in services.settings.runbook_sources.items():
        report = services.knowledge.index_runbooks(
            path, source=source, url_template=services.settings.runbook_urls.get(source))
        done[source] = {
            "added": len(report.added),
            "updated": len(report.updated),
            "removed": len(report.removed),
            "unchanged": len(report.unchanged),
        }
    return done


def utcnow() -> datetime:
    """The jobs' clock (tests set it)."""
    return datetime.now(UTC)


def job_drift(services: Any, notify: Callable[..., None] | None = None) -> dict[str, Any]:
    """Compare recent events with each target's training data; warn the admins when it moved.

    The check runs every hour (``TRIAGEBOT_DRIFT_CRON``), and drift lasts until labels and a
    retrain catch up: the admin channel gets one message for the targets whose drift is new
    (another model version, or other checks fired) and a reminder once it has lasted
    ``TRIAGEBOT_DRIFT_REMINDER_HOURS`` (24), not the same warnings every hour. Each target's
    report keeps when its drift was last posted (``alerted``), carried from run to run; a run
    with nowhere to post (no admin channel, `triagebot jobs run drift`) posts nothing and
    marks nothing.
    """
    from bot.drift import check_drift_all, drift_alert, drift_signature

    reminder_hours = services.settings.drift_reminder_hours
    reports = check_drift_all(services)
    now = utcnow()
    with session_scope(services.sessions) as session:
        last = next((run for run in repo.list_job_runs(session=session, name="drift", limit=20)
                     if run.outcome == "ok"), None)
        before = dict(last.detail or {}) if last is not None else {}
    due = []
    for report in reports:
        alerted = (before.get(report["target"]) or {}).get("alerted")
        if alerted:
            report["alerted"] = alerted
        if not report.get("should_retrain") or notify is None:
            continue
        signature = drift_signature(report)
        posted_at = _parse_time(alerted.get("at")) if alerted else None
        if (alerted and {k: alerted.get(k) for k in signature} == signature
                and posted_at is not None
                and now - posted_at < timedelta(hours=reminder_hours)):
            continue  # told already, and nothing changed since
        due.append(report)
    if due and notify is not None:
        try:
            notify(drift_alert(due, reminder_hours), None)
        except Exception:  # the verdicts are still recorded; the next run posts again
            log.exception("cannot post the drift warning to the admin channel")
        else:
            for report in due:
                report["alerted"] = {**drift_signature(report), "at": now.isoformat()}
    return {r["target"]: r for r in reports}


def _parse_time(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def job_housekeeping(services: Any, notify: Callable[..., None] | None = None) -> dict[str, Any]:
    """Forget Slack event ids older than a week (retries come within minutes)."""
    cutoff = datetime.now(UTC) - timedelta(days=7)
    with session_scope(services.sessions) as session:
        deleted = session.query(SlackEventSeen).filter(SlackEventSeen.received_at < cutoff).delete()
    return {"slack_events_forgotten": deleted}


JOBS: dict[str, Callable[..., dict[str, Any]]] = {
    "retrain": job_retrain,
    "reindex": job_reindex,
    "drift": job_drift,
    "housekeeping": job_housekeeping,
}

HOUSEKEEPING_CRON = "7 4 * * *"


def job_crons(settings: Any) -> dict[str, str]:
    """The cron expression (UTC) of every job in :data:`JOBS`, in the same order; the one
    place both the scheduler and ``triagebot jobs list`` read the schedules from."""
    return {
        "retrain": settings.retrain_cron,
        "reindex": settings.reindex_cron,
        "drift": settings.drift_cron,
        "housekeeping": HOUSEKEEPING_CRON,
    }


def run_job(
    name: str,
    services: Any,
    *,
    notify: Callable[..., None] | None = None,
    holder: str = HOLDER,
    now: datetime | None = None,
    slot: datetime | None = None,
) -> JobRun | None:
    """Run one job under its lease. Returns the run record, or None when another replica
    holds the lease or already ran the scheduled fire time ``slot`` (None: run regardless)."""
    if name not in JOBS:
        raise ValueError(f"unknown job {name!r}; known: {', '.join(JOBS)}")
    with held_lease(services.sessions, name, holder, RUN_LEASE_TTL, now=now) as held:
        if not held:
            log.info("job %s is running elsewhere; skipped", name)
            return None
        with session_scope(services.sessions) as session:
            # Runs of this job still "running" lost their lease: their process died.
            session.execute(
                update(JobRun)
                .where(JobRun.name == name, JobRun.finished_at.is_(None))
                .values(outcome="interrupted", finished_at=datetime.now(UTC))
            )
            if slot is not None and _slot_ran(session, name, slot):
                log.info("job %s already ran for its %s schedule; skipped", name,
                         slot.isoformat())
                return None
            run_id = repo.start_job_run(session=session, name=name, holder=holder,
                                        slot=slot).id
        outcome, detail = "ok", {}
        try:
            detail = JOBS[name](services, notify)
        except Exception as exc:
            log.exception("job %s failed", name)
            outcome, detail = "failed", {"error": f"{exc.__class__.__name__}: {exc}"}
        finally:
            with session_scope(services.sessions) as session:
                run = session.get(JobRun, run_id)
                run.finished_at = datetime.now(UTC)
                run.outcome = outcome
                run.detail = _jsonable(detail)
                session.flush()  # an expunged object's changes are not committed
                session.expunge(run)
            JOB_RUNS.labels(job=name, outcome=outcome).inc()
    return run


def _slot_ran(session: Any, name: str, slot: datetime) -> bool:
    """Whether a run of ``name`` for fire time ``slot`` ended (well or not; an interrupted
    one, whose replica died, does not count)."""
    return session.scalar(
        select(JobRun.id)
        .where(JobRun.name == name, JobRun.slot == slot, JobRun.outcome.in_(("ok", "failed")))
        .limit(1)
    ) is not None


def scheduled_slot(trigger: Any, now: datetime) -> datetime | None:
    """The fire time of ``trigger`` that a run starting at ``now`` serves: the latest one at
    or before ``now`` within :data:`MISFIRE_GRACE` (None when there is none). Replicas whose
    clocks differ by seconds agree on it."""
    slot = None
    fire = trigger.get_next_fire_time(None, now - MISFIRE_GRACE)
    while fire is not None and fire <= now:
        slot = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return None if slot is None else slot.astimezone(UTC)


def run_scheduled_job(
    name: str,
    services: Any,
    trigger: Any,
    *,
    notify: Callable[..., None] | None = None,
    holder: str = HOLDER,
    now: datetime | None = None,
) -> JobRun | None:
    """What the scheduler calls: :func:`run_job` for the fire time now due, once across the
    replicas."""
    slot = scheduled_slot(trigger, now or datetime.now(UTC))
    return run_job(name, services, notify=notify, holder=holder, now=now, slot=slot)


def sync_replica(services: Any) -> None:
    """Every replica, every minute: pick up models and indexes changed elsewhere."""
    try:
        services.knowledge.sync()
        services.classifiers.sync()
    except Exception:
        log.exception("sync with the database failed")


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def start_scheduler(runtime: Any) -> Any:
    """Start a background APScheduler with the replica sync (``sync_seconds`` > 0) and, when
    ``scheduler_enabled``, the cron jobs; ``None`` when neither is wanted.

    The sync runs even with the jobs off: a model retrained by an external scheduler
    (`triagebot jobs run retrain` from cron) must still reach this process.
    """
    settings = runtime.settings
    if not (settings.scheduler_enabled or settings.sync_seconds):
        return None
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    services = runtime.services
    notify = admin_notifier(runtime)
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": int(MISFIRE_GRACE.total_seconds())},
    )
    crons = job_crons(settings) if settings.scheduler_enabled else {}
    if settings.sync_seconds:
        scheduler.add_job(
            sync_replica, "interval", seconds=settings.sync_seconds, args=[services], id="sync",
            name="sync", replace_existing=True,
        )
    for name, cron in crons.items():
        trigger = CronTrigger.from_crontab(cron, timezone="UTC")
        scheduler.add_job(
            run_scheduled_job,
            trigger,
            args=[name, services, trigger],
            kwargs={"notify": notify},
            id=name,
            name=name,
            replace_existing=True,
        )
    if settings.scheduler_enabled and services.classifiers.retrain_needed:
        # Trained on other embeddings than this process makes (the embedding model or
        # backend was changed): retrained soon, not at the next nightly slot. Under the job's
        # lease like any run; a replica that comes second finds the data unchanged.
        log.warning("retraining %s on the new embeddings shortly",
                    ", ".join(sorted(services.classifiers.retrain_needed)))
        scheduler.add_job(
            run_job, "date", run_date=datetime.now(UTC) + RETRAIN_AFTER_START,
            args=["retrain", services], kwargs={"notify": notify},
            id="retrain-new-embeddings", name="retrain", replace_existing=True,
        )
    scheduler.start()
    return scheduler


def admin_notifier(runtime: Any) -> Callable[..., None] | None:
    """Posts text (and an optional PNG) to the admin channel, when Slack is configured."""
    settings = runtime.settings
    if not (settings.slack_enabled and settings.admin_channel):
        return None

    from bot.slack.client import SlackPoster, make_web_client

    poster = SlackPoster(make_web_client(settings.slack_bot_token, settings.slack_api_url))

    def notify(text: str, image_path: Any = None) -> None:
        if image_path is not None:
            poster.upload_file(settings.admin_channel, image_path, "Model report", text)
        else:
            poster.post(settings.admin_channel, text, None)

    return notify
