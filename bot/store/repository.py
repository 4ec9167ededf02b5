"""Keyword-only data functions. Each takes a ``session`` and never commits on its own:
the caller owns the transaction (see :func:`bot.store.db.session_scope`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import (
    AuditEntry,
    ChannelSetting,
    EventRecord,
    Feedback,
    Incident,
    JobLease,
    JobRun,
    LabeledExample,
    ModelVersion,
    RunbookChunk,
    RunbookDocument,
    SlackEventSeen,
    TriageAnswer,
    incident_text,
)

INCIDENT_FIELDS = (
    "kind",
    "title",
    "description",
    "category",
    "severity",
    "priority",
    "team",
    "service",
    "root_cause",
    "resolution",
    "resolved_by",
    "url",
    "source_name",
    "visibility",
    "labels",
    "occurred_at",
)


# --- incidents and tickets ---------------------------------------------------------------


def upsert_incident(
    *, session: Session, external_id: str, on_insert: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[Incident, str]:
    """Insert or update an incident by external id. Returns (row, "added"|"updated"|"unchanged").
    ``on_insert``: fields set only on a new row (a stored row keeps its own)."""
    unknown = (set(fields) | set(on_insert or {})) - set(INCIDENT_FIELDS)
    if unknown:
        raise TypeError(f"unknown incident fields: {sorted(unknown)}")
    row = session.scalar(select(Incident).where(Incident.external_id == external_id))
    if row is None:
        row = Incident(external_id=external_id, **{**(on_insert or {}), **fields})
        session.add(row)
        session.flush()
        return row, "added"
    changed = incident_differs(row, fields)
    for name, value in fields.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
    session.flush()
    return row, "updated" if changed else "unchanged"


def incident_differs(row: Incident, fields: Mapping[str, Any]) -> bool:
    """Whether storing ``fields`` would change ``row``."""
    return any(getattr(row, name) != value for name, value in fields.items())


def incidents_by_external_id(*, session: Session, ids: Iterable[str]) -> dict[str, Incident]:
    return _incidents_by(session, "external_id", ids)


def _incidents_by(session: Session, key: str, values: Iterable[Any]) -> dict[Any, Incident]:
    """``{value: row}`` of the incidents whose column ``key`` holds one of ``values``."""
    wanted = list(set(values))
    if not wanted:
        return {}
    rows = session.scalars(select(Incident).where(getattr(Incident, key).in_(wanted)))
    return {getattr(row, key): row for row in rows}


def get_incident(*, session: Session, incident_id: int) -> Incident | None:
    return session.get(Incident, incident_id)


def get_incidents(*, session: Session, ids: Iterable[int]) -> dict[int, Incident]:
    return _incidents_by(session, "id", ids)


def list_incidents(*, session: Session, kind: str | None = None) -> list[Incident]:
    query = select(Incident).order_by(Incident.id)
    if kind:
        query = query.where(Incident.kind == kind)
    return list(session.scalars(query))


def incident_label_columns(*, session: Session,
                           fields: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{text: {field: value}}`` of the incidents' label columns ``fields``, read without
    loading whole rows (training reads them for every retrain). The text is
    :attr:`Incident.text`; a later incident with the same text wins."""
    columns = [getattr(Incident, f) for f in fields]
    query = select(Incident.title, Incident.description, *columns).order_by(Incident.id)
    out: dict[str, dict[str, str]] = {}
    for title, description, *values in session.execute(query):
        text = incident_text(title, description)
        if text:
            out[text] = {f: str(v or "") for f, v in zip(fields, values, strict=True)}
    return out


def count_incidents(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Incident)) or 0


def incidents_signature(*, session: Session) -> tuple[Any, ...]:
    """(count, largest id, latest update) of the incidents: changes with any insert, delete or
    in-place update, and costs one aggregate query."""
    row = session.execute(
        select(func.count(), func.max(Incident.id), func.max(Incident.updated_at))).one()
    return tuple(str(v) for v in row)


# --- runbooks ------------------------------------------------------------------------------


def get_runbook_documents(*, session: Session, source: str) -> dict[str, RunbookDocument]:
    rows = session.scalars(select(RunbookDocument).where(RunbookDocument.source == source))
    return {row.path: row for row in rows}


def list_runbook_documents(*, session: Session) -> list[RunbookDocument]:
    return list(session.scalars(select(RunbookDocument).order_by(RunbookDocument.id)))


def save_runbook_document(
    *,
    session: Session,
    source: str,
    path: str,
    title: str,
    content_hash: str,
    meta: dict[str, Any],
    sections: Sequence[tuple[tuple[str, ...], str]],
    visibility: str = "public",
) -> RunbookDocument:
    """Create or replace a runbook document and its chunks (heading path, text)."""
    doc = session.scalar(
        select(RunbookDocument).where(
            RunbookDocument.source == source, RunbookDocument.path == path
        )
    )
    if doc is None:
        doc = RunbookDocument(source=source, path=path)
        session.add(doc)
    doc.title = title
    doc.content_hash = content_hash
    doc.meta = meta
    doc.visibility = visibility
    doc.chunks.clear()
    session.flush()
    for ordinal, (heading_path, text) in enumerate(sections):
        doc.chunks.append(RunbookChunk(ordinal=ordinal, heading_path=list(heading_path), text=text))
    session.flush()
    return doc


