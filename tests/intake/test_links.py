"""The links an alert or record carries to its own pages, read from untrusted payloads."""

from __future__ import annotations

from urllib.parse import unquote

from bot.alert_pipeline import event_from_dict, event_to_dict
from bot.intake.alertmanager import parse_alertmanager
from bot.intake.generic import parse_generic
from bot.intake.grafana import parse_grafana
from bot.intake.links import alertmanager_silence_url, clean_links
from knowledge.urls import safe_url
from tests.intake.payloads import alertmanager_payload


def test_alertmanager_alert_links_its_graph_runbook_and_a_silence() -> None:
    batch = parse_alertmanager(alertmanager_payload())
    first = batch.events[0]
    assert first.links["source"].startswith("http://prometheus:9090/graph?g0.expr=")
    assert first.links["runbook"] == (
        "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
    )
    silence = first.links["silence"]
    assert silence.startswith(batch.external_url.rstrip("/") + "/#/silences/new?filter=")
    matchers = unquote(silence.split("filter=", 1)[1])
    # the notification's common labels: one click silences the group it reported
    assert matchers == (
        '{alertname="KubePodCrashLooping",cluster="prod-eu-1",namespace="payments",'
        'severity="critical"}'
    )
    assert list(first.links) == ["source", "runbook", "silence"]  # display order


def test_grafana_alert_keeps_its_own_dashboard_panel_and_silence_urls() -> None:
    body = {
        "receiver": "triagebot",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "service": "checkout"},
                "annotations": {"summary": "p99 over 2s", "runbook_url": "javascript:alert(1)"},
                "generatorURL": "https://grafana.example.com/alerting/grafana/abc/view",
                "dashboardURL": "https://grafana.example.com/d/xyz",
                "panelURL": "https://grafana.example.com/d/xyz?viewPanel=4",
                "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=g",
                "fingerprint": "f00d",
            }
        ],
        "externalURL": "https://grafana.example.com/",
        "version": "1",
    }
    (event,) = parse_grafana(body).events
    assert event.links == {
        "source": "https://grafana.example.com/alerting/grafana/abc/view",
        "dashboard": "https://grafana.example.com/d/xyz",
        "panel": "https://grafana.example.com/d/xyz?viewPanel=4",
        "silence": "https://grafana.example.com/alerting/silence/new?alertmanager=g",
    }  # the javascript: "runbook" is not a link


def test_hostile_or_broken_urls_are_dropped_and_the_alert_kept() -> None:
    payload = alertmanager_payload()
    alert = payload["alerts"][0]
    alert["generatorURL"] = "http://prom/graph?x=1|<!channel>"
    alert["annotations"]["runbook_url"] = "https://wiki/" + "a" * 3000
    alert["annotations"]["dashboard"] = "see https://grafana/d/1 for details"
    payload["externalURL"] = "file:///etc/passwd"
    (event, _) = parse_alertmanager(payload).events
    assert event.links == {}
    assert event.text.startswith("[critical] KubePodCrashLooping")
    for bad in ("", "ftp://x", "https://a b", "https://a>b", 'https://a"b', None, 42):
        assert safe_url(bad) == ""
    assert alertmanager_silence_url("http://am:9093", {}) == ""
    # a label value with quotes cannot break out of its matcher
    url = alertmanager_silence_url("http://am:9093/", {"job": 'a"b'})
    assert unquote(url.split("filter=", 1)[1]) == '{job="a\\"b"}'


def test_a_record_links_its_own_page() -> None:
    (ticket,) = parse_generic({"id": "INC1", "title": "VPN down", "url": "https://sn/INC1"})
    assert ticket.links == {"record": "https://sn/INC1"}
    (plain,) = parse_generic({"id": "INC2", "title": "VPN down", "url": "not a url"})
    assert plain.links == {}


def test_links_survive_the_spool_and_unknown_or_unsafe_ones_do_not() -> None:
    event = parse_alertmanager(alertmanager_payload()).events[0]
    again = event_from_dict(event_to_dict(event))
    assert again.links == event.links
    data = event_to_dict(event)
    data["links"] = {"source": "javascript:x", "evil": "https://x", "runbook": "https://r"}
    assert event_from_dict(data).links == {"runbook": "https://r"}
    assert clean_links("not a dict") == {} and clean_links(None) == {}


