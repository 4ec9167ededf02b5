"""Alert-group threads that reached Slack but were never recorded, found again.

A leader can die after Slack accepted a group's top message (chat.postMessage) and before
it stored the message's ts. The next leader restores that group without a thread; before
posting it again, it looks in the channel's recent history for a message of ours whose
metadata names the group (every top message is posted with :func:`group_metadata`), and
adopts it. One history search per channel and take-over serves all the groups restored
there; a failed search (missing history scope, Slack unreachable) means posting again: a
duplicate thread is better than none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

GROUP_EVENT_TYPE = "triagebot_alert_group"
# Searched from this long before the group opened: the pod's clock against Slack's.
CLOCK_MARGIN_SECONDS = 300.0


def group_metadata(group_id: int) -> dict[str, Any]:
    """The Slack message metadata of an alert group's top message."""
    return {"event_type": GROUP_EVENT_TYPE, "event_payload": {"group_id": group_id}}


class PostedThreads:
    """The top messages already in one channel of the groups restored there unposted.

    ``poster`` needs ``tagged_messages(channel, event_type, oldest)`` (see
    :class:`bot.slack.client.SlackPoster`). Searched once, at the first :meth:`ts_of`;
    thread-safe (the triage threads share it)."""

    def __init__(self, poster: Any, channel: str, groups: Iterable[int], since: float) -> None:
        self.poster = poster
        self.channel = channel
        self.wanted = set(groups)
        self.oldest = since - CLOCK_MARGIN_SECONDS
        self._lock = threading.Lock()
        self._found: dict[int, str] | None = None

    def ts_of(self, group_id: int) -> str:
        """The ts of the group's top message if it is in the channel, else ""."""
        with self._lock:
            if self._found is None:
                self._found = self._search()
            return self._found.get(group_id, "")

    def _search(self) -> dict[int, str]:
        found: dict[int, str] = {}
        try:
            for ts, payload in self.poster.tagged_messages(
                self.channel, GROUP_EVENT_TYPE, self.oldest
            ):
                group_id = _group_id(payload)
                if ts and group_id in self.wanted:
                    found.setdefault(group_id, ts)
                    if len(found) == len(self.wanted):
                        break  # no further page
        except Exception as exc:  # noqa: BLE001 - posting again is the fallback
            log.warning(
                "cannot look for the threads of %d alert group(s) in %s in its history (%s); "
                "those not found are posted again, possibly twice (the bot needs "
                "channels:history / groups:history)",
                len(self.wanted),
                self.channel,
                _reason(exc),
            )
        return found


def posted_threads(
    poster: Any, groups: Iterable[tuple[int, str, float]]
) -> dict[str, PostedThreads]:
    """One :class:`PostedThreads` per channel of ``groups`` (id, channel, opened at); none
    without a ``poster``."""
    if poster is None:
        return {}
    by_channel: dict[str, list[tuple[int, float]]] = {}
    for group_id, channel, opened_at in groups:
        if channel:
            by_channel.setdefault(channel, []).append((group_id, opened_at))
    return {
        channel: PostedThreads(poster, channel, [g for g, _ in items], min(t for _, t in items))
        for channel, items in by_channel.items()
    }


def _group_id(payload: dict[str, Any]) -> int | None:
    try:
        return int(payload.get("group_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _reason(exc: Exception) -> str:
    """Slack's error code of a failed call (e.g. ``missing_scope``), else the exception."""
    response = getattr(exc, "response", None)
    error = response.get("error") if hasattr(response, "get") else None
    return str(error or exc)
