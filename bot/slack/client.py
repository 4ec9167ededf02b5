"""Posting to Slack: retries on 429 / 5xx / connection errors, and per-channel pacing.

Independent of Bolt, so the webhook intake and the scheduled jobs reuse it. Slack accepts
roughly one message per second per channel; :class:`SlackPoster` waits its turn per channel
instead of being throttled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.metrics import SLACK_CALLS

log = logging.getLogger(__name__)

MAX_TEXT = 3900  # chat.postMessage "text" is truncated by Slack past 40k; keep fallbacks short
HISTORY_PAGE = 200  # conversations.history messages per call (Slack allows up to 999)
HISTORY_PAGES = 5  # calls at most per history search: the newest 1,000 top-level messages


def add_retry_handlers(client: WebClient, *, rate_limit_retries: int = 3) -> WebClient:
    """Make ``client`` retry 429 (honouring Retry-After), 5xx and connection errors."""
    kinds = {type(h) for h in client.retry_handlers}
    wanted = [
        RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]
    for handler in wanted:
        if type(handler) not in kinds:
            client.retry_handlers.append(handler)
    return client


def make_web_client(token: str | None, base_url: str, *, timeout: int = 15) -> WebClient:
    """A WebClient pointed at ``base_url`` with the retry handlers switched on."""
    return add_retry_handlers(WebClient(token=token, base_url=base_url, timeout=timeout))


class ChannelPacer:
    """At most one call per ``interval`` seconds per channel (a lock + next-allowed time)."""

    def __init__(
        self,
        interval: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._next: dict[str, float] = {}

    def _lock_for(self, channel: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(channel)
            if lock is None:
                lock = self._locks[channel] = threading.Lock()
            return lock

    def run(self, channel: str, call: Callable[[], Any]) -> Any:
        """Run ``call`` once the channel's turn has come; waits while holding its lock."""
        with self._lock_for(channel):
            wait = self._next.get(channel, 0.0) - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                return call()
            finally:
                self._next[channel] = self.clock() + self.interval


UPDATES = "chat.update"  # the update pacer's one key: Slack limits chat.update per workspace


class SlackPoster:
    """Thin, counted, paced wrapper over the few Web API methods the bot posts with.

    Posts are paced per channel (Slack: about one message per second per channel); message
    updates share one workspace-wide pace (``chat.update`` is Tier 3, about 50 per minute),
    so a storm's running counts slow down instead of drawing 429s.
    """

    def __init__(
        self,
        client: WebClient,
        *,
        interval: float = 1.0,
        update_interval: float = 1.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = add_retry_handlers(client)
        self.pacer = ChannelPacer(interval, clock=clock, sleep=sleep)
        self.update_pacer = ChannelPacer(update_interval, clock=clock, sleep=sleep)
        self._bot_id = ""

    def call(self, method: str, func: Callable[[], Any]) -> Any:
        """Run one Web API call, counting its outcome in ``SLACK_CALLS``."""
        try:
            response = func()
        except SlackApiError as exc:
            SLACK_CALLS.labels(method=method, outcome=str(exc.response.get("error", "error"))).inc()
            raise
        except Exception:
            SLACK_CALLS.labels(method=method, outcome="exception").inc()
            raise
        SLACK_CALLS.labels(method=method, outcome="ok").inc()
        return response

    def post(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """chat.postMessage; returns the new message's ts. ``metadata``: Slack message
        metadata (``event_type``, ``event_payload``), read back by :meth:`tagged_messages`."""

        def send() -> Any:
            return self.client.chat_postMessage(
                channel=channel,
                text=text[:MAX_TEXT],
                blocks=list(blocks) if blocks else None,
                thread_ts=thread_ts or None,
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata or None,
            )

        response = self.pacer.run(channel, lambda: self.call("chat.postMessage", send))
        return str(response.get("ts", ""))

    def update(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """chat.update of a message the bot posted (paced workspace-wide, see the class).
        ``metadata``: sent again with the edit, so the message keeps it whatever Slack does."""
        self.update_pacer.run(
            UPDATES,
            lambda: self.call(
                "chat.update",
                lambda: self.client.chat_update(
                    channel=channel,
                    ts=ts,
                    text=text[:MAX_TEXT],
                    blocks=list(blocks) if blocks else [],
                    metadata=metadata or None,
                ),
            ),
        )

    def bot_id(self) -> str:
        """This app's bot id (auth.test, asked once): whose messages are our own."""
        if not self._bot_id:
            response = self.call("auth.test", self.client.auth_test)
            self._bot_id = str(response.get("bot_id") or "")
        return self._bot_id

    def tagged_messages(
        self, channel: str, event_type: str, oldest: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(ts, event_payload) of this bot's top-level messages in ``channel`` newer than
        ``oldest`` whose metadata has ``event_type``, newest first.

        conversations.history with ``include_all_metadata`` (needs ``channels:history``, or
        ``groups:history`` for a private channel), ``HISTORY_PAGE`` messages a call, at most
        ``HISTORY_PAGES`` calls; stop iterating to make no further call. Raises on a failed
        call (``SlackApiError`` with e.g. ``missing_scope``), counted in ``SLACK_CALLS``."""
        own, cursor = self.bot_id(), None
        for _ in range(HISTORY_PAGES):
            page = self._history_page(channel, oldest, cursor)
            for message in page.get("messages") or []:
                meta = message.get("metadata") or {}
                if message.get("bot_id") == own and meta.get("event_type") == event_type:
                    yield str(message.get("ts", "")), dict(meta.get("event_payload") or {})
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    def _history_page(self, channel: str, oldest: float, cursor: str | None) -> Any:
        return self.call(
            "conversations.history",
            lambda: self.client.conversations_history(
                channel=channel,
                oldest=f"{oldest:.6f}",
                limit=HISTORY_PAGE,
                include_all_metadata=True,
                cursor=cursor,
            ),
        )

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        """chat.postEphemeral: visible to ``user`` only."""
        self.call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text[:MAX_TEXT],
                blocks=list(blocks) if blocks else None,
                thread_ts=thread_ts or None,
            ),
        )

    def upload_file(
        self, channel: str, path: str | Path, title: str, initial_comment: str = ""
    ) -> None:
        """files_upload_v2 (getUploadURLExternal + upload + completeUploadExternal)."""
        path = Path(path)

        def send() -> Any:
            return self.client.files_upload_v2(
                channel=channel,
                file=str(path),
                filename=path.name,
                title=title,
                initial_comment=initial_comment[:MAX_TEXT] or None,
            )

        self.pacer.run(channel, lambda: self.call("files.upload_v2", send))
