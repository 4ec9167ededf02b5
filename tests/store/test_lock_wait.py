"""Sessions with a short SQLite lock wait (the alert intake's) fail fast on a held write
lock, and the pooled connection they used waits the full 30 s again for everyone else."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.store.db import (
    SQLITE_LOCK_WAIT_MS,
    make_engine,
    make_session_factory,
    session_scope,
    with_lock_wait,
)


def _busy_timeout(factory) -> tuple[int, int]:
    """The lock wait a session gets, and which DBAPI connection it ran on."""
    with session_scope(factory) as session:
        wait = int(session.execute(text("PRAGMA busy_timeout")).scalar_one())
        return wait, id(session.connection().connection.dbapi_connection)


def test_short_lock_wait_fails_fast_and_does_not_leak_to_other_sessions(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{db}")
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    quick = with_lock_wait(sessions, 0.2)

    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"), \
                session_scope(quick) as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    (short, first), (full, second), (again, third) = (
        _busy_timeout(f) for f in (quick, sessions, quick))
    assert first == second == third  # one pooled connection served all three
    assert (short, full, again) == (200, SQLITE_LOCK_WAIT_MS, 200)
    engine.dispose()


def test_other_databases_keep_their_sessions(tmp_path: Path) -> None:
    from sqlalchemy.orm import sessionmaker

    from bot.store.db import make_engine as make

    engine = make("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    factory = sessionmaker(bind=engine)
    assert with_lock_wait(factory, 1.0) is factory
