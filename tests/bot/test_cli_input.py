"""`triagebot triage --alert/--ticket FILE`: what a hand-written or exported file gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli_input import MAX_EVENTS, InputError, events_from_cli
from bot.events import Event


def event_from_cli(**given: object) -> Event:
    """The first event the CLI would triage."""
    return events_from_cli(**given)[0][0]  # type: ignore[arg-type]


ALERT = {"labels": {"alertname": "DiskFull", "instance": "db-01"},
         "annotations": {"summary": "Disk /var/lib/postgresql on db-01 is 97% full"}}


def test_a_file_saved_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Windows Notepad and PowerShell's Out-File write one
    alert = tmp_path / "alert.json"
    alert.write_bytes(b"\xef\xbb\xbf" + json.dumps(ALERT).encode())
    assert event_from_cli(text=None, alert=alert).labels["alertname"] == "DiskFull"
    ticket = tmp_path / "ticket.json"
    ticket.write_bytes(b"\xef\xbb\xbf" + json.dumps({"title": "VPN down"}).encode())
    assert event_from_cli(text=None, ticket=ticket).title == "VPN down"


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        event_from_cli(text=None, alert=tmp_path)


@pytest.mark.parametrize(("option", "payload", "message"), [
    ("alert", [ALERT, {"labels": "x"}], "[1].labels: expected an object, got a string"),
    ("alert", "text", "expected an object, got a string"),
    ("ticket", {"id": "1"}, "title: a record needs a title or a description"),
    ("ticket", "text", "expected a record object or an array of records"),
])
def test_a_payload_error_names_the_file(tmp_path: Path, option: str, payload: object,
                                        message: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        event_from_cli(text=None, **{option: path})
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize("payload", [{}, {"title": "VPN down", "source": "ticket"}])
def test_an_alert_without_labels_or_annotations_is_refused(tmp_path: Path,
                                                           payload: object) -> None:
    # it used to be triaged as the text "alert"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(InputError, match="no labels or annotations"):
        event_from_cli(text=None, alert=path)


def test_alertmanagers_own_list_of_alerts_is_triaged_alert_by_alert(tmp_path: Path) -> None:
    # `amtool alert query -o json` and GET /api/v2/alerts give a list, whose alerts carry
    # their state as an object; the CLI used to refuse it ("expected an object")
    api_alert = {**ALERT, "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
                 "fingerprint": "3c7c1d2a5b9e0f11", "startsAt": "2026-12-03T09:00:00Z"}
    other = {"labels": {"alertname": "HighLatency", "service": "checkout"},
             "annotations": {"summary": "p99 latency of checkout above 2 s"},
             "status": {"state": "suppressed"}}
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps([api_alert, other]), encoding="utf-8")
    events, total = events_from_cli(text=None, alert=path)
    assert total == 2
    assert [e.labels["alertname"] for e in events] == ["DiskFull", "HighLatency"]
    assert all(e.status == "firing" for e in events)

    notification = tmp_path / "notification.json"
    notification.write_text(json.dumps({"status": "firing", "alerts": [ALERT] * 25}),
                            encoding="utf-8")
    events, total = events_from_cli(text=None, alert=notification)
    assert (len(events), total) == (MAX_EVENTS, 25)


def test_an_empty_list_of_alerts_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="no alert found"):
        events_from_cli(text=None, alert=path)


def test_a_list_of_tickets_is_triaged_ticket_by_ticket(tmp_path: Path) -> None:
    path = tmp_path / "tickets.json"
    path.write_text(json.dumps([{"title": "VPN down"}, {"title": "Printer jammed"}]),
                    encoding="utf-8")
    events, total = events_from_cli(text=None, ticket=path)
    assert total == 2 and [e.title for e in events] == ["VPN down", "Printer jammed"]
