"""A PostgreSQL host that stops answering (a failover in progress, a dropped network path, a
hung server): connections give up within seconds, so webhook alerts are spooled and answered
202 instead of waiting 30 s for a 503 ("cannot store events now") with nothing spooled, and
the intake's one writer thread is not stuck behind a connection attempt that never ends.

The host is a real listening socket on the loopback that accepts connections and never
answers; no PostgreSQL server is needed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot.store import db

pytest.importorskip("psycopg")


@contextmanager
def silent_host() -> Iterator[str]:
    """A URL of a 'PostgreSQL server' that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"postgresql+psycopg://triagebot@127.0.0.1:{listener.getsockname()[1]}/triagebot"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def in_thread(work: Callable[[], object], timeout: float) -> tuple[bool, object, float]:
    """Run ``work`` in a daemon thread; (finished, result or exception, seconds)."""
    out: list[object] = []
    began = time.monotonic()

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(out), (out[0] if out else None), time.monotonic() - began


def test_connecting_to_a_silent_postgres_host_fails_within_seconds() -> None:
    with silent_host() as url:
        engine = db.make_engine(url)
        try:
            done, result, seconds = in_thread(lambda: engine.connect().close(), timeout=30)
            assert done, "the connection attempt was still waiting after 30 s"
            assert isinstance(result, OperationalError), result
            assert seconds < 15
        finally:
            engine.dispose()


def test_an_alert_is_spooled_within_seconds_when_postgres_stops_answering(
    tmp_path: Path,
) -> None:
    from bot.alert_pipeline import AlertPipeline
    from bot.config import Settings
    from bot.spool import Spool
    from tests.intake.pipeline_support import alert

    with silent_host() as url:
        engine = db.make_engine(url)
        spool = Spool(tmp_path / "spool")
        settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url,
                            alert_channel="CALERTS")

        def receive() -> object:
            pipeline = AlertPipeline(settings=settings, sessions=db.make_session_factory(engine),
                                     assistant=None, poster=None, spool=spool)
            try:
                return pipeline.accept([alert("DiskFull", "fp-1")])
            finally:
                pipeline.stop(wait=0)

        try:
            done, accepted, seconds = in_thread(receive, timeout=40)
            assert done, "the alert was neither stored nor spooled after 40 s"
            assert getattr(accepted, "spooled", False), accepted
            assert spool.pending() == 1 and seconds < 25
        finally:
            spool.close()
            engine.dispose()


def test_db_upgrade_against_a_silent_postgres_host_says_so_within_seconds() -> None:
    """`triagebot db upgrade` (and `serve`, which upgrades first) waited forever."""
    with silent_host() as url:
        done, result, seconds = in_thread(lambda: db.upgrade(url), timeout=30)
        assert done, "db upgrade was still waiting after 30 s"
        assert isinstance(result, db.DatabaseUnavailableError), result
        assert "cannot upgrade database" in str(result) and seconds < 15
