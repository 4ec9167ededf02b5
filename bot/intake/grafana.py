"""Grafana unified alerting webhook (contact point type "webhook", version "1") -> events."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.events import EventSource
from bot.intake import _payload as p
from bot.intake._alerts import parse_batch
from bot.intake.batch import AlertBatch
from bot.intake.errors import PayloadError

_EXTRA_FIELDS = ("silenceURL", "dashboardURL", "panelURL", "imageURL", "valueString")


def parse_grafana(
    payload: Any,
    *,
    max_alerts: int = 1000,
    max_text_chars: int = 4000,
    received_at: datetime | None = None,
) -> AlertBatch:
    """Parse a Grafana alerting webhook notification.

    Like :func:`bot.intake.alertmanager.parse_alertmanager`; in addition each event's
    ``raw`` keeps ``values`` and the silence/dashboard/panel URLs, and the batch keeps
    Grafana's ``title`` and ``message``. ``orgId`` and ``state`` are type-checked.
    """
    body = p.mapping(payload, "")
    version = body.get("version")
    if (version is not None and not isinstance(version, str | int | float)) or isinstance(
        version, bool
    ):
        raise PayloadError("version", "expected a string")
    p.opt_int(body, "orgId", "")
    p.opt_str(body, "state", "", 64)
    title = p.opt_str(body, "title", "", max_text_chars)
    message = p.opt_str(body, "message", "", max_text_chars)
    batch = parse_batch(
        body,
        source=EventSource.GRAFANA,
        max_alerts=max_alerts,
        max_text_chars=max_text_chars,
        received_at=received_at,
        extra_fields=_EXTRA_FIELDS,
    )
    return replace(batch, title=title, message=message)
