"""Webhooks through the real HTTP app: credentials, limits, bad payloads, storms, dedup."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.store.db import session_scope
from bot.store.models import AlertGroup, EventRecord
from tests.intake_http.conftest import CHANNEL, GRAFANA_SECRET, TOKEN


def alert(name: str, instance: str, *, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "critical", "instance": instance, **labels},
        "annotations": {
            "summary": f"{name} on {instance}",
            "description": f"{name} has been firing for 5 minutes on {instance}.",
        },
        "startsAt": "2026-11-25T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": hashlib.sha1(f"{name}{instance}".encode()).hexdigest()[:16],
    }


def notification(alerts: list[dict[str, Any]], group_key: str = "{}:{alertname=\"X\"}") -> dict:
    return {
        "version": "4",
        "groupKey": group_key,
        "status": "firing",
        "receiver": "triagebot",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def post(client: TestClient, body: Any, *, token: str | None = TOKEN, source: str = "alertmanager"):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/webhooks/{source}", content=data, headers=headers)


def count_events(services: Any) -> int:
    with session_scope(services.sessions) as session:
        return session.scalar(select(func.count()).select_from(EventRecord)) or 0


def test_missing_or_wrong_credentials_get_401_and_change_nothing(harness) -> None:
    client, services, _ = harness
    before = count_events(services)
    body = notification([alert("DiskFull", "db-01:9100")])
    assert post(client, body, token=None).status_code == 401
    assert post(client, body, token="wrong").status_code == 401
    unsigned = client.post("/webhooks/grafana", json={"alerts": []})
    assert unsigned.status_code == 401
    assert count_events(services) == before


def test_hmac_signature_accepted_for_grafana(harness) -> None:
    client, services, pipeline = harness
    body = json.dumps(
        {
            "receiver": "triagebot",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "HighLatency", "service": "checkout"},
                    "annotations": {"summary": "p99 latency above 2s on checkout"},
                    "startsAt": "2026-11-25T10:00:00Z",
                    "fingerprint": "g1",
                }
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(GRAFANA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    before = count_events(services)
    answer = client.post(
        "/webhooks/grafana", content=body, headers={"x-triagebot-signature": signature}
    )
    assert answer.status_code == 202, answer.text
    assert count_events(services) == before + 1
    assert pipeline().wait_idle()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe\x00", 400, "UTF-8"),
        (json.dumps({"version": "4", "alerts": "nope"}).encode(), 422, "alerts"),
        (json.dumps({"version": "4", "alerts": [{"labels": []}]}).encode(), 422, "labels"),
        (json.dumps({"version": "9", "alerts": []}).encode(), 422, "version"),
    ],
)
def test_malformed_payloads_get_4xx_naming_the_problem(harness, body, status, words) -> None:
    from bot.metrics import EVENTS
    from tests.conftest import counter_value

    client, services, _ = harness
    before = count_events(services)
    rejected = counter_value(EVENTS, source="alertmanager", outcome="rejected")
    answer = post(client, body)
    assert answer.status_code == status
    assert words in answer.json()["error"]
    assert count_events(services) == before
    # every malformed call is counted, so the "webhook rejected" alert sees it
    assert counter_value(EVENTS, source="alertmanager", outcome="rejected") == rejected + 1


def test_oversized_body_is_refused(harness) -> None:
    client, services, _ = harness
    before = count_events(services)
    big = notification([alert("DiskFull", f"host-{i}:9100") for i in range(2000)])
    answer = post(client, big)
    assert answer.status_code == 413
    assert count_events(services) == before


def test_storm_makes_one_thread_per_problem_and_stores_every_alert(harness, fake) -> None:
    client, services, pipeline = harness
    fake.reset()
    before = count_events(services)
    problems = [
        ("KubePodCrashLooping", {"namespace": "payments", "service": "payments-api"}),
        ("NodeFilesystemSpaceFillingUp", {"cluster": "prod-eu", "service": "node"}),
        ("PostgresReplicationLag", {"cluster": "db-prod", "service": "postgres"}),
        ("HTTP5xxRateHigh", {"namespace": "checkout", "service": "checkout-api"}),
    ]
    sent = 0
    for round_ in range(5):
        for name, labels in problems:
            alerts = [alert(name, f"{name.lower()}-{i}", **labels) for i in range(10)]
            answer = post(client, notification(alerts, group_key=f"{{}}:{{alertname={name}}}"))
            assert answer.status_code == 202
            sent += len(alerts)
        del round_
    assert pipeline().wait_idle(timeout=120)
    assert count_events(services) == before + sent
    posts = fake.calls_of("chat.postMessage")
    assert len(posts) == len(problems), [p.args.get("text", "")[:60] for p in posts]
    assert all(p.args["channel"] == CHANNEL for p in posts)
    # Re-deliveries were recognized as duplicates, and each thread shows its running count.
    with session_scope(services.sessions) as session:
        outcomes = dict(
            session.execute(
                select(EventRecord.outcome, func.count()).group_by(EventRecord.outcome)
            ).all()
        )
        groups = session.scalars(select(AlertGroup).where(AlertGroup.channel == CHANNEL)).all()
    assert outcomes.get("duplicate", 0) >= 4 * 10 * 4
    names = {name for name, _ in problems}
    storm_groups = [g for g in groups if set(g.summary.get("alertnames", {})) <= names]
    assert sorted(g.count for g in storm_groups) == [10] * len(problems)
    pipeline().flush(force=True)
    assert fake.calls_of("chat.update"), "top messages are updated with the running count"


def test_resolved_alert_marks_its_thread_resolved(harness, fake) -> None:
    client, _, pipeline = harness
    fake.reset()
    labels = {"service": "billing", "namespace": "billing"}
    firing = alert("CertificateExpiringSoon", "billing-gw", **labels)
    assert post(client, notification([firing], group_key="cert")).status_code == 202
    assert pipeline().wait_idle()
    fake.wait_for(lambda c: c.method == "chat.postMessage")
    resolved = alert("CertificateExpiringSoon", "billing-gw", status="resolved", **labels)
    assert post(client, notification([resolved], group_key="cert")).status_code == 202
    assert pipeline().wait_idle()
    pipeline().flush(force=True)
    updates = fake.wait_for(lambda c: c.method == "chat.update" and "RESOLVED" in c.args["text"])
    assert updates
    # ... and the thread is asked, once, for the root cause: the answer's own form
    (top,) = fake.calls_of("chat.postMessage")[:1]
    (reply,) = fake.wait_for(lambda c: c.method == "chat.postMessage" and c.args.get("thread_ts"))
    thread = next(m for m in reversed(fake.top_messages(CHANNEL))
                  if "CertificateExpiringSoon" in m.get("text", ""))
    assert reply.args["thread_ts"] == thread["ts"]
    assert reply.args["text"].startswith(":white_check_mark: Resolved: 1 alert(s)")
    (button,) = reply.args["blocks"][1]["elements"]
    assert button["action_id"] == "triage_record_root_cause"
    feedback = next(b for b in top.args["blocks"]
                    if b.get("block_id", "").startswith("triage_feedback"))
    assert button["value"] == next(e["value"] for e in feedback["elements"]
                                   if e["action_id"] == "triage_record_root_cause")
    pipeline().flush(force=True)
    assert len([c for c in fake.calls_of("chat.postMessage") if c.args.get("thread_ts")]) == 1


def test_alert_thread_offers_every_known_label_for_a_correction(harness, fake) -> None:
    """The on-call corrects a wrong label on the alert's own message: every label the
    models know is offered (as in answers to messages), not only the top three candidates
    the prediction ranked, which the right label is often not among."""
    import threading
    from types import SimpleNamespace

    from bot.slack.service import SlackBot

    client, services, pipeline = harness
    fake.reset()
    body = notification([alert("RedisMemoryHigh", "cache-09", service="cache")], group_key="rl")
    assert post(client, body).status_code == 202
    assert pipeline().wait_idle()
    (posted,) = fake.wait_for(lambda c: c.method == "chat.postMessage")
    correction = next(
        e
        for b in posted.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "triage_correct_label"
    )
    offered = {
        g["label"]["text"]: [o["text"]["text"] for o in g["options"]]
        for g in correction["option_groups"]
    }
    ready = threading.Event()
    ready.set()
    runtime = SimpleNamespace(
        settings=services.settings, services=services, components={}, ready=ready
    )
    known = SlackBot(runtime, pipeline().poster).label_options()  # what message answers offer
    assert len(known["category"]) > 3
    assert offered["Category"] == known["category"]


def test_top_message_names_each_alert_once_whatever_its_status_changes(harness, fake) -> None:
    """An alert that fired, was re-sent and then resolved is one alert: the header said
    "1 alert(s)" while the line under it said "DiskAlmostFull x2" (each status change was
    counted as one more alert of that name)."""
    client, _, pipeline = harness
    fake.reset()
    labels = {"service": "pg", "mountpoint": "/var/lib/postgresql"}
    firing = alert("DiskAlmostFull", "db-07:9100", **labels)
    other = alert("DiskAlmostFull", "db-08:9100", **labels)
    assert post(client, notification([firing, other], group_key="dx")).status_code == 202
    assert pipeline().wait_idle()
    fake.wait_for(lambda c: c.method == "chat.postMessage")
    assert post(client, notification([firing, other], group_key="dx")).status_code == 202
    resolved = alert("DiskAlmostFull", "db-07:9100", status="resolved", **labels)
    assert post(client, notification([resolved, other], group_key="dx")).status_code == 202
    assert pipeline().wait_idle()
    pipeline().flush(force=True)
    (update, *_) = fake.wait_for(
        lambda c: c.method == "chat.update" and "1 resolved" in c.args["text"]
    )
    shown = update.blocks_text()
    assert "2 alert(s): 1 firing, 1 resolved" in shown, shown
    assert "DiskAlmostFull x2" in shown and "DiskAlmostFull x3" not in shown, shown


def test_a_ticket_thread_is_not_announced_as_a_firing_alert(harness, fake) -> None:
    """A help-desk ticket sent to /webhooks/generic was posted as ":rotating_light: [FIRING]
    <title>: 1 alert(s)" with "Alerts: <title> x1" under it, and re-sent as "1 repeat
    notification(s)": the agent read an alert storm where one ticket arrived."""
    client, _, pipeline = harness
    fake.reset()
    ticket = {
        "id": "HD-4711",
        "source": "ticket",
        "title": "Drucker im 2. Stock druckt nicht",
        "description": "Der Drucker in Büro 2.14 zeigt 'Störung' und druckt nichts mehr.",
    }
    assert post(client, ticket, source="generic").status_code == 202
    assert pipeline().wait_idle()
    (posted,) = fake.wait_for(lambda c: c.method == "chat.postMessage")
    head = posted.args["blocks"][0]["text"]["text"]
    assert head == ":ticket: *[TICKET] Drucker im 2. Stock druckt nicht*", head
    assert posted.args["text"].startswith("[TICKET] Drucker im 2. Stock druckt nicht\n")
    assert "alert(s)" not in posted.blocks_text() and "Alerts:" not in posted.blocks_text()
    assert post(client, ticket, source="generic").status_code == 202
    assert pipeline().wait_idle()
    pipeline().flush(force=True)
    (update, *_) = fake.wait_for(lambda c: c.method == "chat.update")
    head = update.args["blocks"][0]["text"]["text"]
    assert head == ":ticket: *[TICKET] Drucker im 2. Stock druckt nicht*: received 2 times", head

    fake.reset()
    solved = {"id": "INC-77", "source": "incident", "title": "VPN gateway licence limit",
              "description": "Nobody could connect to vpn-eu.", "resolution": "Raised it."}
    assert post(client, solved, source="generic").status_code == 202
    assert pipeline().wait_idle()
    (posted,) = fake.wait_for(lambda c: c.method == "chat.postMessage")
    head = posted.args["blocks"][0]["text"]["text"]
    assert head == ":white_check_mark: *[INCIDENT, RESOLVED] VPN gateway licence limit*", head


