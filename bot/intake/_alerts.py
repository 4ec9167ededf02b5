"""Shared parsing of the Alertmanager-shaped webhook body (Alertmanager and Grafana)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.events import AlertStatus, Event, EventKind, EventSource, utcnow
from bot.intake import _payload as p
from bot.intake.batch import AlertBatch
from bot.intake.errors import PayloadError
from bot.intake.fingerprint import alert_fingerprint
from bot.intake.links import alert_links

STATUSES = {"firing", "resolved"}
MAX_URL_CHARS = 2048
MAX_KEY_CHARS = 512  # groupKey, receiver, fingerprint


def alert_text(labels: Mapping[str, str], annotations: Mapping[str, str], extra: str = "") -> str:
    """``[severity] alertname: summary. description`` with whatever of it exists."""
    name = labels.get("alertname", "") or "alert"
    head = f"[{labels['severity']}] {name}" if labels.get("severity") else name
    summary = (annotations.get("summary") or annotations.get("message") or "").strip()
    description = (annotations.get("description") or "").strip()
    body = [s for s in (summary, description, extra.strip()) if s]
    for i in range(len(body) - 1):
        if body[i][-1] not in ".!?:":
            body[i] += "."
    if not body:
        shown = [
            f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
        ]
        body = [" ".join(shown)] if shown else []
    return f"{head}: {' '.join(body)}" if body else head


def parse_batch(
    payload: Any,
    *,
    source: EventSource,
    max_alerts: int,
    max_text_chars: int,
    received_at: datetime | None,
    extra_fields: tuple[str, ...] = (),
) -> AlertBatch:
    """Parse the common body; ``extra_fields`` are per-alert string fields kept in ``raw``."""
    if max_alerts < 0 or max_text_chars < 1:
        raise ValueError("max_alerts must be >= 0 and max_text_chars >= 1")
    body = p.mapping(payload, "")
    status = p.choice(body, "status", "", STATUSES, "firing")
    group_key = p.opt_str(body, "groupKey", "", MAX_KEY_CHARS)
    receiver = p.opt_str(body, "receiver", "", MAX_KEY_CHARS)
    external_url = p.opt_str(body, "externalURL", "", MAX_URL_CHARS)
    truncated = p.opt_int(body, "truncatedAlerts", "")
    group_labels = p.str_map(body, "groupLabels", "", max_text_chars)
    common_labels = p.str_map(body, "commonLabels", "", max_text_chars)
    common_annotations = p.str_map(body, "commonAnnotations", "", max_text_chars)
    alerts = body.get("alerts")
    if alerts is None:
        raise PayloadError("alerts", "missing")
    if not isinstance(alerts, list):
        raise PayloadError("alerts", "expected an array")
    when = received_at or utcnow()
    events = [
        _parse_alert(
            alert,
            f"alerts[{i}]",
            source=source,
            default_status=status,
            group_key=group_key,
            max_text_chars=max_text_chars,
            received_at=when,
            extra_fields=extra_fields,
            external_url=external_url,
            common_labels=common_labels,
        )
        for i, alert in enumerate(alerts[:max_alerts])
    ]
    return AlertBatch(
        source=source,
        group_key=group_key,
        receiver=receiver,
        status=AlertStatus(status),
        external_url=external_url,
        events=events,
        group_labels=group_labels,
        common_labels=common_labels,
        common_annotations=common_annotations,
        truncated_alerts=truncated,
        dropped_alerts=max(0, len(alerts) - max_alerts),
    )


def _parse_alert(
    value: Any,
    path: str,
    *,
    source: EventSource,
    default_status: str,
    group_key: str,
    max_text_chars: int,
    received_at: datetime,
    extra_fields: tuple[str, ...],
    external_url: str,
    common_labels: dict[str, str],
) -> Event:
    alert = p.mapping(value, path)
    status = p.choice(alert, "status", path, STATUSES, default_status)
    labels = p.str_map(alert, "labels", path, max_text_chars)
    annotations = p.str_map(alert, "annotations", path, max_text_chars)
    starts_at = p.opt_time(alert, "startsAt", path)
    ends_at = p.opt_time(alert, "endsAt", path)
    generator_url = p.opt_str(alert, "generatorURL", path, MAX_URL_CHARS)
    fingerprint = p.opt_str(alert, "fingerprint", path, MAX_KEY_CHARS)
    raw: dict[str, Any] = {"generatorURL": generator_url}
    for key in extra_fields:
        raw[key] = p.opt_str(alert, key, path, MAX_URL_CHARS)
    extra = ""
    if source is EventSource.GRAFANA:
        raw["values"] = _values(alert, path)
        if not (annotations.get("summary") or annotations.get("description")):
            extra = raw.get("valueString", "")
    event = Event(
        source=source,
        kind=EventKind.ALERT,
        text=p.cap(alert_text(labels, annotations, extra), max_text_chars),
        title=p.cap(labels.get("alertname", "") or "alert", 256),
        labels=labels,
        annotations=annotations,
        status=AlertStatus(status),
        fingerprint=fingerprint,
        group_key=group_key,
        external_id=fingerprint,
        received_at=received_at,
        starts_at=starts_at,
        ends_at=ends_at,
        links=alert_links(
            generator_url=generator_url,
            annotations=annotations,
            # the notification's common labels: the silence covers what it reported (only
            # those the alert carries too: bot.sanitize relies on that to check it)
            labels={k: v for k, v in common_labels.items() if labels.get(k) == v} or labels,
            extra=raw,
            external_url=external_url if source is EventSource.ALERTMANAGER else "",
        ),
        raw=raw,
    )
    if not fingerprint:
        computed = alert_fingerprint(event)
        event = replace(event, fingerprint=computed, external_id=computed)
    return event


def _values(alert: Mapping[str, Any], path: str) -> dict[str, float | None]:
    """Grafana's ``values``: an object of numbers (null for NaN)."""
    value = alert.get("values")
    here = p.join(path, "values")
    if value is None:
        return {}
    items = p.mapping(value, here)
    out: dict[str, float | None] = {}
    for k, v in list(items.items())[:64]:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise PayloadError(p.join(here, str(k)), "expected a number")
        out[str(k)[:256]] = None if v is None else float(v)
    return out
