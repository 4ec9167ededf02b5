"""Replicas of a release start at once and each runs `triagebot db upgrade`."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import create_engine, inspect

# Each process waits for the same moment, then upgrades: as pods started together.
UPGRADE_AT = """
import sys, time
from bot.store.db import upgrade
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade(sys.argv[1])
"""


def test_upgrades_started_at_once_leave_one_schema_and_no_failure(database_url: str) -> None:
    at = time.time() + 8  # after every interpreter has imported the bot
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADE_AT, database_url, str(at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    failed = [err.strip().splitlines()[-1] for code, err in outcomes if code != 0]
    assert not failed, failed
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"alembic_version", "incidents", "events"} <= tables
        with engine.connect() as conn:
            versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        assert len(versions) == 1  # one head, written once
    finally:
        engine.dispose()