def delete_runbook_documents(*, session: Session, ids: Iterable[int]) -> list[int]:
    """Delete documents; returns the ids of the chunks that went with them."""
    wanted = list(ids)
    if not wanted:
        return []
    chunk_ids = list(
        session.scalars(select(RunbookChunk.id).where(RunbookChunk.document_id.in_(wanted)))
    )
    session.execute(delete(RunbookChunk).where(RunbookChunk.document_id.in_(wanted)))
    session.execute(delete(RunbookDocument).where(RunbookDocument.id.in_(wanted)))
    return chunk_ids


def list_runbook_chunks(*, session: Session) -> list[RunbookChunk]:
    return list(session.scalars(select(RunbookChunk).order_by(RunbookChunk.id)))


def get_runbook_chunks(*, session: Session, ids: Iterable[int]) -> dict[int, RunbookChunk]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = session.scalars(select(RunbookChunk).where(RunbookChunk.id.in_(wanted)))
    return {row.id: row for row in rows}


def count_runbook_chunks(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RunbookChunk)) or 0


def runbooks_signature(*, session: Session) -> tuple[Any, ...]:
    """Like :func:`incidents_signature`, for the runbook sections and their documents."""
    chunks = session.execute(select(func.count(), func.max(RunbookChunk.id))).one()
    updated = session.scalar(select(func.max(RunbookDocument.updated_at)))
    return (*(str(v) for v in chunks), str(updated))


def count_runbook_documents(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RunbookDocument)) or 0


# --- events and answers -------------------------------------------------------------------


def record_event(*, session: Session, **fields: Any) -> EventRecord:
    row = EventRecord(**fields)
    session.add(row)
    session.flush()
    return row


def record_answer(*, session: Session, **fields: Any) -> TriageAnswer:
    row = TriageAnswer(**fields)
    session.add(row)
    session.flush()
    return row


def get_answer(*, session: Session, answer_id: int) -> TriageAnswer | None:
    return session.get(TriageAnswer, answer_id)


def mark_slack_event_seen(*, session: Session, event_id: str) -> bool:
    """Record a Slack event id. False when it was seen before (a retry)."""
    try:
        with session.begin_nested():
            session.add(SlackEventSeen(event_id=event_id))
            session.flush()
    except IntegrityError:
        return False
    return True


# --- feedback ----------------------------------------------------------------------------


def record_feedback(
    *,
    session: Session,
    answer_id: int,
    kind: str,
    user_id: str = "",
    field: str = "",
    value: str = "",
    item_ref: str = "",
    reason: str = "",
) -> Feedback:
    row = Feedback(
        answer_id=answer_id,
        kind=kind,
        user_id=user_id,
        field=field,
        value=value,
        item_ref=item_ref,
        reason=reason,
    )
    session.add(row)
    session.flush()
    return row


def repeats_last_feedback(
    *, session: Session, answer_id: int, kind: str, user_id: str, field: str, value: str,
    reason: str,
) -> bool:
    """Whether ``user_id``'s latest feedback of this kind and field on answer ``answer_id``
    is exactly this one (a double click). Going back to an earlier choice is not a repeat:
    the latest choice is the one that counts."""
    query = (select(Feedback.value, Feedback.reason)
             .where(Feedback.answer_id == answer_id, Feedback.kind == kind,
                    Feedback.user_id == user_id, Feedback.field == field)
             .order_by(Feedback.id.desc()).limit(1))
    last = session.execute(query).first()
    return last is not None and tuple(last) == (value, reason)


def list_feedback(*, session: Session, since: datetime | None = None) -> list[Feedback]:
    query = select(Feedback).order_by(Feedback.id)
    if since is not None:
        query = query.where(Feedback.created_at >= since)
    return list(session.scalars(query))


def list_feedback_with_versions(*, session: Session, since: datetime
                                ) -> list[tuple[Feedback, dict[str, str]]]:
    """Feedback since ``since`` (in order), each with the model versions (target -> version)
    of the answer it judges."""
    rows = session.execute(
        select(Feedback, TriageAnswer.model_versions)
        .join(TriageAnswer, Feedback.answer_id == TriageAnswer.id, isouter=True)
        .where(Feedback.created_at >= since)
        .order_by(Feedback.id))
    return [(feedback, dict(versions or {})) for feedback, versions in rows]


RATINGS = ("helpful", "not_helpful")


