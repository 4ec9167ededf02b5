"""Webhook limits: deeply nested JSON, the per-call alert caps and the generic text cap."""

from __future__ import annotations

from sqlalchemy import select

from bot.store.db import session_scope
from bot.store.models import EventRecord
from tests.intake_http.test_webhooks import alert, count_events, notification, post


def test_deeply_nested_json_gets_400_not_500(harness) -> None:
    client, services, _ = harness
    body = b"[" * 200_000
    assert len(body) <= services.settings.max_body_bytes, "must pass the size check"
    before = count_events(services)
    for source in ("alertmanager", "generic"):
        answer = post(client, body, source=source)
        assert answer.status_code == 400, answer.text
        assert answer.json() == {
            "ok": False,
            "error": "body is not acceptable JSON: nested too deeply",
        }
    assert count_events(services) == before


def test_generic_records_over_the_cap_get_422_and_store_nothing(harness) -> None:
    client, services, _ = harness
    cap = services.settings.max_alerts_per_call
    records = [{"id": f"cap-{i}", "title": f"disk full on host-{i}"} for i in range(cap + 1)]
    before = count_events(services)
    answer = post(client, records, source="generic")
    assert answer.status_code == 422, answer.text
    assert f"{cap + 1} records, at most {cap}" in answer.json()["error"]
    assert count_events(services) == before


def test_generic_text_is_cut_at_the_settings_max_text_chars(harness) -> None:
    client, services, pipeline = harness
    limit = services.settings.max_text_chars
    assert limit < 8000, "the settings limit must be below parse_generic's default"
    record = {
        "id": "TEXT-CAP-1",
        "title": "Checkout page slow",
        "description": "checkout latency high " * 1000,
    }
    assert len(record["description"]) > 8000
    answer = post(client, record, source="generic")
    assert answer.status_code == 202, answer.text
    assert pipeline().wait_idle()
    with session_scope(services.sessions) as session:
        texts = session.scalars(
            select(EventRecord.text).where(EventRecord.external_id == "TEXT-CAP-1")
        ).all()
    assert len(texts) == 1
    assert len(texts[0]) == limit
    assert texts[0].startswith("Checkout page slow\ncheckout latency high")
    assert texts[0].endswith("…")


def test_alertmanager_alerts_past_the_cap_are_counted_in_the_answer(harness) -> None:
    client, services, pipeline = harness
    cap = services.settings.max_alerts_per_call
    alerts = [alert("DiskFull", f"db-{i}:9100") for i in range(cap + 3)]
    before = count_events(services)
    answer = post(client, notification(alerts))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"ok": True, "accepted": cap, "dropped": 3}
    assert pipeline().wait_idle()
    assert count_events(services) == before + cap
    small = post(client, notification([alert("DiskFull", "db-x:9100")]))
    assert small.json() == {"ok": True, "accepted": 1}  # no "dropped" key when none were
