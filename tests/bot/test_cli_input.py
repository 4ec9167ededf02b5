"""`triagebot triage --alert/--ticket FILE`: what a hand-written or exported file gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli_input import InputError, event_from_cli

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
    ("alert", [ALERT], "expected an object, got an array"),
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
