"""A running process picks up index and model changes made by another process."""

from __future__ import annotations

from pathlib import Path

from bot.knowledge_base import INCIDENTS
from knowledge.records import Record
from tests.conftest import copy_data_dir


def test_second_process_sees_imports_and_rollbacks(sample_data_dir: Path, tmp_path: Path) -> None:
    from bot.app import build_services
    from bot.config import Settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False)
    server = build_services(settings)  # the long-running server
    admin = build_services(settings)  # e.g. the CLI on the same data folder
    try:
        size = server.knowledge.sizes()[INCIDENTS]
        admin.knowledge.import_records(
            [
                Record(
                    id="INC-SYNC-1",
                    title="grommet service leaks file handles",
                    description="grommet-7 runs out of file descriptors every night",
                    category="capacity",
                )
            ],
            kind="incident",
            source_name="cli",
        )
        assert server.knowledge.sizes()[INCIDENTS] == size
        assert server.knowledge.sync() == {INCIDENTS: "loaded"}
        assert server.knowledge.sizes()[INCIDENTS] == size + 1
        assert server.knowledge.sync() == {}

        outcome = admin.classifiers.train("category", actor="test", force=True)
        assert server.classifiers.active_versions()["category"] != outcome.version
        assert server.classifiers.sync() is True
        assert server.classifiers.active_versions()["category"] == outcome.version
        admin.classifiers.rollback("category", actor="test")
        assert server.classifiers.sync() is True
        assert server.classifiers.active_versions()["category"] != outcome.version
        assert server.classifiers.sync() is False
    finally:
        server.close()
        admin.close()


def test_broken_artifact_falls_back_to_zero_shot_without_reloading_each_minute(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    from bot.app import build_services
    from bot.config import Settings
    from bot.store import repository as repo
    from bot.store.db import session_scope

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False)
    admin = build_services(settings)
    try:
        version = admin.classifiers.train("category", actor="test", force=True).version
        with session_scope(admin.sessions) as session:
            artifact = Path(repo.get_model_version(session=session, version=version).artifact_path)
    finally:
        admin.close()
    artifact.write_bytes(b"not a skops file")
    server = build_services(settings)
    try:
        loaded = server.classifiers.active["category"]
        assert loaded.kind == "zero-shot"  # still answers, from the taxonomy
        assert server.classifiers.sync() is False  # same versions in the database: no reload
    finally:
        server.close()


def scheduled_job_ids(**settings_values: object) -> set[str]:
    """Ids of the jobs ``start_scheduler`` registers with these settings."""
    from types import SimpleNamespace

    from bot.config import Settings
    from bot.jobs import start_scheduler

    settings = Settings(_env_file=None, **settings_values)
    scheduler = start_scheduler(SimpleNamespace(settings=settings, services=None))
    try:
        return {job.id for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)


def test_sync_runs_even_when_an_external_scheduler_drives_the_jobs() -> None:
    # `triagebot jobs run retrain` from cron promotes a model in the database; the server,
    # whose own jobs are off, must still load it
    assert scheduled_job_ids(scheduler_enabled=False) == {"sync"}
    with_jobs = scheduled_job_ids(scheduler_enabled=True)
    assert {"sync", "retrain", "reindex", "drift"} <= with_jobs
    assert "sync" not in scheduled_job_ids(scheduler_enabled=True, sync_seconds=0)
