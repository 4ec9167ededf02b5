from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.events import AlertStatus, EventKind, EventSource
from bot.intake.alertmanager import parse_alertmanager
from bot.intake.errors import PayloadError
from bot.intake.generic import parse_generic
from bot.intake.grafana import parse_grafana

from .payloads import GROUP_KEY, alertmanager_payload, generic_records, grafana_payload


def test_alertmanager_firing_and_resolved() -> None:
    batch = parse_alertmanager(alertmanager_payload())
    assert batch.group_key == GROUP_KEY
    assert batch.receiver == "triagebot"
    assert batch.status is AlertStatus.FIRING
    assert batch.external_url == "http://alertmanager:9093"
    assert batch.common_labels["cluster"] == "prod-eu-1"
    firing, resolved = batch.events
    assert firing.source is EventSource.ALERTMANAGER and firing.kind is EventKind.ALERT
    assert firing.title == "KubePodCrashLooping"
    assert firing.text.startswith("[critical] KubePodCrashLooping: Pod is crash looping. Pod ")
    assert "CrashLoopBackOff" in firing.text
    assert firing.fingerprint == "5c6a8c3e1f0b2d47"
    assert firing.group_key == GROUP_KEY
    assert firing.starts_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert firing.ends_at is None  # Go's zero time
    assert firing.labels["pod"] == "payments-api-7d9f8b6c5d-x2x9k"
    assert firing.raw["generatorURL"].startswith("http://prometheus:9090/")
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.ends_at == datetime(2024, 5, 1, 9, 58, 30, 500000, tzinfo=UTC)
    # no fingerprint sent: a stable computed one
    assert len(resolved.fingerprint) == 16
    assert resolved.fingerprint == parse_alertmanager(alertmanager_payload()).events[1].fingerprint
    assert resolved.fingerprint != firing.fingerprint


def test_alertmanager_caps() -> None:
    payload = alertmanager_payload()
    payload["alerts"] = payload["alerts"] * 5
    payload["alerts"][0] = dict(payload["alerts"][0], annotations={"description": "x" * 10_000})
    batch = parse_alertmanager(payload, max_alerts=3, max_text_chars=200)
    assert len(batch.events) == 3 and batch.dropped_alerts == 7
    assert len(batch.events[0].text) == 200
    assert len(batch.events[0].annotations["description"]) == 200


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p.update(alerts="nope"), "alerts"),
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.update(status="exploded"), "status"),
        (lambda p: p.update(groupKey=12), "groupKey"),
        (lambda p: p.update(truncatedAlerts="many"), "truncatedAlerts"),
        (lambda p: p.update(commonLabels=[1]), "commonLabels"),
        (lambda p: p["alerts"].append(5), "alerts[2]"),
        (lambda p: p["alerts"][1].update(labels="x"), "alerts[1].labels"),
        (lambda p: p["alerts"][0]["labels"].update(pod={"a": 1}), "alerts[0].labels.pod"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda p: p["alerts"][0].update(endsAt=17), "alerts[0].endsAt"),
        (lambda p: p["alerts"][1].update(fingerprint=[]), "alerts[1].fingerprint"),
    ],
)
def test_alertmanager_malformed_names_field(mutate, path: str) -> None:
    payload = alertmanager_payload()
    mutate(payload)
    with pytest.raises(PayloadError) as err:
        parse_alertmanager(payload)
    assert err.value.path == path
    assert str(err.value).startswith(path + ":")


@pytest.mark.parametrize("payload", [None, [], "x", 4, 1.5])
def test_non_object_payloads(payload) -> None:
    for parser in (parse_alertmanager, parse_grafana):
        with pytest.raises(PayloadError):
            parser(payload)


def test_grafana_payload() -> None:
    batch = parse_grafana(grafana_payload())
    assert batch.title == "[FIRING:2] Infrastructure"
    assert batch.message.startswith("**Firing**")
    assert batch.group_key.endswith('{alertname="High CPU usage"}')
    cpu, disk = batch.events
    assert cpu.source is EventSource.GRAFANA
    assert cpu.text == "[warning] High CPU usage: CPU above 90% on node-3"
    assert cpu.fingerprint == "a1b2c3d4e5f60718"
    assert cpu.raw["values"] == {"B": 93.4, "C": 1.0}
    assert cpu.raw["dashboardURL"] == "https://grafana.example.com/d/node"
    assert cpu.ends_at is None
    # no summary/description: the value string explains the alert
    assert disk.text == "Disk almost full: [ var='A' labels={instance=node-4:9100} value=97 ]"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p.update(orgId="one"), "orgId"),
        (lambda p: p.update(title=["t"]), "title"),
        (lambda p: p["alerts"][0].update(values={"B": "high"}), "alerts[0].values.B"),
        (lambda p: p["alerts"][0].update(values=[1, 2]), "alerts[0].values"),
        (lambda p: p["alerts"][1].update(panelURL=3), "alerts[1].panelURL"),
    ],
)
def test_grafana_malformed_names_field(mutate, path: str) -> None:
    payload = grafana_payload()
    mutate(payload)
    with pytest.raises(PayloadError) as err:
        parse_grafana(payload)
    assert err.value.path == path


def test_generic_record_and_list() -> None:
    records = generic_records()
    (one,) = parse_generic(records[0])
    assert one.kind is EventKind.INCIDENT and one.source is EventSource.GENERIC
    assert one.title == "Checkout latency above SLO"
    assert one.text.startswith("Checkout latency above SLO\np99 of /api/checkout")
    assert one.labels == {
        "category": "performance",
        "severity": "critical",
        "priority": "1",
        "team": "payments",
        "service": "checkout",
    }
    assert one.annotations["resolution"] == "Rolled back the config change."
    assert one.status is AlertStatus.RESOLVED
    assert one.starts_at == datetime(2024, 5, 1, 9, 12, tzinfo=UTC)
    assert one.external_id == "INC-1042"
    both = parse_generic(json.loads(json.dumps(records)))
    assert [e.kind for e in both] == [EventKind.INCIDENT, EventKind.TICKET]
    assert both[1].title == "Cannot log in to VPN from laptop"
    assert both[1].external_id == "7"
    assert both[0].fingerprint == one.fingerprint != both[1].fingerprint


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ("text", "<payload>"),
        ({"id": 1}, "title"),
        ({"title": "x", "source": "email"}, "source"),
        ([{"title": "ok"}, {"title": 5}], "[1].title"),
        ([{"title": "ok", "created_at": "soon"}], "[0].created_at"),
        ([{"title": "ok", "team": ["a"]}], "[0].team"),
        ([{"title": "ok"}] * 3, "<payload>"),
    ],
)
def test_generic_malformed(payload, path: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_generic(payload, max_records=2)
    assert err.value.path == path
