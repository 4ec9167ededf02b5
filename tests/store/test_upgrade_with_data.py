"""Schema upgrades and downgrades on databases that hold data, on SQLite and PostgreSQL.

Production databases are upgraded with years of rows in them, by several replicas, and a
deploy may be rolled back. For every older revision: the schema is created at it, rows are
written the way that revision's schema allows (through its reflected tables, with non-ASCII
text and NULLs), then the schema is upgraded to head and every value must read back the
same, the columns added since must be NULL, and the application's own code must read the
rows and write new ones. Each migration's downgrade runs on a database holding data: only
what the columns it removes held is lost, the schema is the one that revision creates, and
upgrading again works. The models and the migrated schema must agree, and SQLite and
PostgreSQL must get the same schema.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.pool import NullPool

from bot.alert_pipeline import _event_from_row
from bot.store import db
from bot.store import repository as repo
from bot.store.models import AlertGroup, Base, EventRecord, Incident, RunbookDocument
from tests.conftest import POSTGRES_URL
from tests.postgres import fresh_database


def _history() -> list[str]:
    scripts = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


HISTORY = _history()
HEAD = HISTORY[-1]
OLDER = HISTORY[:-1]
# (revision, its predecessor) for every migration that has one: the downgrades to check
STEPS = list(zip(HISTORY[1:], HISTORY[:-1], strict=True))

T0 = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)  # a leap day, microseconds
NON_ASCII = "Ünïcödé — диск переполнен · 磁盘已满 · ディスク 🔥"
LONG_ID = ("INC-Ω-" + "é" * 200)[:200]  # as long as external_id allows, every char 2 bytes


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Ref:
    """The id the database gave the ``index``-th row written to ``table``."""

    table: str
    index: int


# Rows written at revision 0001, in foreign-key order. Ids are left to the database (as the
# application does) so that PostgreSQL's sequences advance as they do in production.
BASE_ROWS: dict[str, list[dict[str, Any]]] = {
    "alert_groups": [
        {"key": f"alertname=DiskFull|{NON_ASCII}", "channel": "C0ALERTS", "thread_ts":
         "1709251198.123456", "status": "firing", "count": 3, "reason": f"storm {NON_ASCII}",
         "summary": {"title": NON_ASCII, "kind": "alert", "alertnames": {"DiskFull": 3},
                     "links": {"graph": "https://prom.example/graph?g0.expr=up"}},
         "first_seen": at(0), "last_seen": at(5)},
        {"key": "record:INC-2", "channel": "", "thread_ts": "", "status": "resolved",
         "count": 0, "reason": "", "summary": {}, "first_seen": at(10), "last_seen": at(10)},
    ],
    "events": [
        {"source": "alertmanager", "kind": "alert", "external_id": "fp-1",
         "fingerprint": "a1b2c3", "group_key": f'{{}}:{{alertname="{NON_ASCII}"}}',
         "status": "firing", "channel": "C0ALERTS", "author": "", "title": NON_ASCII,
         "text": f"disk full on /var/lib/postgresql — {NON_ASCII}",
         "labels": {"alertname": "DiskFull", "instance": "db-01", "note": NON_ASCII},
         "outcome": "new_group", "group_id": Ref("alert_groups", 0), "received_at": at(0)},
        {"source": "slack", "kind": "message", "external_id": "", "fingerprint": "",
         "group_key": "", "status": "firing", "channel": "C0HELP", "author": "U0ÅSA",
         "title": "", "text": "", "labels": {}, "outcome": "received", "group_id": None,
         "received_at": at(1)},
        {"source": "alertmanager", "kind": "alert", "external_id": "fp-2",
         "fingerprint": "a1b2c3", "group_key": "{}:{}", "status": "resolved",
         "channel": "C0ALERTS", "author": "", "title": "DiskFull", "text": "resolved",
         "labels": {"alertname": "DiskFull"}, "outcome": "queued",
         "group_id": Ref("alert_groups", 0), "received_at": at(2)},
    ],
    "triage_answers": [
        {"event_id": Ref("events", 0), "surface": "thread", "channel": "C0ALERTS",
         "thread_ts": "1709251198.123456", "message_ts": "1709251199.000100",
         "requested_by": "", "query": NON_ASCII,
         "answer": {"classification": {"category": "storage", "confidence": 0.91},
                    "similar": [{"id": LONG_ID, "title": NON_ASCII}], "novel": False},
         "model_versions": {"category": "category-20240229-1"}, "index_version": "idx-7",
         "latency_ms": 123.456, "created_at": at(3)},
        {"event_id": None, "surface": "cli", "channel": "", "thread_ts": "", "message_ts": "",
         "requested_by": "", "query": "", "answer": {}, "model_versions": {},
         "index_version": "", "latency_ms": 0.0, "created_at": at(4)},
    ],
    "feedback": [
        {"answer_id": Ref("triage_answers", 0), "user_id": "U0ÅSA", "kind": "helpful",
         "field": "", "value": "", "item_ref": "", "reason": "", "created_at": at(6)},
        {"answer_id": Ref("triage_answers", 0), "user_id": "U0BOB", "kind": "wrong_label",
         "field": "category", "value": "réseau", "item_ref": f"incident:{LONG_ID}",
         "reason": NON_ASCII, "created_at": at(7)},
        {"answer_id": Ref("triage_answers", 1), "user_id": "U0BOB", "kind": "root_cause",
         "field": "", "value": f"inode exhaustion — {NON_ASCII}", "item_ref": "",
         "reason": "", "created_at": at(8)},
    ],
    "labeled_examples": [
        {"text": NON_ASCII, "field": "category", "label": "réseau", "origin": "feedback",
         "feedback_id": Ref("feedback", 1), "created_at": at(7)},
        {"text": "db-01 disk full", "field": "team", "label": "dba", "origin": "import",
         "feedback_id": None, "created_at": at(9)},
    ],
    "incidents": [
        {"external_id": LONG_ID, "kind": "incident", "title": NON_ASCII,
         "description": f"{NON_ASCII}\nsecond line\ttab", "category": "storage",
         "severity": "SEV-2", "priority": "P2", "team": "équipe-dba", "service": "postgresql",
         "root_cause": "WAL archive stalled", "resolution": f"rotated — {NON_ASCII}",
         "resolved_by": "Zoë", "url": "https://tickets.example/INC-1?x=ü",
         "source_name": "history-2019.csv", "visibility": "public",
         "labels": {"env": "prod", "tags": ["disk", NON_ASCII], "n": 3, "none": None},
         "occurred_at": at(-60 * 24 * 365 * 5), "created_at": at(0), "updated_at": at(1)},
        {"external_id": "INC-2", "kind": "ticket", "title": "", "description": "",
         "category": "", "severity": "", "priority": "", "team": "", "service": "",
         "root_cause": "", "resolution": "", "resolved_by": "", "url": "", "source_name": "",
         "visibility": "team-ß", "labels": {}, "occurred_at": None, "created_at": at(0),
         "updated_at": at(0)},
    ],
    "runbook_documents": [
        {"source": "wiki", "path": f"storage/{NON_ASCII}.md", "title": NON_ASCII,
         "content_hash": "f" * 64, "metadata": {"url": "https://wiki.example/ü", "tags": []},
         "visibility": "public", "updated_at": at(0)},
    ],
    "runbook_chunks": [
        {"document_id": Ref("runbook_documents", 0), "ordinal": 0,
         "heading_path": [NON_ASCII, "Diagnose"], "text": f"df -h; {NON_ASCII}"},
        {"document_id": Ref("runbook_documents", 0), "ordinal": 1, "heading_path": [],
         "text": ""},
    ],
    "model_versions": [
        {"target": "category", "version": "category-20240229-1", "kind": "supervised",
         "status": "active", "artifact_path": "/data/models/category/v1.skops",
         "metrics": {"accuracy": 0.8125, "per_label": {"réseau": 0.5}},
         "decision": {"promoted": True, "reason": NON_ASCII}, "fingerprint": "a" * 64,
         "library_versions": {"sklearn": "1.4.0"}, "n_train": 812, "created_at": at(0),
         "promoted_at": at(1)},
        {"target": "category", "version": "category-20240301-1", "kind": "supervised",
         "status": "candidate", "artifact_path": "", "metrics": {}, "decision": {},
         "fingerprint": "", "library_versions": {}, "n_train": 0, "created_at": at(2),
         "promoted_at": None},
    ],
    "slack_events_seen": [{"event_id": "Ev0ÄB12345", "received_at": at(0)}],
    "job_runs": [
        {"name": "retrain", "holder": "pod-a", "started_at": at(0), "finished_at": at(3),
         "outcome": "ok", "detail": {"trained": ["category"], "note": NON_ASCII}},
        {"name": "drift", "holder": "pod-b", "started_at": at(4), "finished_at": None,
         "outcome": "running", "detail": {}},
    ],
    "job_leases": [{"name": "retrain", "holder": "pod-a", "expires_at": at(5)}],
    "channel_settings": [
        {"channel": "C0ALERTS", "mode": "alerts", "updated_by": "U0ÅSA", "updated_at": at(0)},
    ],
    "audit_log": [
        {"at": at(0), "actor": "U0ÅSA", "action": "model.promote",
         "subject": "category-20240229-1", "detail": {"why": NON_ASCII, "delta": 0.0625}},
        {"at": at(1), "actor": "", "action": "channel.mode", "subject": "", "detail": {}},
    ],
}

# What each migration adds to rows: (table, row index) -> {column: value}. Rows not named
# keep NULL in the new column, which must be allowed.
ADDED: dict[str, dict[tuple[str, int], dict[str, Any]]] = {
    "0002": {("events", 0): {"grouped_at": at(0)}, ("events", 2): {"grouped_at": at(2)}},
    "0003": {("job_runs", 0): {"slot": at(0)}},
    "0004": {("events", 0): {"links": {"source": "https://prom.example/graph?g0.expr=ü",
                                       "runbook": "https://wiki.example/диск#ü"}}},
    "0005": {},  # a new table (schema_compat), written by the upgrade itself
}
# The columns each migration adds, and the indexes: what its downgrade may lose.
ADDED_COLUMNS = {"0002": {("events", "grouped_at")}, "0003": {("job_runs", "slot")},
                 "0004": {("events", "links")}, "0005": set()}
ADDED_INDEXES = {"0002": {("events", "ix_events_outcome"),
                          ("alert_groups", "ix_alert_groups_last_seen")},
                 "0003": {("job_runs", "ix_job_runs_slot")}, "0004": set(), "0005": set()}


def test_the_data_here_covers_every_migration() -> None:
    """A new migration must come with its rows here (and its columns and indexes), or the
    tests below would pass without ever writing to what it adds."""
    assert set(ADDED) == set(ADDED_COLUMNS) == set(ADDED_INDEXES) == set(HISTORY[1:])


def rows_at(revision: str) -> dict[str, list[dict[str, Any]]]:
    """The rows as written at ``revision``: the base rows with the values of the columns
    added up to it."""
    upto = HISTORY[: HISTORY.index(revision) + 1]
    rows = {table: [dict(row) for row in table_rows] for table, table_rows in BASE_ROWS.items()}
    for rev in upto[1:]:
        for (table, index), values in ADDED[rev].items():
            rows[table][index].update(values)
    return rows


def columns_added_after(revision: str) -> set[tuple[str, str]]:
    later = HISTORY[HISTORY.index(revision) + 1:]
    return {col for rev in later for col in ADDED_COLUMNS[rev]}


# --- helpers ---------------------------------------------------------------------------------


def engine_of(url: str) -> Engine:
    return create_engine(url, poolclass=NullPool)


def reflect(engine: Engine) -> MetaData:
    meta = MetaData()
    meta.reflect(engine)
    meta.remove(meta.tables["alembic_version"])
    return meta


def primary_key(table: Table) -> str:
    (column,) = table.primary_key.columns
    return column.name


def write(url: str, rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """Insert ``rows`` through the tables as the database has them now (columns it lacks
    fail the test); returns the primary keys given, per table in row order."""
    engine = engine_of(url)
    try:
        meta = reflect(engine)
        ids: dict[str, list[Any]] = {}
        with engine.begin() as conn:
            for name, table_rows in rows.items():
                table = meta.tables[name]
                for row in table_rows:
                    unknown = set(row) - set(table.columns.keys())
                    assert not unknown, f"{name} has no column {unknown}"
                    values = {k: ids[v.table][v.index] if isinstance(v, Ref) else v
                              for k, v in row.items()}
                    result = conn.execute(table.insert().values(**values))
                    key = primary_key(table)
                    ids.setdefault(name, []).append(values.get(key)
                                                    or result.inserted_primary_key[0])
        return ids
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every row of every table, as read back: {table: {primary key: {column: value}}}.
    ``schema_compat`` is left out: each upgrade and downgrade rewrites its one row."""
    engine = engine_of(url)
    try:
        meta = reflect(engine)
        out: dict[str, dict[Any, dict[str, Any]]] = {}
        with engine.connect() as conn:
            for name, table in meta.tables.items():
                if name == "schema_compat":
                    continue
                key = primary_key(table)
                out[name] = {row[key]: dict(row) for row in
                             conn.execute(select(table).order_by(table.c[key])).mappings()}
        return out
    finally:
        engine.dispose()