def test_long_links_are_left_out_whole_never_cut_in_the_thread() -> None:
    from types import SimpleNamespace

    from bot.alert_messages import MAX_SECTION, render_group_message

    long = "https://grafana.example.com/d/x?" + "v=1&" * 500  # ~2,000 chars each
    state = SimpleNamespace(
        kind="alert", status="firing", title="Disk", alertnames={"Disk": 1}, firing={"a"},
        resolved=set(), count=1, duplicates=0, reasons=[],
        links={"source": long, "dashboard": long + "z", "runbook": "https://r.example.com"},
    )
    _, blocks = render_group_message(state, None, None)
    (context,) = [b for b in blocks if b["type"] == "context"]
    line = context["elements"][-1]["text"]
    assert len(line) <= MAX_SECTION
    assert line.count("<") == line.count(">") == 2  # two whole links, none cut
    assert "|Source>" in line and "|Runbook>" in line and "Dashboard" not in line


def test_a_link_that_carries_a_secret_is_dropped_not_redacted() -> None:
    from bot.sanitize import clean_event

    payload = alertmanager_payload()
    alert = payload["alerts"][0]
    alert["generatorURL"] = "https://backup:S3cr3t-pw@prometheus.example.com/graph"
    alert["labels"]["aws_access_key_id"] = "AKIAFAKEFAKEFAKE7Q2Z"
    payload["commonLabels"] = {}  # the silence is then built from the alert's own labels
    event = parse_alertmanager(payload).events[0]
    assert {"source", "silence", "runbook"} <= set(event.links)
    cleaned = clean_event(event)
    assert cleaned.links == {"runbook": event.links["runbook"]}


def test_a_silence_is_made_only_of_labels_the_alert_carries() -> None:
    """A sender's commonLabels that the alert does not carry (a hostile or broken body)
    never reach the silence link: it is checked through the alert's redacted labels."""
    from bot.sanitize import clean_event

    payload = alertmanager_payload()
    payload["commonLabels"] = {"alertname": "KubePodCrashLooping",
                               "token": "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake1234"}
    event = clean_event(parse_alertmanager(payload).events[0])
    matchers = unquote(event.links["silence"].split("filter=", 1)[1])
    assert matchers == '{alertname="KubePodCrashLooping"}'


def test_what_a_runbook_url_names() -> None:
    from bot.intake.links import runbook_names

    assert runbook_names(
        "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/"
    ) == ("kubepodcrashlooping",)
    assert runbook_names("https://wiki.example.com/ops/Disk%20Full.md") == ("Disk Full",)
    assert runbook_names(
        "https://github.com/k/mixin/blob/master/runbook.md#alert-name-kubepodcrashlooping"
    ) == ("runbook", "kubepodcrashlooping")
    assert runbook_names("https://wiki.example.com/runbooks/README.md") == ()
    assert runbook_names("") == ()


def test_dashboard_annotations_and_a_records_runbook_are_links() -> None:
    payload = alertmanager_payload()
    payload["alerts"][0]["annotations"]["Dashboard-URL"] = "https://grafana.example.com/d/k8s"
    event = parse_alertmanager(payload).events[0]
    assert event.links["dashboard"] == "https://grafana.example.com/d/k8s"  # case, '-' ignored
    (ticket,) = parse_generic({"id": "INC3", "title": "VPN down",
                               "runbook_url": "https://wiki.example.com/vpn"})
    assert ticket.links == {"runbook": "https://wiki.example.com/vpn"}


def test_how_long_a_resolved_group_lasted_reads_naturally() -> None:
    from types import SimpleNamespace

    from bot.alert_messages import resolution_reply

    def lasted(seconds: float) -> str:
        state = SimpleNamespace(firing=set(), resolved={"a"}, count=1, opened_at=1_000.0,
                                answer_id=7)
        text, blocks = resolution_reply(state, 1_000.0 + seconds)
        assert blocks[1]["elements"][0]["value"] == "7"
        return text.split(", ", 1)[1].split(" after")[0]

    assert [lasted(s) for s in (20, 42 * 60, 3 * 3600 + 5 * 60, 3 * 86400)] == [
        "0 min", "42 min", "3 h 5 min", "3 days"]
