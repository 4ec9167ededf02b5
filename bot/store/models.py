"""SQLAlchemy 2 typed models: the source of truth for everything the bot knows.

Index files under the data folder are derived from these rows and can always be
rebuilt from them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict] = {dict[str, Any]: JSON, list[Any]: JSON}


# The incident columns that hold labels; a classifier target may be any of them (or a key of
# ``labels``), and one may refine another (an alert's service decides its category).
LABEL_COLUMNS = ("category", "severity", "priority", "team", "service")


def incident_text(title: str, description: str) -> str:
    """The text an incident is searched and classified by: title, then description."""
    return f"{title}\n{description}".strip()


class Incident(Base):
    """A past incident, alert or ticket: the history similar-incident search runs over."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("external_id", name="uq_incidents_external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="incident", index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    severity: Mapped[str] = mapped_column(String(50), default="")
    priority: Mapped[str] = mapped_column(String(50), default="")
    team: Mapped[str] = mapped_column(String(100), default="")
    service: Mapped[str] = mapped_column(String(200), default="")
    root_cause: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    resolved_by: Mapped[str] = mapped_column(String(200), default="")
    url: Mapped[str] = mapped_column(Text, default="")
    source_name: Mapped[str] = mapped_column(String(200), default="")
    visibility: Mapped[str] = mapped_column(String(100), default="public", index=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    @property
    def text(self) -> str:
        return incident_text(self.title, self.description)

    @property
    def resolved(self) -> bool:
        return bool(self.root_cause or self.resolution)


class RunbookDocument(Base):
    __tablename__ = "runbook_documents"
    __table_args__ = (UniqueConstraint("source", "path", name="uq_runbook_source_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    visibility: Mapped[str] = mapped_column(String(100), default="public")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    chunks: Mapped[list[RunbookChunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="RunbookChunk.ordinal"
    )


class RunbookChunk(Base):
    """One section of a runbook (heading path + text)."""

    __tablename__ = "runbook_chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("runbook_documents.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    heading_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[RunbookDocument] = relationship(back_populates="chunks")


class AlertGroup(Base):
    """A thread that collects related alerts (one storm, one problem)."""

    __tablename__ = "alert_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    channel: Mapped[str] = mapped_column(String(100), default="")
    thread_ts: Mapped[str] = mapped_column(String(50), default="")
    status: Mapped[str] = mapped_column(String(20), default="firing")
    count: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class EventRecord(Base):
    """Every event received (alerts, messages, tickets), including those that posted nothing."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_fingerprint_received", "fingerprint", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(30), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200), default="")
    fingerprint: Mapped[str] = mapped_column(String(100), default="")
    group_key: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="firing")
    channel: Mapped[str] = mapped_column(String(100), default="")
    author: Mapped[str] = mapped_column(String(100), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the event's own pages (rule graph, runbook, dashboard, silence, ticket): kept with the
    # event so that the replica that groups it links them even if another one received it
    links: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(30), default="received", index=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_groups.id", ondelete="SET NULL"), nullable=True, index=True
    )
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the alert pipeline put it in its group: the grouping clock, replayed when another
    # replica (or this one after a restart) rebuilds the open groups.
    grouped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TriageAnswer(Base):
    """An answer shown to someone, with the model and index versions that produced it."""

    __tablename__ = "triage_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL"), nullable=True
    )
    surface: Mapped[str] = mapped_column(String(30), default="cli")
    channel: Mapped[str] = mapped_column(String(100), default="")
    thread_ts: Mapped[str] = mapped_column(String(50), default="")
    message_ts: Mapped[str] = mapped_column(String(50), default="")
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    query: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    index_version: Mapped[str] = mapped_column(String(100), default="")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    """One click on an answer: helpful, not helpful, a label correction, a root cause + fix."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    answer_id: Mapped[int] = mapped_column(
        ForeignKey("triage_answers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(30))
    field: Mapped[str] = mapped_column(String(50), default="")
    value: Mapped[str] = mapped_column(Text, default="")
    item_ref: Mapped[str] = mapped_column(String(300), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabeledExample(Base):
    """A labelled text for training beyond the incidents table (e.g. corrections)."""

    __tablename__ = "labeled_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    field: Mapped[str] = mapped_column(String(50), index=True)
    label: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(50), default="feedback")
    feedback_id: Mapped[int | None] = mapped_column(
        ForeignKey("feedback.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """A trained classifier version and the decision made about it."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(50), index=True)
    version: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(30), default="supervised")
    status: Mapped[str] = mapped_column(String(20), default="candidate")
    artifact_path: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    library_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_train: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SlackEventSeen(Base):
    """Slack event ids already handled, so that a retried event is never answered twice."""

    __tablename__ = "slack_events_seen"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRun(Base):
    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The cron fire time a scheduled run belongs to (None for `triagebot jobs run`): a slot
    # that ran is not run again by the next replica whose trigger fires a moment later.
    slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True,
                                                  index=True)


class JobLease(Base):
    """A lease that lets exactly one replica run a scheduled job at a time."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChannelSetting(Base):
    __tablename__ = "channel_settings"

    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    mode: Mapped[str] = mapped_column(String(20))
    updated_by: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    action: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SchemaCompat(Base):
    """One row, written by each schema upgrade: the newest revision (``head``) and the oldest
    revision whose release can still run on this schema (``oldest_compatible``), so that a
    rolled-back release knows it may start (see ``bot.store.db.upgrade``)."""

    __tablename__ = "schema_compat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    head: Mapped[str] = mapped_column(String(32))
    oldest_compatible: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
