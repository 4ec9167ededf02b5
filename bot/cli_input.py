"""Turning CLI arguments (text, an alert file, a ticket file) into an :class:`Event`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.events import Event, EventKind, EventSource
from bot.sanitize import clean_event


class InputError(ValueError):
    """The CLI input cannot be read as an event."""


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def event_from_cli(
    *, text: str | None, alert: Path | None = None, ticket: Path | None = None
) -> Event:
    given = [x for x in (text, alert, ticket) if x]
    if len(given) != 1:
        raise InputError("give exactly one of TEXT, --alert FILE or --ticket FILE")
    if alert is not None:
        from bot.intake.alertmanager import parse_alertmanager

        data = _read_json(alert)
        if isinstance(data, dict) and "alerts" not in data:
            data = {"version": "4", "status": data.get("status", "firing"), "alerts": [data]}
        batch = parse_alertmanager(data)
        if not batch.events:
            raise InputError(f"{alert}: no alert found")
        return clean_event(batch.events[0])
    if ticket is not None:
        from bot.intake.generic import parse_generic

        events = parse_generic(_read_json(ticket))
        if not events:
            raise InputError(f"{ticket}: no record found")
        return clean_event(events[0])
    assert text is not None
    if not text.strip():
        raise InputError("the text to triage is empty")
    return clean_event(Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=text.strip()))
