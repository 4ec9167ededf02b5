"""bot.samples.load_samples: several replicas starting at once on one empty database."""

from __future__ import annotations

import threading
from pathlib import Path

from bot.app import build_services
from bot.config import Settings
from bot.samples import load_samples
from bot.store import repository as repo
from bot.store.db import session_scope


def test_replicas_starting_together_load_the_samples_once(
    database_url: str, tmp_path: Path
) -> None:
    """Two pods of a fresh install run `samples load --if-empty` at the same moment, each
    with its own data folder: both saw an empty database, both loaded, and the second
    failed on the unique runbook path (its container exited). One loads now; the other
    waits for it and finds the knowledge there."""
    replicas = [
        build_services(Settings(_env_file=None, data_dir=tmp_path / name,
                                database_url=database_url, scheduler_enabled=False))
        for name in ("a", "b")
    ]
    start = threading.Barrier(len(replicas))
    results: dict[int, object] = {}

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = load_samples(replicas[i], if_empty=True)
        except Exception as exc:  # noqa: BLE001 - the assertion shows it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(replicas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    try:
        errors = [r for r in results.values() if isinstance(r, Exception)]
        assert not errors, errors
        assert sorted(r.loaded for r in results.values()) == [False, True]
        skipped = next(r for r in results.values() if not r.loaded)
        assert skipped.reason == "database already holds knowledge"
        with session_scope(replicas[0].sessions) as session:
            models = repo.list_model_versions(session=session)
            assert repo.count_incidents(session=session) == 107
        # one set of first models, not two
        assert len(models) == len(replicas[0].classifiers.targets)
    finally:
        for svc in replicas:
            svc.close()
