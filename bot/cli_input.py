"""Turning CLI arguments (text, an alert file, a ticket file) into an :class:`Event`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.events import Event, EventKind, EventSource
from bot.intake.errors import PayloadError
from bot.sanitize import clean_event


class InputError(ValueError):
    """The CLI input cannot be read as an event."""


def _read_json(path: Path) -> Any:
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:  # utf-8-sig: Windows editors start a UTF-8 file with a byte order mark
        return json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def _payload_error(path: Path, exc: PayloadError, strip: str = "") -> InputError:
    """The parser's error about a webhook body, told about the file: ``FILE: field: problem``
    (``strip``: a path prefix the CLI added itself by wrapping one alert)."""
    where = "" if exc.path == "<payload>" else exc.path.removeprefix(strip)
    return InputError(f"{path}: {where + ': ' if where else ''}{exc.problem}")


MAX_EVENTS = 20  # answers one `triagebot triage` prints; a storm belongs to the webhook


def events_from_cli(
    *, text: str | None, alert: Path | None = None, ticket: Path | None = None
) -> tuple[list[Event], int]:
    """The events to triage, at most :data:`MAX_EVENTS`, and how many the input held.

    ``alert``: one Alertmanager alert, a notification (webhook body) or a list of alerts
    (``amtool``/``/api/v2/alerts`` output); ``ticket``: one record or a list of records."""
    given = [x for x in (text, alert, ticket) if x]
    if len(given) != 1:
        raise InputError("give exactly one of TEXT, --alert FILE or --ticket FILE")
    if alert is not None:
        events = alert_events(alert)
    elif ticket is not None:
        events = ticket_events(ticket)
    else:
        assert text is not None
        if not text.strip():
            raise InputError("the text to triage is empty")
        events = [Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=text.strip())]
    return [clean_event(e) for e in events[:MAX_EVENTS]], len(events)


def alert_events(path: Path) -> list[Event]:
    from bot.intake.alertmanager import parse_alertmanager

    data = _read_json(path)
    strip = ""
    if isinstance(data, list):  # the API's alerts: their status is {"state": "active", ...}
        data = {"version": "4", "status": "firing", "alerts": [_api_alert(a) for a in data]}
        strip = "alerts"  # errors read "[2].labels: ...", as in the file
    elif isinstance(data, dict) and "alerts" not in data:
        data = {"version": "4", "status": data.get("status", "firing"), "alerts": [data]}
        strip = "alerts[0]."
    try:
        batch = parse_alertmanager(data)
    except PayloadError as exc:
        raise _payload_error(path, exc, strip) from None
    if not batch.events:
        raise InputError(f"{path}: no alert found")
    for i, event in enumerate(batch.events):
        if not event.labels and not event.annotations:  # a ticket, or not an alert at all
            where = f"alert {i + 1} of {len(batch.events)}" if len(batch.events) > 1 \
                else "the alert"
            raise InputError(f"{path}: {where} has no labels or annotations (an "
                             "Alertmanager alert or notification is expected; a ticket "
                             "record goes to --ticket)")
    return list(batch.events)


def _api_alert(alert: Any) -> Any:
    """An alert of Alertmanager's API (``status: {"state": "active"}``) as a webhook alert."""
    if isinstance(alert, dict) and isinstance(alert.get("status"), dict):
        return {**alert, "status": "firing"}  # active, suppressed or unprocessed: all firing
    return alert


def ticket_events(path: Path) -> list[Event]:
    from bot.intake.generic import parse_generic

    try:
        events = parse_generic(_read_json(path))
    except PayloadError as exc:
        raise _payload_error(path, exc) from None
    if not events:
        raise InputError(f"{path}: no record found")
    return list(events)
