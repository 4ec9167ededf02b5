"""A named lease held for the whole of a task, renewed while the task runs.

Scheduled jobs, App Home admin tasks and the sample loader each run on one replica at a time.
A lease with a short TTL, renewed every quarter of it from a background thread, frees itself
within that TTL when its process dies (OOMKilled in a retrain), instead of holding the task
for as long as the longest run could take.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.store import repository as repo
from bot.store.db import session_scope

log = logging.getLogger(__name__)


@contextmanager
def held_lease(
    sessions: sessionmaker[Session], name: str, holder: str, ttl: timedelta,
    *, now: datetime | None = None,
) -> Iterator[bool]:
    """Yield True while ``holder`` holds lease ``name`` (renewed meanwhile, released on exit),
    or False at once, holding nothing, when another holder has it."""
    with session_scope(sessions) as session:
        taken = repo.acquire_lease(session=session, name=name, holder=holder, ttl=ttl, now=now)
    if not taken:
        yield False
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(ttl.total_seconds() / 4):
            try:
                with session_scope(sessions) as session:
                    repo.acquire_lease(session=session, name=name, holder=holder, ttl=ttl)
            except Exception as exc:  # noqa: BLE001 - tried again; at worst it expires
                log.warning("cannot renew the lease %s: %s", name, exc)

    renewer = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        done.set()
        renewer.join()
        with session_scope(sessions) as session:
            repo.release_lease(session=session, name=name, holder=holder)
