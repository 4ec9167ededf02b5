from __future__ import annotations

from bot.events import Event, EventKind, EventSource
from bot.sanitize import clean_event


def test_events_are_repaired_before_they_are_redacted():
    """Mojibake from an upstream tool is undone first, so the redactor sees the real text."""
    garbled = "connexion refusée pour jane.doe@example.com".encode().decode("cp1252")
    assert "Ã©" in garbled
    event = Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=garbled,
                  title="caf\u00c3\u00a9 down")
    cleaned = clean_event(event)
    assert cleaned.title == "café down"
    assert cleaned.text.startswith("connexion refusée pour ")
    assert "jane.doe@example.com" not in cleaned.text
