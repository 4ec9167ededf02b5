"""Signed Slack requests built from the recorded payloads in tests/payloads/."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"
SECRET = "secret"
_seq = itertools.count(1)


def load_payload(name: str, **subs: Any) -> dict[str, Any]:
    """A payload with ``__KEY__`` placeholders replaced (in every string) by ``subs[key]``."""
    data = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            for key, sub in subs.items():
                value = value.replace(f"__{key.upper()}__", str(sub))
        return value

    return walk(data)


def unique_ts() -> str:
    """A Slack-like message ts that no other test uses."""
    return f"{1716000000 + next(_seq)}.{uuid.uuid4().int % 1_000_000:06d}"


def new_event_id() -> str:
    return "Ev" + uuid.uuid4().hex[:12].upper()


def signature(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes,
    content_type: str,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    retry_num: int | None = None,
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(body, ts, secret),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def event_body(payload: dict[str, Any]) -> tuple[bytes, str]:
    return json.dumps(payload).encode(), "application/json"


def command_body(payload: dict[str, Any]) -> tuple[bytes, str]:
    return urlencode(payload).encode(), "application/x-www-form-urlencoded"


def interaction_body(payload: dict[str, Any]) -> tuple[bytes, str]:
    return (
        urlencode({"payload": json.dumps(payload)}).encode(),
        "application/x-www-form-urlencoded",
    )


def post(client: Any, body_and_type: tuple[bytes, str], **sign: Any) -> Any:
    body, content_type = body_and_type
    return client.post(
        "/slack/events", content=body, headers=signed_headers(body, content_type, **sign)
    )


def mention(
    channel: str,
    text: str,
    *,
    ts: str | None = None,
    event_id: str | None = None,
    user: str = "UALICE",
) -> dict[str, Any]:
    """An app_mention payload for ``text`` in ``channel`` (fresh ts and event id)."""
    payload = load_payload("app_mention.json")
    ts = ts or unique_ts()
    payload["event_id"] = event_id or new_event_id()
    payload["event"].update(
        {"text": f"<@UBOT> {text}", "channel": channel, "ts": ts, "event_ts": ts, "user": user}
    )
    payload["event"].pop("blocks", None)
    return payload


def channel_message(channel: str, text: str, *, ts: str | None = None) -> dict[str, Any]:
    payload = load_payload("message_alerts_channel.json")
    ts = ts or unique_ts()
    payload["event_id"] = new_event_id()
    payload["event"].update({"text": text, "channel": channel, "ts": ts, "event_ts": ts})
    return payload


def action_values(call: Any) -> dict[str, str]:
    """action_id -> value (buttons) or first option value (selects) in a call's blocks."""
    out: dict[str, str] = {}
    for block in call.args.get("blocks") or []:
        for el in block.get("elements") or []:
            if "action_id" not in el:
                continue
            if "value" in el:
                out[el["action_id"]] = el["value"]
            elif el.get("options"):
                out[el["action_id"]] = el["options"][0]["value"]
            elif el.get("option_groups"):
                out[el["action_id"]] = el["option_groups"][0]["options"][0]["value"]
    return out


def correction_payload(answer_id: int, value: str, user: str, response_url: str) -> dict[str, Any]:
    """The correction menu's block_actions for answer ``answer_id``, choosing the option
    value ``value`` (``id|field|label`` when it came from the menu; anything when forged)."""
    payload = load_payload("block_actions_correct_label.json", answer_id=answer_id,
                           response_url=response_url, label="x")
    payload["user"]["id"] = user
    payload["actions"][0]["selected_option"] = {
        "text": {"type": "plain_text", "text": value[:75] or "-", "emoji": True},
        "value": value,
    }
    return payload
