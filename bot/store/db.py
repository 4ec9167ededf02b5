"""Engine and session factory, and schema upgrades with Alembic.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and read-then-write
transactions start with ``BEGIN IMMEDIATE`` so that several writers queue instead of
failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

SQLITE_LOCK_WAIT_MS = 30_000  # how long a SQLite transaction waits for another writer
# libpq connection parameters of PostgreSQL, unless the URL sets them: a host that stops
# answering (a failover, a dropped network path) fails a connection attempt after
# connect_timeout seconds and a connection in use once its data stays unacknowledged for
# tcp_user_timeout ms (or its keepalives go unanswered), instead of waiting for the kernel's
# TCP timeouts (minutes to hours): then the intake spools alerts instead of answering 503
# after 30 s with nothing spooled.
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 5,
    "tcp_user_timeout": 15_000,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
LOCK_WAIT_OPTION = "triagebot_sqlite_lock_wait_ms"


class DatabaseUnavailableError(RuntimeError):
    """The database cannot be reached or opened."""


class SchemaTooNewError(RuntimeError):
    """A newer release migrated the database in a way this release cannot run on."""


def make_engine(url: str) -> Engine:
    """Create an engine with the pragmas and pool settings each backend needs."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_LOCK_WAIT_MS / 1000,
                                                  "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not pysqlite, emit BEGIN so we can choose IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_WAIT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            _record.info[LOCK_WAIT_OPTION] = SQLITE_LOCK_WAIT_MS

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            # A pooled connection may last have served sessions with another lock wait
            # (with_lock_wait): set this session's wait, only when it differs.
            wait_ms = int(conn.get_execution_options().get(LOCK_WAIT_OPTION,
                                                           SQLITE_LOCK_WAIT_MS))
            if conn.info.get(LOCK_WAIT_OPTION) != wait_ms:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
                conn.info[LOCK_WAIT_OPTION] = wait_ms
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args=postgres_connect_args(url))


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    path = make_url(url).database
    return Path(path) if path and path != ":memory:" else None


