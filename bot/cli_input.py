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


def event_from_cli(
    *, text: str | None, alert: Path | None = None, ticket: Path | None = None
) -> Event:
    given = [x for x in (text, alert, ticket) if x]
    if len(given) != 1:
        raise InputError("give exactly one of TEXT, --alert FILE or --ticket FILE")
    if alert is not None:
        from bot.intake.alertmanager import parse_alertmanager

        data = _read_json(alert)
        wrapped = isinstance(data, dict) and "alerts" not in data
        if wrapped:
            data = {"version": "4", "status": data.get("status", "firing"), "alerts": [data]}
        try:
            batch = parse_alertmanager(data)
        except PayloadError as exc:
            raise _payload_error(alert, exc, "alerts[0]." if wrapped else "") from None
        if not batch.events:
            raise InputError(f"{alert}: no alert found")
        event = batch.events[0]
        if not event.labels and not event.annotations:  # a ticket, or not an alert at all
            raise InputError(f"{alert}: the alert has no labels or annotations (an "
                             "Alertmanager alert or notification is expected; a ticket "
                             "record goes to --ticket)")
        return clean_event(event)
    if ticket is not None:
        from bot.intake.generic import parse_generic

        try:
            events = parse_generic(_read_json(ticket))
        except PayloadError as exc:
            raise _payload_error(ticket, exc) from None
        if not events:
            raise InputError(f"{ticket}: no record found")
        return clean_event(events[0])
    assert text is not None
    if not text.strip():
        raise InputError("the text to triage is empty")
    return clean_event(Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=text.strip()))
