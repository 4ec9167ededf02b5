"""Routing rules: which Slack channel an alert or ticket goes to.

Rules come from ``TRIAGEBOT_ROUTES``, a JSON list checked in order, first match wins:
``{"match": "team=dba-team", "channel": "C0DB"}``. ``match`` holds one or more
``key=value`` pairs separated by commas; keys are event labels (``severity``, ``namespace``,
``service`` ...). Without a match the default ``TRIAGEBOT_ALERT_CHANNEL`` is used.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Settings
from bot.events import Event


def _conditions(match: str) -> list[tuple[str, str]]:
    pairs = []
    for part in match.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def rule_matches(match: str, values: Mapping[str, str]) -> bool:
    conditions = _conditions(match)
    return bool(conditions) and all(values.get(k) == v for k, v in conditions)


def route_channel(
    settings: Settings, event: Event, predicted: Mapping[str, str] | None = None
) -> str:
    """The channel for ``event``; ``predicted`` adds predicted labels (team, category)."""
    values = {**(predicted or {}), **event.labels}
    for rule in settings.routes:
        if rule_matches(str(rule.get("match", "")), values) and rule.get("channel"):
            return str(rule["channel"])
    return event.channel or settings.alert_channel