def postgres_connect_args(url: str) -> dict[str, int]:
    """:data:`POSTGRES_CONNECT_ARGS` less those the URL sets (none for other databases)."""
    if not url.startswith("postgresql"):
        return {}
    given = make_url(url).query
    return {k: v for k, v in POSTGRES_CONNECT_ARGS.items() if k not in given}


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def with_lock_wait(factory: sessionmaker[Session], seconds: float) -> sessionmaker[Session]:
    """Sessions like ``factory``'s whose SQLite transactions wait at most ``seconds`` for
    another writer's lock instead of 30 s, then fail with "database is locked" (an
    ``OperationalError``). For callers with a better plan than waiting: the alert intake
    spools. Other databases get ``factory`` back: their writers lock rows, not the file."""
    engine = factory.kw["bind"]
    if engine.dialect.name != "sqlite":
        return factory
    options = {k: v for k, v in factory.kw.items() if k != "bind"}
    bound = engine.execution_options(**{LOCK_WAIT_OPTION: int(seconds * 1000)})
    return sessionmaker(bind=bound, **options)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str, script_location: str | Path | None = None) -> Config:
    """Alembic's configuration for ``url``, with this release's migrations unless
    ``script_location`` names other ones (a test's older or newer release)."""
    if script_location is None:
        script_location = str(resources.files("bot.store") / "migrations")
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# pg_advisory_lock key of schema upgrades (any constant; "tbot" in ASCII)
MIGRATION_LOCK_KEY = 0x74626F74


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade` did: the revision before (None: there was no schema), the
    revision after, and the migrations it applied, oldest first. ``newer_head`` is set when a
    newer release migrated the database to a revision this release does not know and declared
    it usable by this release: nothing was applied."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]
    newer_head: str | None = None
    release_head: str | None = None

    def describe(self) -> str:
        """One line for people, e.g. "upgraded from revision 0001 to 0002 (1 migration)"."""
        if self.newer_head is not None:
            return (f"schema at revision {self.newer_head} of a newer release, which keeps it "
                    f"usable by this release (revision {self.release_head}): left as is")
        count = f"{len(self.applied)} migration{'s' if len(self.applied) != 1 else ''}"
        if self.before == self.after:
            return f"already up to date at revision {self.after}"
        if self.before is None:
            return f"created the schema at revision {self.after} ({count})"
        return f"upgraded from revision {self.before} to {self.after} ({count})"


def upgrade(url: str, revision: str = "head", *, config: Config | None = None) -> UpgradeResult:
    """Bring the schema up to date (idempotent) and say what was done. One process at a
    time: replicas started together all run it, and without the lock each created the same
    tables (one succeeded, the others failed on "already exists" and their containers
    exited); with it, the first creates the schema and the others find it up to date.

    A schema that a newer release migrated (a revision this release does not know) is left as
    is when that release recorded this release's revision as still compatible (its newer
    migrations only add what this one ignores: ``older_releases_compatible`` in each
    migration), so a rolled-back release starts; otherwise :class:`SchemaTooNewError` says
    which ``db downgrade`` to run with the newer release."""
    config = config or alembic_config(url)
    scripts = ScriptDirectory.from_config(config)
    try:
        with _migration_lock(url):
            before = current_revision(url)
            if before is not None and not _knows(scripts, before):
                return _newer_schema(url, scripts, before)
            command.upgrade(config, revision)
            after = current_revision(url)
            _record_compat(url, scripts, after)
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot upgrade database: {exc.orig}") from exc
    return UpgradeResult(before, after, _revisions_between(config, before, after))


def oldest_compatible_revision(scripts: ScriptDirectory, head: str) -> str:
    """The oldest revision whose release can run on the schema at ``head``: back from
    ``head`` for as long as each migration declares ``older_releases_compatible = True``
    (it only adds nullable columns, indexes or tables, which an older release ignores)."""
    oldest = head
    script = scripts.get_revision(head)
    while (script is not None and isinstance(script.down_revision, str)
           and getattr(script.module, "older_releases_compatible", False)):
        oldest = script.down_revision
        script = scripts.get_revision(oldest)
    return oldest


def _knows(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


@contextmanager
def _one_off_engine(url: str) -> Iterator[Engine]:
    """An engine for one short piece of schema work, with no pool left behind."""
    engine = create_engine(url, poolclass=NullPool, connect_args=postgres_connect_args(url))
    try:
        yield engine
    finally:
        engine.dispose()


def _read_compat(url: str) -> tuple[str, str] | None:
    """(head, oldest compatible revision) recorded by the release that last migrated, or
    None (no record: a release before 0005 migrated it, or the table is gone)."""
    with _one_off_engine(url) as engine, engine.connect() as conn:
        if not inspect(conn).has_table("schema_compat"):
            return None
        row = conn.execute(text(
            "SELECT head, oldest_compatible FROM schema_compat WHERE id = 1")).first()
        return (str(row[0]), str(row[1])) if row is not None else None


def _record_compat(url: str, scripts: ScriptDirectory, head: str | None) -> None:
    """Write which older releases may run on the schema now at ``head`` (when the schema has
    the table: a downgrade below 0005 removed it)."""
    if head is None:
        return
    oldest = oldest_compatible_revision(scripts, head)
    with _one_off_engine(url) as engine, engine.begin() as conn:
        if not inspect(conn).has_table("schema_compat"):
            return
        conn.execute(text("DELETE FROM schema_compat WHERE id = 1"))
        conn.execute(text("INSERT INTO schema_compat (id, head, oldest_compatible, "
                          "updated_at) VALUES (1, :head, :oldest, :at)"),
                     {"head": head, "oldest": oldest, "at": datetime.now(UTC)})


def _newer_schema(url: str, scripts: ScriptDirectory, current: str) -> UpgradeResult:
    """The schema is at ``current``, a revision of a newer release: start on it when that
    release recorded one of this release's revisions as compatible, else say what to do."""
    own_head = scripts.get_current_head()
    compat = _read_compat(url)
    if compat is not None and compat[0] == current and _knows(scripts, compat[1]):
        return UpgradeResult(current, current, (), newer_head=current, release_head=own_head)
    needs = (f"the newer release keeps it usable from revision {compat[1]} on"
             if compat is not None and compat[0] == current
             else "the newer release did not record which older releases may run on it")
    raise SchemaTooNewError(
        f"the database schema is at revision {current}, from a newer release; this release "
        f"knows revisions up to {own_head} and {needs}. To run this release, first run "
        f"`triagebot db downgrade {own_head}` with the newer release (what the newer "
        "migrations added is lost), or restore a backup taken before the upgrade.")


@dataclass(frozen=True)
class DowngradeResult:
    """What :func:`downgrade` did: the revision before and after, and the migrations it
    undid, newest first."""

    before: str | None
    after: str | None
    undone: tuple[str, ...]

    def describe(self) -> str:
        """One line for people, e.g. "downgraded from revision 0004 to 0003 (1 migration
        undone)"."""
        if not self.undone:
            return f"already at revision {self.after}"
        count = f"{len(self.undone)} migration{'' if len(self.undone) == 1 else 's'} undone"
        return f"downgraded from revision {self.before} to {self.after} ({count})"


def downgrade(url: str, revision: str, *, config: Config | None = None) -> DowngradeResult:
    """Take the schema back to ``revision``, the head of the release being rolled back to,
    undoing the newer migrations (what their columns held is lost). Run it with the newer
    release: an older one does not know the newer migrations, and its ``db upgrade`` fails
    with "Can't locate revision" until the schema is back at a revision it knows. Going back
    to no schema at all ("base") is refused: that drops every table."""
    from alembic.util import CommandError

    config = config or alembic_config(url)
    scripts = ScriptDirectory.from_config(config)
    try:
        target = scripts.get_revision(revision)
    except CommandError as exc:
        raise ValueError(f"cannot downgrade: {exc}") from exc
    if target is None:
        raise ValueError("cannot downgrade to no schema (base): that drops every table")
    try:
        with _migration_lock(url):
            before = current_revision(url)
            if before is None:
                raise ValueError("cannot downgrade: the database has no schema")
            command.downgrade(config, target.revision)
            after = current_revision(url)
            _record_compat(url, scripts, after)
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot downgrade database: {exc.orig}") from exc
    except CommandError as exc:
        raise ValueError(f"cannot downgrade to revision {revision}: {exc}") from exc
    return DowngradeResult(before, after,
                           tuple(reversed(_revisions_between(config, after, before))))


def current_revision(url: str) -> str | None:
    """The schema's Alembic revision; None when it has not been created."""
    with _one_off_engine(url) as engine, engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class SchemaStatus:
    """Where the database's schema stands against this release's migrations."""

    current: str | None  # None: no schema yet
    head: str  # the newest revision this release knows
    known: tuple[tuple[str, str], ...]  # (revision, what it does), oldest first
    # the oldest revision whose release may run on the current schema, as recorded by the
    # release that migrated it (None: not recorded, by a release before 0005)
    oldest_compatible: str | None = None

    def describe(self) -> list[str]:
        """Lines for people: the state, then each revision with a mark on the current one."""
        known = {rev for rev, _ in self.known}
        if self.current is None:
            state = f"no schema yet: `triagebot db upgrade` creates it at revision {self.head}"
        elif self.current == self.head:
            state = f"schema at revision {self.current}, this release's newest"
        elif self.current in known:
            state = (f"schema at revision {self.current}; this release's newest is {self.head}: "
                     "`triagebot db upgrade` applies the rest")
        elif self.oldest_compatible in known:
            state = (f"schema at revision {self.current}, from a newer release (this one knows "
                     f"up to {self.head}); that release keeps it usable by releases from "
                     f"revision {self.oldest_compatible} on, so this release runs on it as is")
        else:
            state = (f"schema at revision {self.current}, which this release does not know (a "
                     f"newer release migrated it; this one knows up to {self.head}): run "
                     f"`triagebot db downgrade {self.head}` with the newer release first")
        marks = [f"{'*' if rev == self.current else ' '} {rev}  {doc}" for rev, doc in self.known]
        return [state, *marks]


def schema_status(url: str) -> SchemaStatus:
    """This release's revisions, oldest first, and the database's current one."""
    scripts = ScriptDirectory.from_config(alembic_config(url))
    known = tuple((script.revision, next(iter((script.doc or "").strip().splitlines()), ""))
                  for script in reversed(list(scripts.walk_revisions())))
    try:
        current = current_revision(url)
        compat = _read_compat(url) if current is not None else None
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot read the schema revision: {exc.orig}") from exc
    oldest = compat[1] if compat is not None and compat[0] == current else None
    return SchemaStatus(current, known[-1][0], known, oldest)


def _revisions_between(config: Config, before: str | None, after: str | None) -> tuple[str, ...]:
    """The revisions after ``before`` up to ``after``, oldest first."""
    if after is None or after == before:
        return ()
    scripts = ScriptDirectory.from_config(config)
    newest_first = scripts.iterate_revisions(after, before or "base")
    return tuple(reversed([script.revision for script in newest_first]))


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """PostgreSQL: a session advisory lock; SQLite: an flock on a file beside the database
    (its DDL is not transactional, so the database cannot serialise it by itself)."""
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is None:
            yield
            return
        import fcntl

        lock_path = path.with_name(path.name + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield
        return
    if not url.startswith("postgresql"):
        yield
        return
    engine = create_engine(url, poolclass=NullPool, connect_args=postgres_connect_args(url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                             {"key": MIGRATION_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def is_current(engine: Engine) -> bool:
    """True when the schema has been created (the alembic version table exists)."""
    return inspect(engine).has_table("alembic_version")