def feedback_counts(*, session: Session) -> dict[str, int]:
    """Feedback by kind. Ratings (helpful / not helpful) count each person's latest rating
    of an answer once: a click on Helpful then Not helpful is one "not helpful", not one of
    each. ``rated_answers`` is how many answers those ratings are about; other kinds
    (corrections, root causes) count their clicks."""
    latest = (
        select(func.max(Feedback.id))
        .where(Feedback.kind.in_(RATINGS))
        .group_by(Feedback.answer_id, Feedback.user_id)
    )
    rated = Feedback.id.in_(latest)
    ratings = select(Feedback.kind, func.count()).where(rated).group_by(Feedback.kind)
    clicks = (
        select(Feedback.kind, func.count())
        .where(Feedback.kind.not_in(RATINGS))
        .group_by(Feedback.kind)
    )
    counts = {kind: n for query in (ratings, clicks) for kind, n in session.execute(query)}
    answers = session.scalar(select(func.count(func.distinct(Feedback.answer_id))).where(rated))
    if answers:
        counts["rated_answers"] = int(answers)
    return counts


def add_labeled_example(
    *, session: Session, text: str, field: str, label: str, origin: str, feedback_id: int | None
) -> LabeledExample:
    row = LabeledExample(
        text=text, field=field, label=label, origin=origin, feedback_id=feedback_id
    )
    session.add(row)
    session.flush()
    return row


def list_labeled_examples(*, session: Session, field: str) -> list[LabeledExample]:
    query = select(LabeledExample).where(LabeledExample.field == field)
    return list(session.scalars(query.order_by(LabeledExample.id)))


def labels_signature(*, session: Session) -> tuple[Any, ...]:
    """Changes whenever a labelled record or a label correction is added, changed or
    removed: the incidents' signature and the corrections' count and largest id."""
    row = session.execute(select(func.count(), func.max(LabeledExample.id))).one()
    return (*incidents_signature(session=session), *(str(v) for v in row))


# --- model versions ------------------------------------------------------------------------


def add_model_version(*, session: Session, **fields: Any) -> ModelVersion:
    row = ModelVersion(**fields)
    session.add(row)
    session.flush()
    return row


def get_model_version(*, session: Session, version: str) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.version == version))


def get_active_model(*, session: Session, target: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.target == target, ModelVersion.status == "active")
    )


def list_model_versions(*, session: Session, target: str | None = None) -> list[ModelVersion]:
    query = select(ModelVersion).order_by(ModelVersion.id)
    if target:
        query = query.where(ModelVersion.target == target)
    return list(session.scalars(query))


def activate_model(*, session: Session, row: ModelVersion) -> ModelVersion | None:
    """Make ``row`` the active version of its target; returns the one it replaced."""
    previous = get_active_model(session=session, target=row.target)
    if previous is not None and previous.id != row.id:
        previous.status = "retired"
    row.status = "active"
    row.promoted_at = datetime.now(UTC)
    session.flush()
    return previous if previous is not None and previous.id != row.id else None


def kept_on_these_embeddings(*, session: Session, target: str, version: str,
                             embedding_model: str) -> bool:
    """Whether ``version`` is a champion that kept out a challenger trained on
    ``embedding_model``'s vectors: it was measured on them then, and no retrain is due."""
    return any(v.status == "rejected"
               and (v.decision or {}).get("champion_version") == version
               and (v.library_versions or {}).get("embedding_model") == embedding_model
               for v in list_model_versions(session=session, target=target))


# --- channels, audit, jobs ------------------------------------------------------------------


def get_channel_mode(*, session: Session, channel: str) -> str | None:
    row = session.get(ChannelSetting, channel)
    return row.mode if row else None


def set_channel_mode(*, session: Session, channel: str, mode: str, user_id: str) -> None:
    row = session.get(ChannelSetting, channel)
    if row is None:
        session.add(ChannelSetting(channel=channel, mode=mode, updated_by=user_id))
    else:
        row.mode = mode
        row.updated_by = user_id
    session.flush()


def audit(
    *, session: Session, actor: str, action: str, subject: str = "", detail: dict | None = None
) -> AuditEntry:
    row = AuditEntry(actor=actor, action=action, subject=subject, detail=detail or {})
    session.add(row)
    session.flush()
    return row


def list_audit(*, session: Session, since: datetime | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query))


def acquire_lease(
    *, session: Session, name: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take the named lease if it is free or expired. Caller commits."""
    now = now or datetime.now(UTC)
    lease = session.get(JobLease, name, with_for_update=True)
    if lease is None:
        try:
            with session.begin_nested():
                session.add(JobLease(name=name, holder=holder, expires_at=now + ttl))
                session.flush()
        except IntegrityError:
            return False
        return True
    expires = lease.expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if lease.holder != holder and expires > now:
        return False
    lease.holder = holder
    lease.expires_at = now + ttl
    session.flush()
    return True


def release_lease(*, session: Session, name: str, holder: str) -> None:
    session.execute(delete(JobLease).where(JobLease.name == name, JobLease.holder == holder))


def start_job_run(
    *, session: Session, name: str, holder: str, slot: datetime | None = None
) -> JobRun:
    row = JobRun(name=name, holder=holder, slot=slot)
    session.add(row)
    session.flush()
    return row


def list_job_runs(*, session: Session, name: str | None = None, limit: int = 50) -> list[JobRun]:
    query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    if name:
        query = query.where(JobRun.name == name)
    return list(session.scalars(query))
