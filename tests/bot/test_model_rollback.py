"""ClassifierService.rollback from a named version: two at once (a double click handled by
two workers) go back one step, not two."""

from __future__ import annotations

import threading

import pytest

from bot.classification import NotActiveError
from bot.store import repository as repo
from bot.store.db import session_scope


def test_two_rollbacks_from_the_same_version_at_once_go_back_one_step(services) -> None:
    classifiers = services.classifiers
    first = classifiers.active_versions()["category"]
    middle = classifiers.train("category", actor="test", force=True).version
    newest = classifiers.train("category", actor="test", force=True).version
    assert classifiers.active_versions()["category"] == newest

    start = threading.Barrier(2)
    results: list[str] = []

    def click() -> None:
        start.wait(10)
        try:
            results.append(classifiers.rollback("category", actor="UADMIN", expected=newest))
        except NotActiveError as exc:
            results.append(f"refused: {exc}")

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and results.count(middle) == 1
    (refused,) = [r for r in results if r != middle]
    assert f"`{newest}` is no longer the active version (`{middle}` is" in refused
    assert classifiers.active_versions()["category"] == middle
    with session_scope(services.sessions) as session:
        assert repo.get_active_model(session=session, target="category").version == middle
        statuses = {v.version: v.status
                    for v in repo.list_model_versions(session=session, target="category")}
    assert statuses == {first: "retired", middle: "active", newest: "rolled_back"}

    # without a version (the CLI), a rollback goes one step back from whatever is active
    assert classifiers.rollback("category", actor="cli") == first
    with pytest.raises(ValueError, match="no earlier promoted version"):
        classifiers.rollback("category", actor="cli")


def test_two_replicas_rolling_back_at_once_go_back_one_step(database_url: str,
                                                            tmp_path) -> None:
    """The same double click handled by two replicas (each its own process state, one
    database): on PostgreSQL the active row's lock, not a Python lock, must make the second
    wait and then refuse, naming the version that is active by then."""
    from bot.app import build_services
    from bot.config import Settings
    from bot.samples import load_samples

    def replica(name: str):
        return build_services(Settings(_env_file=None, data_dir=tmp_path / name,
                                       database_url=database_url, scheduler_enabled=False))

    a = replica("a")
    b = None
    try:
        load_samples(a)
        middle = a.classifiers.train("category", actor="test", force=True).version
        newest = a.classifiers.train("category", actor="test", force=True).version
        b = replica("b")  # loads what is active now: newest
        b.classifiers.sync()
        assert b.classifiers.active_versions()["category"] == newest

        start = threading.Barrier(2)
        results: list[str] = []

        def click(services) -> None:
            start.wait(10)
            try:
                results.append(services.classifiers.rollback("category", actor="UADMIN",
                                                             expected=newest))
            except NotActiveError as exc:
                results.append(f"refused: {exc}")

        threads = [threading.Thread(target=click, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(results, key=len)[0] == middle, results
        (refused,) = [r for r in results if r != middle]
        assert f"`{newest}` is no longer the active version (`{middle}` is" in refused
        with session_scope(a.sessions) as session:
            assert repo.get_active_model(session=session, target="category").version == middle
            rolled = [v.version for v in repo.list_model_versions(session=session,
                                                                   target="category")
                      if v.status == "rolled_back"]
        assert rolled == [newest]
    finally:
        a.close()
        if b is not None:
            b.close()