def test_a_body_in_the_charset_its_content_type_declares_is_read_in_it(harness, fake) -> None:
    """A ticket tool that sends ``application/json; charset=ISO-8859-1`` (a Latin-1 body,
    as it says) got 400 "body is not UTF-8", which senders do not retry: the ticket was
    lost. The declared charset is now used; a body that is not in it is still a 400."""
    client, services, pipeline = harness
    fake.reset()
    record = {"id": "HD-0815", "source": "ticket", "title": "Drucker im Büro 2.14 druckt nicht",
              "description": "Fehler 'Störung', seit heute früh. Grüße, Jürgen"}
    body = json.dumps(record, ensure_ascii=False).encode("latin-1")
    headers = {"authorization": f"Bearer {TOKEN}",
               "content-type": "application/json; charset=ISO-8859-1"}
    before = count_events(services)
    answer = client.post("/webhooks/generic", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert count_events(services) == before + 1
    assert pipeline().wait_idle()
    (posted,) = fake.wait_for(lambda c: c.method == "chat.postMessage")
    assert "Drucker im Büro 2.14 druckt nicht" in posted.args["text"]

    undeclared = client.post("/webhooks/generic", content=body,
                             headers={**headers, "content-type": "application/json"})
    assert undeclared.status_code == 400 and "UTF-8" in undeclared.json()["error"]
    unknown = client.post("/webhooks/generic", content=body,
                          headers={**headers, "content-type": "application/json; charset=klingon"})
    assert unknown.status_code == 400 and "klingon" in unknown.json()["error"]
    assert count_events(services) == before + 1


def test_an_alert_thread_links_the_alerts_graph_runbook_and_silence(harness, fake) -> None:
    """On-call opens the rule's graph, its runbook and a silence first: the thread links
    them from the alert's own fields. A hostile URL is not turned into a link."""
    client, services, pipeline = harness
    fake.reset()
    firing = alert("EtcdHighFsyncDurations", "etcd-0", service="etcd")
    firing["generatorURL"] = "http://prometheus:9090/graph?g0.expr=histogram_quantile"
    firing["annotations"]["runbook_url"] = "https://runbooks.example.com/etcd/fsync"
    firing["annotations"]["dashboard"] = "javascript:alert(document.cookie)"
    body = notification([firing], group_key="etcd-fsync")
    body["commonLabels"] = {"alertname": "EtcdHighFsyncDurations", "service": "etcd"}
    assert post(client, body).status_code == 202
    assert pipeline().wait_idle()
    (posted,) = fake.wait_for(lambda c: c.method == "chat.postMessage")
    context = " ".join(
        e["text"] for b in posted.args["blocks"] if b["type"] == "context" for e in b["elements"]
    )
    assert "<http://prometheus:9090/graph?g0.expr=histogram_quantile|Source>" in context
    assert "<https://runbooks.example.com/etcd/fsync|Runbook>" in context
    silence = ("<http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22"
               "EtcdHighFsyncDurations%22%2Cservice%3D%22etcd%22%7D|Silence>")
    assert silence in context, context
    assert "javascript" not in posted.blocks_text() and "Dashboard" not in context
    from slack_sdk.models.blocks import Block

    Block.parse_all(posted.args["blocks"])  # valid Block Kit
    with session_scope(services.sessions) as session:
        row = session.scalars(
            select(EventRecord).where(EventRecord.group_key == "etcd-fsync")
        ).one()
        assert row.links["runbook"] == "https://runbooks.example.com/etcd/fsync"


def test_a_ticket_thread_shows_the_values_it_was_filed_with_beside_the_models(
    harness, fake
) -> None:
    """The agent sees the reporter's priority and category next to the model's answer (which
    stays the answer: a reporter's "P1" is what triage is there to check), and the ticket's
    own page is linked."""
    client, _, pipeline = harness
    fake.reset()
    ticket = {"id": "HD-5150", "source": "ticket", "priority": "P1", "category": "network",
              "url": "https://helpdesk.example.com/HD-5150",
              "title": "Cannot log in to the VPN",
              "description": "The VPN client says authentication failed since this morning."}
    assert post(client, ticket, source="generic").status_code == 202
    assert pipeline().wait_idle()
    (posted,) = fake.wait_for(lambda c: c.method == "chat.postMessage")
    text = posted.blocks_text()
    assert "filed as P1" in text or "*Priority:* P1 (" in text, text
    assert "*Category:* network (" in text and "as filed" in text, text
    assert "<https://helpdesk.example.com/HD-5150|Ticket>" in text, text


def _wait_for_incident(services: Any, external_id: str, timeout: float = 30.0) -> Any:
    import time

    from bot.store.models import Incident

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(services.sessions) as session:
            row = session.scalars(
                select(Incident).where(Incident.external_id == external_id)
            ).one_or_none()
            if row is not None and row.resolution:
                session.expunge(row)
                return row
        time.sleep(0.05)
    return None


def test_a_solved_ticket_from_the_help_desk_becomes_searchable_history(harness, fake) -> None:
    """The help desk sends a ticket when it is opened and again when it is solved. The
    solved version is stored as a past ticket (searchable at once, labelled for the next
    retrain); the open one is not, and a re-send changes nothing."""
    from bot.events import Event, EventKind, EventSource

    client, services, pipeline = harness
    fake.reset()
    opened = {"id": "HD-7001", "source": "ticket", "team": "network-team",
              "title": "Badge reader at the loading dock rejects every badge",
              "description": "Since the power cut the dock's badge reader blinks red for all."}
    assert post(client, opened, source="generic").status_code == 202
    assert pipeline().wait_idle()
    assert _wait_for_incident(services, "HD-7001", timeout=1.0) is None

    solved = {**opened, "category": "facilities", "url": "https://helpdesk.example.com/HD-7001",
              "resolution": "Re-synced the reader's controller with the access server; "
                            "its clock had reset to 1970 after the power cut."}
    assert post(client, solved, source="generic").status_code == 202
    assert pipeline().wait_idle()
    row = _wait_for_incident(services, "HD-7001")
    assert row is not None, "the solved ticket was not stored"
    assert (row.kind, row.team, row.category, row.visibility, row.source_name) == (
        "ticket", "network-team", "facilities", "public", "webhook")
    assert row.title == opened["title"] and row.description == opened["description"]
    assert row.url == "https://helpdesk.example.com/HD-7001"

    question = Event(source=EventSource.CLI, kind=EventKind.TICKET,
                     text="the badge reader at the dock is red for everybody after power cut")
    similar = services.assistant.triage(question).similar
    assert similar and similar[0].external_id == "HD-7001", [s.external_id for s in similar]
    assert "clock had reset to 1970" in similar[0].resolution


def test_a_thread_that_mixes_problems_answers_each_alert_name(harness, fake) -> None:
    """Alertmanager grouped by team sends a disk alert and a 5xx storm in one notification:
    one thread, and the 5xx alert gets its own answer, with feedback buttons, in it."""
    from bot.store.models import TriageAnswer

    client, services, pipeline = harness
    fake.reset()
    disk = alert("NodeFilesystemAlmostFull", "db-07", service="postgres")
    errors = alert("HTTP5xxRateHigh", "checkout-1", service="checkout")
    errors["annotations"]["summary"] = "checkout returns 5xx for 12% of requests"
    body = notification([disk, errors], group_key='{}:{team="payments"}')
    assert post(client, body).status_code == 202
    assert pipeline().wait_idle()
    posts = fake.calls_of("chat.postMessage")
    top = [c for c in posts if not c.args.get("thread_ts")]
    replies = [c for c in posts if c.args.get("thread_ts")]
    assert len(top) == 1 and len(replies) == 1, [c.args["text"][:60] for c in posts]
    (reply,) = replies
    assert reply.args["text"].startswith("Also in this thread: HTTP5xxRateHigh (checkout)")
    assert any(b["type"] == "actions" for b in reply.args["blocks"])  # feedback controls
    from slack_sdk.models.blocks import Block

    Block.parse_all(reply.args["blocks"])  # valid Block Kit
    with session_scope(services.sessions) as session:
        answers = session.scalars(
            select(TriageAnswer).where(TriageAnswer.thread_ts == reply.args["thread_ts"])
        ).all()
    assert len(answers) == 2  # the top message's and the reply's, both in that thread
    assert {a.query.split(":")[0] for a in answers} == {
        "[critical] NodeFilesystemAlmostFull", "[critical] HTTP5xxRateHigh"}
