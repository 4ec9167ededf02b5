"""The result of parsing one alert webhook call (Alertmanager or Grafana)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.events import AlertStatus, Event, EventSource


@dataclass(frozen=True)
class AlertBatch:
    """One notification: a group of alerts and the group's own fields.

    ``dropped_alerts`` counts alerts beyond the caller's ``max_alerts`` cap (they were not
    parsed); ``truncated_alerts`` is what the sender itself says it left out.
    """

    source: EventSource
    group_key: str
    receiver: str
    status: AlertStatus
    external_url: str
    events: list[Event] = field(default_factory=list)
    group_labels: dict[str, str] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    truncated_alerts: int = 0
    dropped_alerts: int = 0
    title: str = ""
    message: str = ""
