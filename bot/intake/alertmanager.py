"""Alertmanager webhook (``webhook_config``, payload version 4) -> events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.events import EventSource
from bot.intake import _payload as p
from bot.intake._alerts import parse_batch
from bot.intake.batch import AlertBatch
from bot.intake.errors import PayloadError

SUPPORTED_VERSION = "4"


def parse_alertmanager(
    payload: Any,
    *,
    max_alerts: int = 1000,
    max_text_chars: int = 4000,
    received_at: datetime | None = None,
) -> AlertBatch:
    """Parse an Alertmanager v4 notification.

    Unknown fields are ignored; a missing ``version`` is accepted, another version is not.
    Alerts past ``max_alerts`` are not parsed (counted in ``dropped_alerts``); texts, label
    and annotation values are cut to ``max_text_chars``. Raises :class:`PayloadError`.
    """
    body = p.mapping(payload, "")
    version = body.get("version")
    if version is not None and str(version) != SUPPORTED_VERSION:
        if not isinstance(version, str | int) or isinstance(version, bool):
            raise PayloadError("version", "expected a string")
        raise PayloadError("version", f"unsupported version {str(version)[:20]!r}, expected '4'")
    return parse_batch(
        body,
        source=EventSource.ALERTMANAGER,
        max_alerts=max_alerts,
        max_text_chars=max_text_chars,
        received_at=received_at,
    )
