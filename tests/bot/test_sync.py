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
    """Ids of the jobs ``start_scheduler`` (what `serve` calls once ready) registers with
    these settings; empty when it starts no scheduler at all."""
    from types import SimpleNamespace

    from bot.config import Settings
    from bot.jobs import start_scheduler

    settings = Settings(_env_file=None, **settings_values)
    services = SimpleNamespace(classifiers=SimpleNamespace(retrain_needed={}))
    scheduler = start_scheduler(SimpleNamespace(settings=settings, services=services))
    if scheduler is None:
        return set()
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
    assert scheduled_job_ids(scheduler_enabled=False, sync_seconds=0) == set()  # no thread


def test_replica_on_its_own_volume_embeds_only_what_changed(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    """Per-pod volumes, one database: another replica's import, in-place update and delete
    reach this replica's index by embedding only those rows, not the whole history."""
    import sqlite3

    from bot.app import build_services
    from bot.config import Settings
    from bot.store.db import session_scope
    from bot.store.models import Incident

    shared = copy_data_dir(sample_data_dir, tmp_path / "pod-a")
    own = copy_data_dir(sample_data_dir, tmp_path / "pod-b")  # same files, its own copy
    database_url = f"sqlite:///{shared / 'triagebot.db'}"

    def replica(data_dir: Path):
        return build_services(Settings(_env_file=None, data_dir=data_dir,
                                       database_url=database_url, scheduler_enabled=False))

    server, admin = replica(own), replica(shared)
    try:
        index = server.knowledge.index(INCIDENTS)
        size = index.size
        with session_scope(admin.sessions) as session:
            first, last = session.query(Incident).order_by(Incident.id).all()[::size - 1]
            first_id, last_id, last_external = first.id, last.id, last.external_id
        admin.knowledge.import_records(
            [
                Record(id="INC-SYNC-2", title="grommet service leaks file handles",
                       description="grommet-7 runs out of file descriptors every night",
                       category="capacity"),
                Record(id=last_external, title="flux capacitor overheats",
                       description="the flux capacitor on node-9 overheats under load",
                       category="hardware"),
            ],
            kind="incident", source_name="cli",
        )
        with sqlite3.connect(shared / "triagebot.db") as db:  # e.g. a retention clean-up
            db.execute("DELETE FROM incidents WHERE id = ?", (first_id,))

        assert server.knowledge.sync() == {INCIDENTS: "caught up: 2 embedded, 1 removed"}
        index = server.knowledge.index(INCIDENTS)
        assert index.size == size  # one added, one removed
        assert index.get(first_id) is None
        assert "flux capacitor" in index.get(last_id).text
        vector = server.knowledge.embedder.encode(["grommet-7 out of file descriptors"])[0]
        hits = server.knowledge.search(INCIDENTS, "grommet-7 out of file descriptors", vector)
        assert hits[0].best.title == "grommet service leaks file handles"
        assert server.knowledge.sync() == {}  # in step: nothing to do until the next change
    finally:
        server.close()
        admin.close()


def test_train_each_says_which_target_it_starts(sample_data_dir: Path, tmp_path: Path) -> None:
    """The CLI shows which target is training (minutes each on real data): every target is
    announced before its turn, skipped ones too."""
    from bot.app import build_services
    from bot.config import Settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    services = build_services(Settings(_env_file=None, data_dir=data_dir,
                                       scheduler_enabled=False))
    try:
        started: list[str] = []
        outcomes = services.classifiers.train_each(["category", "team"], actor="test",
                                                   on_start=started.append)
        assert started == ["category", "team"] and len(outcomes) == 2
    finally:
        services.close()
