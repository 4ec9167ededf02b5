"""Any JSON value -> a result or PayloadError, never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.intake.alertmanager import parse_alertmanager
from bot.intake.errors import PayloadError
from bot.intake.generic import parse_generic
from bot.intake.grafana import parse_grafana
from tests.strategies import json_values

from .payloads import alertmanager_payload, generic_records, grafana_payload

AM_KEYS = [
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "alerts",
]
ALERT_KEYS = [
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "values",
    "valueString",
    "silenceURL",
    "dashboardURL",
    "panelURL",
]
GRAFANA_KEYS = [*AM_KEYS, "orgId", "title", "state", "message"]
RECORD_KEYS = [
    "id",
    "source",
    "title",
    "description",
    "category",
    "severity",
    "priority",
    "team",
    "service",
    "root_cause",
    "resolution",
    "created_at",
]


def _check(parser, payload: Any) -> None:
    try:
        parser(payload)
    except PayloadError as err:
        assert str(err)


@st.composite
def mutated(draw, base: dict[str, Any], keys: list[str], alert_keys: list[str]) -> Any:
    """A valid payload with some top-level and per-alert fields replaced by random JSON."""
    payload = dict(base)
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        payload[key] = draw(json_values)
    alerts = payload.get("alerts")
    if isinstance(alerts, list) and alerts and isinstance(alerts[0], dict):
        alert = dict(alerts[0])
        for key in draw(st.lists(st.sampled_from(alert_keys), max_size=3)):
            alert[key] = draw(json_values)
        payload["alerts"] = [alert, *alerts[1:]]
    return payload


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(json_values)
def test_any_json_alertmanager(payload: Any) -> None:
    _check(parse_alertmanager, payload)


@FUZZ
@given(mutated(alertmanager_payload(), AM_KEYS, ALERT_KEYS))
def test_mutated_alertmanager(payload: Any) -> None:
    _check(parse_alertmanager, payload)


@FUZZ
@given(json_values)
def test_any_json_grafana(payload: Any) -> None:
    _check(parse_grafana, payload)


@FUZZ
@given(mutated(grafana_payload(), GRAFANA_KEYS, ALERT_KEYS))
def test_mutated_grafana(payload: Any) -> None:
    _check(parse_grafana, payload)


@FUZZ
@given(json_values)
def test_any_json_generic(payload: Any) -> None:
    _check(parse_generic, payload)


@FUZZ
@given(st.lists(st.sampled_from(RECORD_KEYS), max_size=4), st.data())
def test_mutated_generic(keys: list[str], data: st.DataObject) -> None:
    record = dict(generic_records()[0])
    for key in keys:
        record[key] = data.draw(json_values)
    _check(parse_generic, [record, generic_records()[1]])
