"""The one normalized shape every input becomes before triage.

Slack messages, slash commands, webhook alerts and CLI input are all turned into an
:class:`Event` by their intake code; everything downstream (dedup, grouping, triage,
storage) only sees this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventSource(StrEnum):
    """Where an event came from."""

    SLACK = "slack"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    GENERIC = "generic"
    CLI = "cli"


class EventKind(StrEnum):
    """What the event is about: it decides which labels matter (severity vs priority)."""

    ALERT = "alert"
    TICKET = "ticket"
    INCIDENT = "incident"
    MESSAGE = "message"


# Tickets and incidents are records: one thread each, their own fields are the reporter's
# (shown beside the model's answer), and a solved one becomes searchable history.
RECORD_KINDS = (EventKind.TICKET, EventKind.INCIDENT)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """A normalized alert, ticket or chat message.

    ``text`` is what gets embedded and searched; ``title`` is the short name shown to
    people (alert name or ticket subject). ``labels`` keep the source's key/value
    labels (Alertmanager labels, ticket fields) as strings. ``fingerprint`` identifies
    "the same alert" for deduplication; ``group_key`` is the source's own grouping key
    (Alertmanager ``groupKey``) when it has one.
    """

    source: EventSource
    kind: EventKind
    text: str
    title: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING
    fingerprint: str = ""
    group_key: str = ""
    external_id: str = ""
    channel: str = ""
    author: str = ""
    thread_ts: str = ""
    received_at: datetime = field(default_factory=utcnow)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    # the event's own pages by kind ("source", "runbook", "dashboard", "silence", "record"...):
    # safe http(s) URLs only, see bot.intake.links
    links: dict[str, str] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def service(self) -> str:
        """The service the event is about, from the usual label names."""
        for key in ("service", "app", "job", "namespace"):
            value = self.labels.get(key)
            if value:
                return value
        return ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")
