"""`triagebot db upgrade` says what it did: created the schema, upgraded it, or found it current."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from bot.store.db import alembic_config, current_revision, upgrade
from tests.bot.test_cli import run


def migrations(url: str) -> list[str]:
    """Every revision, oldest first."""
    scripts = ScriptDirectory.from_config(alembic_config(url))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def plural(n: int) -> str:
    return f"{n} migration{'' if n == 1 else 's'}"


def test_db_upgrade_says_whether_it_created_upgraded_or_found_the_schema_current(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    history = migrations(url)
    head = history[-1]
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path), "TRIAGEBOT_DATABASE_URL": url}

    created = run("db", "upgrade", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == (
        f"database: created the schema at revision {head} ({plural(len(history))})"
    )
    again = run("db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"database: already up to date at revision {head}"

    older = f"sqlite:///{tmp_path / 'older.db'}"
    upgrade(older, history[0])
    upgraded = run("db", "upgrade", env={**env, "TRIAGEBOT_DATABASE_URL": older})
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == (
        f"database: upgraded from revision {history[0]} to {head} "
        f"({plural(len(history) - 1)})"
    )


def test_upgrade_reports_the_revisions_it_applied(database_url: str) -> None:
    history = migrations(database_url)
    assert current_revision(database_url) is None

    first = upgrade(database_url, history[0])
    assert (first.before, first.after, first.applied) == (None, history[0], (history[0],))
    rest = upgrade(database_url)
    assert (rest.before, rest.after, rest.applied) == (history[0], history[-1], tuple(history[1:]))
    again = upgrade(database_url)
    assert (again.before, again.after, again.applied) == (history[-1], history[-1], ())
    assert current_revision(database_url) == history[-1]


def test_db_status_names_the_revision_to_go_back_to(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'status.db'}"
    history = migrations(url)
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path), "TRIAGEBOT_DATABASE_URL": url}

    fresh = run("db", "status", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.splitlines()[0] == (
        f"database: no schema yet: `triagebot db upgrade` creates it at revision {history[-1]}")

    upgrade(url, history[1])
    older = run("db", "status", env=env).stdout.splitlines()
    assert older[0].startswith(f"database: schema at revision {history[1]}; this release's "
                               f"newest is {history[-1]}")
    # every revision listed, oldest first, with what it does; the current one marked
    assert [line[2:].split()[0] for line in older[1:]] == history
    assert [line[0] for line in older[1:]] == [
        "*" if rev == history[1] else " " for rev in history]
    assert all(len(line.split(maxsplit=2)) >= 2 for line in older[1:])

    # a newer release migrated it: this one says so, and what to run
    with sqlite3.connect(tmp_path / "status.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    newer = run("db", "status", env=env)
    assert newer.returncode == 0, newer.stderr
    assert "schema at revision 9999, which this release does not know" in newer.stdout
    assert (f"`triagebot db downgrade {history[-1]}` with the newer release first"
            in newer.stdout)
