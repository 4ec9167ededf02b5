"""Requests and database reads shared by the fault tests."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from bot.slack.ids import ActionId
from tests.faults.conftest import TOKEN
from tests.slack.helpers import (
    action_values,
    event_body,
    interaction_body,
    load_payload,
    mention,
    post,
)


def notification(alertname: str, instance: str = "db-01:9100") -> dict[str, Any]:
    fingerprint = uuid.uuid4().hex[:16]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "status": "firing",
        "receiver": "triagebot",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname, "severity": "critical", "instance": instance},
                "annotations": {"summary": f"{alertname} on {instance}"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint,
            }
        ],
    }


def send_alert(app: Any, alertname: str) -> Any:
    body = json.dumps(notification(alertname)).encode()
    return app.client.post(
        "/webhooks/alertmanager",
        content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
    )


def ask(app: Any, channel: str, text: str, **kw: Any) -> tuple[dict[str, Any], Any]:
    """Mention the bot; returns (payload, the threaded reply received by the fake)."""
    payload = mention(channel, text, **kw)
    assert post(app.client, event_body(payload)).status_code == 200
    ts = payload["event"]["ts"]
    (reply,) = app.fake.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("thread_ts") == ts
    )
    return payload, reply


def answer_id_of(reply: Any) -> int:
    return int(action_values(reply)[ActionId.HELPFUL])


def click_helpful(app: Any, answer_id: int, user: str = "UALICE") -> None:
    payload = load_payload(
        "block_actions_helpful.json",
        answer_id=answer_id,
        response_url=app.fake.response_url("click"),
    )
    payload["user"]["id"] = user
    assert post(app.client, interaction_body(payload)).status_code == 200


def sql(data_dir: Path, query: str, *params: Any) -> list[tuple]:
    """Read the SQLite file directly (works while the app's engine is switched off)."""
    with sqlite3.connect(data_dir / "triagebot.db") as conn:
        return conn.execute(query, params).fetchall()
