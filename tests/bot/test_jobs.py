"""bot.jobs.job_crons: one schedule per job, read from the settings."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

from bot.config import Settings
from bot.jobs import HOUSEKEEPING_CRON, JOBS, job_crons


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