def same_value(stored: Any, written: Any) -> bool:
    """SQLite keeps no time zone: a naive datetime read back is the UTC one written."""
    if isinstance(stored, datetime) and isinstance(written, datetime):
        if stored.tzinfo is None:
            stored = stored.replace(tzinfo=UTC)
        return stored == written
    return bool(stored == written) and type(stored) is type(written)


def assert_rows_survived(url: str, rows: dict[str, list[dict[str, Any]]],
                         ids: dict[str, list[Any]]) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every written row is there with every value it was written with."""
    data = snapshot(url)
    for name, table_rows in rows.items():
        assert len(data[name]) >= len(table_rows), name
        for index, row in enumerate(table_rows):
            stored = data[name][ids[name][index]]
            for column, value in row.items():
                if isinstance(value, Ref):
                    value = ids[value.table][value.index]
                assert same_value(stored[column], value), (name, index, column,
                                                           stored[column], value)
    return data


def without(data: dict[str, dict[Any, dict[str, Any]]],
            columns: set[tuple[str, str]]) -> dict[str, dict[Any, dict[str, Any]]]:
    return {name: {key: {c: v for c, v in row.items() if (name, c) not in columns}
                   for key, row in table_rows.items()}
            for name, table_rows in data.items()}


def normalized_type(column_type: Any) -> tuple[Any, ...]:
    """A reflected type by what it stores, the same on both databases."""
    for kind in (JSON, DateTime, Float, Integer, Text, String):
        if isinstance(column_type, kind):
            break
    else:
        return (type(column_type).__name__,)
    if kind is String:
        return ("String", column_type.length)
    return (kind.__name__,)


def schema_of(url: str) -> dict[str, Any]:
    """Tables, columns (type, nullability, server default), primary keys, indexes, unique
    constraints and foreign keys, in a form that does not depend on the database."""
    engine = engine_of(url)
    try:
        insp = inspect(engine)
        columns, pks = insp.get_multi_columns(), insp.get_multi_pk_constraint()
        indexes, uniques = insp.get_multi_indexes(), insp.get_multi_unique_constraints()
        fks = insp.get_multi_foreign_keys()
    finally:
        engine.dispose()
    schema: dict[str, Any] = {}
    for key in sorted(columns, key=lambda k: k[1]):
        pk = tuple(pks[key]["constrained_columns"])
        cols = {}
        for col in columns[key]:
            default = col.get("default")
            if default and "nextval(" in str(default) and (col["name"],) == pk:
                default = None  # PostgreSQL's serial id, SQLite's rowid alias
            cols[col["name"]] = (normalized_type(col["type"]), col["nullable"], default)
        schema[key[1]] = {
            "columns": cols,
            "pk": pk,
            "indexes": {(ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                        for ix in indexes[key]
                        if not ix.get("duplicates_constraint")},  # PostgreSQL's UNIQUE index
            "uniques": {tuple(uq["column_names"]) for uq in uniques[key]},
            "fks": {(tuple(fk["constrained_columns"]), fk["referred_table"],
                     tuple(fk["referred_columns"]), (fk.get("options") or {}).get("ondelete"))
                    for fk in fks[key]},
        }
    return schema


def model_differences(url: str) -> list[Any]:
    """What alembic's autogenerate would change to make the database match the models."""
    engine = engine_of(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


@pytest.fixture
def other_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
    else:
        with fresh_database(POSTGRES_URL) as url:
            yield url


# --- the application on upgraded data -------------------------------------------------------


def assert_application_works(url: str, ids: dict[str, list[Any]], written_at: str) -> None:
    """The repository and pipeline code read the rows written at ``written_at`` and write
    new ones, with the columns added since."""
    engine = db.make_engine(url)
    factory = db.make_session_factory(engine)
    try:
        with db.session_scope(factory) as session:
            incident = repo.get_incident(session=session, incident_id=ids["incidents"][0])
            assert incident is not None
            assert incident.external_id == LONG_ID and incident.title == NON_ASCII
            assert incident.labels["tags"] == ["disk", NON_ASCII] and incident.resolved
            assert set(repo.incidents_by_external_id(session=session, ids=[LONG_ID, "INC-2"])
                       ) == {LONG_ID, "INC-2"}
            # re-importing the same record after the upgrade changes nothing
            same = {k: v for k, v in BASE_ROWS["incidents"][1].items()
                    if k in repo.INCIDENT_FIELDS}
            _, status = repo.upsert_incident(session=session, external_id="INC-2", **same)
            assert status == "unchanged"
            _, status = repo.upsert_incident(session=session, external_id="INC-NEW-ü",
                                             title=NON_ASCII, labels={"n": NON_ASCII})
            assert status == "added"

            assert [c.text for c in repo.list_runbook_chunks(session=session)][:2] == [
                f"df -h; {NON_ASCII}", ""]
            assert session.get(RunbookDocument, ids["runbook_documents"][0]).meta["url"] == (
                "https://wiki.example/ü")

            feedback = repo.list_feedback(session=session)
            assert [f.kind for f in feedback] == ["helpful", "wrong_label", "root_cause"]
            with_versions = repo.list_feedback_with_versions(session=session,
                                                             since=at(0) - timedelta(days=1))
            assert [v for _, v in with_versions] == [
                {"category": "category-20240229-1"}, {"category": "category-20240229-1"}, {}]
            assert repo.feedback_counts(session=session) == {
                "helpful": 1, "wrong_label": 1, "root_cause": 1, "rated_answers": 1}
            assert [e.feedback_id for e in repo.list_labeled_examples(
                session=session, field="category")] == [ids["feedback"][1]]
            answer = repo.get_answer(session=session, answer_id=ids["triage_answers"][0])
            assert answer is not None and answer.event_id == ids["events"][0]
            assert answer.answer["similar"][0]["title"] == NON_ASCII

            active = repo.get_active_model(session=session, target="category")
            assert active is not None and active.version == "category-20240229-1"
            assert active.metrics["per_label"] == {"réseau": 0.5}
            candidate = repo.get_model_version(session=session, version="category-20240301-1")
            assert candidate is not None and candidate.promoted_at is None
            replaced = repo.activate_model(session=session, row=candidate)
            assert replaced is not None and replaced.status == "retired"

            assert repo.list_audit(session=session, since=at(0))[0].detail == {
                "why": NON_ASCII, "delta": 0.0625}
            assert repo.get_channel_mode(session=session, channel="C0ALERTS") == "alerts"
            assert repo.mark_slack_event_seen(session=session, event_id="Ev0ÄB12345") is False
            assert repo.acquire_lease(session=session, name="retrain", holder="pod-new",
                                      ttl=timedelta(minutes=5))  # the stored one expired
            runs = {r.name: r for r in repo.list_job_runs(session=session)}
            assert runs["drift"].finished_at is None and runs["drift"].slot is None
            if written_at < "0003":
                assert runs["retrain"].slot is None
            else:
                assert same_value(runs["retrain"].slot, at(0))

            events = session.scalars(select(EventRecord).order_by(EventRecord.id)).all()
            first = _event_from_row(events[0])  # the alert pipeline's replay of stored rows
            assert first.text.endswith(NON_ASCII) and first.labels["note"] == NON_ASCII
            if written_at < "0004":
                assert first.links == {} and events[0].links is None
            else:
                assert first.links == {"source": "https://prom.example/graph?g0.expr=ü",
                                       "runbook": "https://wiki.example/диск#ü"}
            assert events[1].grouped_at is None and events[1].group_id is None
            group = session.get(AlertGroup, ids["alert_groups"][0])
            assert group is not None and group.summary["alertnames"] == {"DiskFull": 3}

            # new rows, with every column head has
            event = repo.record_event(session=session, source="generic", kind="alert",
                                      text=NON_ASCII, links={"source": "https://g.example/ü"},
                                      grouped_at=at(20), group_id=group.id)
            new_answer = repo.record_answer(session=session, event_id=event.id,
                                            query=NON_ASCII, answer={"x": NON_ASCII})
            repo.record_feedback(session=session, answer_id=new_answer.id, kind="helpful",
                                 user_id="U0NEW")
            repo.start_job_run(session=session, name="retrain", holder="pod-new", slot=at(30))
            repo.audit(session=session, actor="U0NEW", action="test", detail={"ü": 1})
            repo.add_model_version(session=session, target="team", version="team-new")
        with db.session_scope(factory) as session:
            stored = session.get(EventRecord, event.id)
            assert stored is not None and stored.links == {"source": "https://g.example/ü"}
            assert repo.count_incidents(session=session) == 3
            assert session.scalar(select(Incident.title).where(
                Incident.external_id == "INC-NEW-ü")) == NON_ASCII
    finally:
        engine.dispose()


# --- upgrades ----------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", OLDER)
def test_upgrade_to_head_keeps_every_row_and_value(database_url: str, revision: str) -> None:
    db.upgrade(database_url, revision)
    rows = rows_at(revision)
    ids = write(database_url, rows)
    before = assert_rows_survived(database_url, rows, ids)

    result = db.upgrade(database_url)
    assert (result.before, result.after) == (revision, HEAD)

    after = assert_rows_survived(database_url, rows, ids)
    added = columns_added_after(revision)
    assert without(after, added) == before  # nothing else changed, not even a type
    for table, column in added:
        assert {row[column] for row in after[table].values()} == {None}, (table, column)
    assert_application_works(database_url, ids, revision)


@pytest.mark.parametrize("revision", OLDER)
def test_replicas_of_the_older_release_keep_writing_after_the_upgrade(
    database_url: str, revision: str
) -> None:
    """A rolling update: the schema is at head while replicas of the older release still
    run and insert rows that name only the columns they know."""
    db.upgrade(database_url, revision)
    engine = engine_of(database_url)
    old_tables = reflect(engine)
    engine.dispose()
    db.upgrade(database_url)

    rows = rows_at(revision)
    engine = engine_of(database_url)
    try:
        with engine.begin() as conn:
            for name in ("alert_groups", "events", "job_runs"):
                row = {k: v for k, v in rows[name][0].items() if not isinstance(v, Ref)}
                conn.execute(old_tables.tables[name].insert().values(**row))
    finally:
        engine.dispose()
    data = snapshot(database_url)
    assert len(data["events"]) == len(data["job_runs"]) == 1
    for table, column in columns_added_after(revision):
        assert {row[column] for row in data[table].values()} == {None}


def test_every_added_column_lets_an_older_release_insert_without_it(database_url: str) -> None:
    """Columns added to an existing table are nullable or have a server default: replicas
    of the previous release (rolling update, rollback) insert rows without them."""
    db.upgrade(database_url, HISTORY[0])
    previous = schema_of(database_url)
    for revision in HISTORY[1:]:
        db.upgrade(database_url, revision)
        current = schema_of(database_url)
        for table in set(previous) & set(current):
            for name, (_, nullable, default) in current[table]["columns"].items():
                if name not in previous[table]["columns"]:
                    assert nullable or default is not None, (revision, table, name)
        previous = current


# --- downgrades (deploy rollback) ---------------------------------------------------------


@pytest.mark.parametrize(("revision", "down_to"), STEPS)
def test_downgrade_with_data_loses_only_the_new_columns(
    database_url: str, other_database_url: str, revision: str, down_to: str
) -> None:
    db.upgrade(database_url, revision)
    rows = rows_at(revision)
    ids = write(database_url, rows)
    before = assert_rows_survived(database_url, rows, ids)

    result = db.downgrade(database_url, down_to)
    assert (result.before, result.after, result.undone) == (revision, down_to, (revision,))
    assert db.current_revision(database_url) == down_to

    lost = ADDED_COLUMNS[revision]
    assert snapshot(database_url) == without(before, lost)
    db.upgrade(other_database_url, down_to)
    assert schema_of(database_url) == schema_of(other_database_url)  # as that release made it
    indexes = {(t, ix[0]) for t, s in schema_of(database_url).items() for ix in s["indexes"]}
    assert not ADDED_INDEXES[revision] & indexes

    # the older release runs again and writes, then the newer one is deployed again
    old_rows = {"events": [dict(rows_at(down_to)["events"][1])]}
    old_ids = write(database_url, old_rows)
    again = db.upgrade(database_url)
    assert (again.before, again.after) == (down_to, HEAD)
    after = assert_rows_survived(database_url, rows_at(down_to), ids)
    assert_rows_survived(database_url, old_rows, old_ids)
    for table, column in columns_added_after(down_to):
        assert {row[column] for row in after[table].values()} == {None}
    assert_application_works(database_url, ids, down_to)


def test_downgrade_from_head_to_the_first_revision_and_back(database_url: str) -> None:
    db.upgrade(database_url)
    rows = rows_at(HEAD)
    ids = write(database_url, rows)
    before = snapshot(database_url)

    result = db.downgrade(database_url, HISTORY[0])
    assert result.undone == tuple(reversed(HISTORY[1:]))
    assert result.describe() == (f"downgraded from revision {HEAD} to {HISTORY[0]} "
                                 f"({len(HISTORY) - 1} migrations undone)")
    assert snapshot(database_url) == without(before, columns_added_after(HISTORY[0]))
    assert db.downgrade(database_url, HISTORY[0]).describe() == (
        f"already at revision {HISTORY[0]}")

    db.upgrade(database_url)
    assert_rows_survived(database_url, rows_at(HISTORY[0]), ids)
    assert model_differences(database_url) == []
    assert_application_works(database_url, ids, HISTORY[0])


def test_downgrade_refuses_what_would_drop_or_cannot_be(database_url: str) -> None:
    db.upgrade(database_url, HISTORY[1])
    with pytest.raises(ValueError, match="drops every table"):
        db.downgrade(database_url, "base")
    with pytest.raises(ValueError, match="cannot downgrade"):
        db.downgrade(database_url, "9999")
    with pytest.raises(ValueError, match="cannot downgrade to revision"):
        db.downgrade(database_url, HEAD)  # newer than the schema: that is an upgrade
    assert db.current_revision(database_url) == HISTORY[1]


# --- the models and the schema ------------------------------------------------------------


def test_models_match_the_migrated_schema(database_url: str) -> None:
    db.upgrade(database_url)
    assert model_differences(database_url) == []


def test_models_compare_notices_a_schema_that_drifted(database_url: str) -> None:
    """The comparison above can fail: a column the models have and the database lacks, an
    index the database has and the models lack."""
    adds_a_column = max(rev for rev, columns in ADDED_COLUMNS.items() if columns)
    db.upgrade(database_url)
    db.downgrade(database_url, HISTORY[HISTORY.index(adds_a_column) - 1])
    engine = engine_of(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE INDEX ix_extra ON events (title)")
    finally:
        engine.dispose()
    differences = model_differences(database_url)
    assert ("add_column", None, "events") in [d[:3] for d in differences
                                             if isinstance(d, tuple)]
    assert any(isinstance(d, tuple) and d[0] == "remove_index" and d[1].name == "ix_extra"
               for d in differences)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("revision", HISTORY)
def test_sqlite_and_postgresql_get_the_same_schema(tmp_path: Path, revision: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'same.db'}"
    db.upgrade(sqlite_url, revision)
    with fresh_database(POSTGRES_URL) as postgres_url:
        db.upgrade(postgres_url, revision)
        postgres = schema_of(postgres_url)
        engine = engine_of(postgres_url)
        try:
            timestamps = {(c["name"], c["type"].timezone) for t in inspect(engine)
                          .get_table_names() for c in inspect(engine).get_columns(t)
                          if isinstance(c["type"], DateTime)}
        finally:
            engine.dispose()
    assert schema_of(sqlite_url) == postgres
    assert timestamps and all(tz for _, tz in timestamps), timestamps


def test_sqlite_downgrade_keeps_links_to_rebuilt_tables_even_with_foreign_keys_on(
    tmp_path: Path,
) -> None:
    """SQLite's downgrades rebuild ``events`` (copy, drop, rename). Were foreign keys
    enforced during the migration (a SQLite built with them on by default), the drop would
    set every answer's ``event_id`` to NULL; the migration environment turns them off."""
    url = f"sqlite:///{tmp_path / 'fk.db'}"
    db.upgrade(url)
    ids = write(url, rows_at(HEAD))

    def foreign_keys_on(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    event.listen(Engine, "connect", foreign_keys_on)
    try:
        db.downgrade(url, HISTORY[0])
    finally:
        event.remove(Engine, "connect", foreign_keys_on)
    answers = snapshot(url)["triage_answers"]
    assert answers[ids["triage_answers"][0]]["event_id"] == ids["events"][0]


def older_release(tmp_path: Path, url: str) -> Any:
    """The Alembic configuration of the release before this one: its migrations lack ours."""
    scripts = tmp_path / "older_release_migrations"
    shutil.copytree(Path(str(resources.files("bot.store") / "migrations")), scripts)
    head_script = ScriptDirectory.from_config(db.alembic_config(url)).get_revision(HEAD)
    (scripts / "versions" / Path(head_script.path).name).unlink()
    config = db.alembic_config(url)
    config.set_main_option("script_location", str(scripts))
    return config


def test_rolling_back_the_release_needs_the_downgrade_first(
    database_url: str, tmp_path: Path
) -> None:
    """A release from before revision 0005 (alembic's own upgrade, no schema_compat check)
    fails to start on the newer schema, which it does not know; after ``db downgrade`` run by
    the newer release it starts and finds its schema."""
    from alembic import command
    from alembic.util import CommandError

    db.upgrade(database_url)
    ids = write(database_url, rows_at(HEAD))
    config = older_release(tmp_path, database_url)
    with pytest.raises(CommandError, match=f"Can't locate revision identified by '{HEAD}'"):
        command.upgrade(config, "head")

    db.downgrade(database_url, HISTORY[-2])
    command.upgrade(config, "head")  # the older release's start: nothing to do
    assert db.current_revision(database_url) == HISTORY[-2]
    assert_rows_survived(database_url, rows_at(HISTORY[-2]), ids)


def test_db_downgrade_command_says_what_it_did(tmp_path: Path) -> None:
    from tests.bot.test_cli import run

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path), "TRIAGEBOT_DATABASE_URL": url}
    db.upgrade(url)
    done = run("db", "downgrade", HISTORY[-2], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"database: downgraded from revision {HEAD} to {HISTORY[-2]} (1 migration undone)")
    refused = run("db", "downgrade", "base", env=env)
    assert refused.returncode != 0
    assert "drops every table" in refused.stdout + refused.stderr
    assert db.current_revision(url) == HISTORY[-2]


# --- a rolled-back release on a newer schema (schema_compat, revision 0005) -------------------

NEWER_MIGRATION = '''"""a newer release's migration

Revision ID: 9001
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None
{flag}

def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("newer_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("newer_note")
'''


def newer_release(tmp_path: Path, url: str, *, compatible: bool) -> Any:
    """The Alembic configuration of a release after this one: our migrations plus one that
    adds a nullable column, declared usable by older releases or not."""
    scripts = tmp_path / "newer_release_migrations"
    shutil.copytree(Path(str(resources.files("bot.store") / "migrations")), scripts)
    flag = "older_releases_compatible = True\n" if compatible else ""
    (scripts / "versions" / "9001_newer.py").write_text(
        NEWER_MIGRATION.format(head=HEAD, flag=flag), encoding="utf-8")
    return db.alembic_config(url, scripts)


def test_every_migration_says_whether_older_releases_can_run_on_it() -> None:
    """``older_releases_compatible`` decides whether a rolled-back release may start on the
    schema: each migration states it, so that none is declared compatible by omission."""
    scripts = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    undeclared = [s.revision for s in scripts.walk_revisions()
                  if not isinstance(getattr(s.module, "older_releases_compatible", None), bool)]
    assert undeclared == []


def test_the_upgrade_records_which_older_releases_may_run_on_the_schema(
    database_url: str,
) -> None:
    db.upgrade(database_url)
    assert db._read_compat(database_url) == (HEAD, HISTORY[0])  # every later one only adds
    db.downgrade(database_url, HISTORY[-2])  # below 0005 the record goes with its table
    assert db._read_compat(database_url) is None
    db.upgrade(database_url)
    assert db._read_compat(database_url) == (HEAD, HISTORY[0])


def test_this_release_starts_on_a_newer_schema_that_keeps_it_usable(
    database_url: str, tmp_path: Path
) -> None:
    """``helm rollback`` after a newer release added a nullable column: this release's start
    (``db upgrade``) leaves the schema as is, and its code reads and writes the rows."""
    db.upgrade(database_url)
    ids = write(database_url, rows_at(HEAD))
    newer = newer_release(tmp_path, database_url, compatible=True)
    assert db.upgrade(database_url, config=newer).after == "9001"
    assert db._read_compat(database_url) == ("9001", HISTORY[0])

    result = db.upgrade(database_url)  # this release, rolled back to
    assert (result.before, result.after, result.applied) == ("9001", "9001", ())
    assert result.describe() == (
        f"schema at revision 9001 of a newer release, which keeps it usable by this release "
        f"(revision {HEAD}): left as is")
    assert db.current_revision(database_url) == "9001"
    assert_rows_survived(database_url, rows_at(HEAD), ids)
    assert_application_works(database_url, ids, HEAD)
    status = db.schema_status(database_url).describe()[0]
    assert "from a newer release" in status and "runs on it as is" in status

    # and the newer release, deployed again, finds its schema as it left it
    assert db.upgrade(database_url, config=newer).describe() == (
        "already up to date at revision 9001")


def test_this_release_refuses_a_newer_schema_it_cannot_run_on(
    database_url: str, tmp_path: Path
) -> None:
    db.upgrade(database_url)
    newer = newer_release(tmp_path, database_url, compatible=False)
    db.upgrade(database_url, config=newer)
    assert db._read_compat(database_url) == ("9001", "9001")
    with pytest.raises(db.SchemaTooNewError, match=(
            rf"revision 9001, from a newer release; this release knows revisions up to "
            rf"{HEAD} and the newer release keeps it usable from revision 9001 on\. To run "
            rf"this release, first run `triagebot db downgrade {HEAD}` with the newer release")):
        db.upgrade(database_url)
    assert db.current_revision(database_url) == "9001"

    db.downgrade(database_url, HEAD, config=newer)  # what the message says to do
    assert db.upgrade(database_url).describe() == f"already up to date at revision {HEAD}"


def test_db_upgrade_command_explains_a_schema_too_new(tmp_path: Path) -> None:
    from tests.bot.test_cli import run

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path), "TRIAGEBOT_DATABASE_URL": url}
    db.upgrade(url)
    db.upgrade(url, config=newer_release(tmp_path, url, compatible=False))
    refused = run("db", "upgrade", env=env)
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert f"`triagebot db downgrade {HEAD}` with the newer release" in out
    assert "Traceback" not in out
