"""/metrics parses with the Prometheus text parser and moves when events are processed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.intake_http.test_webhooks import alert, notification, post


def scrape(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[key] = sample.value
    return samples


def test_metrics_parse_and_move_with_events(harness) -> None:
    client, _, pipeline = harness
    before = scrape(client)
    assert before["triagebot_ready"] == 1.0
    assert before["triagebot_index_entries|index=runbooks"] > 0
    assert any(k.startswith("triagebot_active_model_info|") for k in before)
    body = notification([alert("MetricsProbeAlert", f"probe-{i}") for i in range(3)], "m")
    assert post(client, body).status_code == 202
    assert pipeline().wait_idle()
    after = scrape(client)
    accepted = "triagebot_events_total|outcome=accepted|source=alertmanager"
    assert after[accepted] - before.get(accepted, 0.0) == 3
    triage_count = "triagebot_triage_seconds_count"
    assert after.get(triage_count, 0.0) > before.get(triage_count, 0.0)
