"""What every Slack listener shares: the runtime, the poster, channel modes, admin rights,
the bot's own identity, and "triage this, store the answer, post it" on the worker pool."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from slack_sdk.errors import SlackApiError

from bot.answers import record_answer
from bot.config import ChannelMode
from bot.events import Event
from bot.metrics import EVENTS, TRIAGE_LATENCY
from bot.slack.blocks import render_triage
from bot.slack.client import SlackPoster
from bot.slack.visibility import visibility_for_channel, visibility_of_new_item
from bot.spool import is_database_down
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.triage_types import Triage
from bot.workers import QueueFullError, WorkerPool

log = logging.getLogger(__name__)

READY_TIMEOUT = 300.0
# How long a channel's public/private answer from conversations.info is trusted (seconds).
PRIVATE_TTL = 600.0


class NotReadyError(RuntimeError):
    """Models and indexes are still loading (or failed to load)."""


@dataclass(frozen=True)
class Where:
    """Where to tell a person about a failure: channel (+thread) and user, when known."""

    channel: str = ""
    user: str = ""
    thread_ts: str = ""


def new_ref() -> str:
    """A short reference id shown to people and written to the log."""
    return secrets.token_hex(4)


class SlackBot:
    """Shared state and operations of the Slack app (one per process)."""

    def __init__(self, runtime: Any, poster: SlackPoster) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.poster = poster
        self.client = poster.client
        self.bot_user_id = ""
        self.bot_id = ""
        # channel -> (is private, time.monotonic() when asked); re-asked after PRIVATE_TTL.
        self._private: dict[str, tuple[bool, float]] = {}
        # ((path, mtime_ns, size), labels per target) of the last parsed taxonomy file.
        self._taxonomy_cache: tuple[tuple[str, int, int], dict[str, list[str]]] | None = None
        self._lock = threading.Lock()

    # --- runtime ------------------------------------------------------------------------

    @property
    def workers(self) -> WorkerPool:
        pool = self.runtime.components.get("workers")
        if pool is None:
            with self._lock:
                pool = self.runtime.components.get("workers")
                if pool is None:
                    pool = WorkerPool(workers=self.settings.workers)
                    self.runtime.components["workers"] = pool
        return pool

    def services(self) -> Any:
        """The built services; waits for start-up to finish (called on worker threads)."""
        if self.runtime.services is None or not self.runtime.ready.is_set():
            self.runtime.ready.wait(READY_TIMEOUT)
        services = self.runtime.services
        if services is None or services.assistant is None:
            status = f"{self.runtime.status} {self.runtime.error}".strip()
            raise NotReadyError(f"triagebot is not ready: {status}")
        return services

    def submit(
        self,
        func: Callable[..., Any],
        *args: Any,
        where: Where | None = None,
        event_id: str | None = None,
        spool_as: str = "",
    ) -> bool:
        """Run ``func(*args)`` on the worker pool; failures are reported to ``where``.

        ``event_id``: a Slack event id not yet recorded (start-up, or the database was down
        when it arrived): recorded first, and the work is skipped when it was seen before.
        ``spool_as``: for a ``func(bot, event)`` that answers a Slack message or mention: when
        the database is down, the event is spooled under this handler name and answered once
        the database is back (see :meth:`spool_event`), instead of reporting the error.
        """

        def run() -> None:
            unrecorded_id = event_id
            try:
                if event_id:
                    if not self.mark_event_seen(event_id):
                        EVENTS.labels(source="slack", outcome="retry_ignored").inc()
                        return
                    unrecorded_id = None
                func(*args)
            except Exception as exc:  # noqa: BLE001 - spooled, or reported with a reference id
                if spool_as and self.spool_event(spool_as, args[-1], unrecorded_id, exc):
                    return
                self.report_error(exc, where or Where())

        try:
            self.workers.submit(run)
        except QueueFullError:
            EVENTS.labels(source="slack", outcome="busy").inc()
            log.warning("worker queue full; dropping %s", getattr(func, "__name__", func))
            if where and where.channel and where.user:
                self.safe_ephemeral(where, "triagebot is very busy right now; please retry soon.")
            return False
        return True

    def mark_event_seen(self, event_id: str) -> bool:
        """False when the Slack event id was recorded before (a retry)."""
        services = self.services()
        with session_scope(services.sessions) as session:
            return repo.mark_slack_event_seen(session=session, event_id=event_id)

    def spool_event(
        self, handler: str, event: Mapping[str, Any], event_id: str | None, exc: BaseException
    ) -> bool:
        """Spool a Slack message or mention the database could not take, to be answered when
        it is back; False when ``exc`` is not "database down", there is no spool, or the
        append fails (the caller reports the error).

        ``event_id``: the Slack event id when it is not recorded yet (recorded at replay).
        Unlike alerts, Slack messages are independent of each other: a new one is still
        handled live while older ones wait in the spool, so answers may come out of order.
        """

        spool = self.runtime.components.get("spool")
        if spool is None or not is_database_down(exc):
            return False
        payload = {"handler": handler, "event": dict(event), "event_id": event_id or ""}
        try:
            spool.append("slack", payload)
        except Exception:
            log.exception("cannot spool the Slack %s either", handler)
            return False
        EVENTS.labels(source="slack", outcome="spooled").inc()
        log.warning(
            "database unreachable; Slack %s in %s (ts %s) spooled, answered once it is back: %s",
            handler,
            event.get("channel", ""),
            event.get("ts", ""),
            exc,
        )
        replayer = self.runtime.components.get("spool_replayer")
        if replayer is not None:
            replayer.wake()
        return True

    # --- people and errors ------------------------------------------------------------------

    def report_error(self, exc: BaseException, where: Where) -> str:
        ref = new_ref()
        log.error("slack handler failed (ref %s): %r", ref, exc, exc_info=exc)
        if isinstance(exc, NotReadyError):
            text = f"triagebot is still starting up; please retry in a minute (ref {ref})."
        elif is_database_down(exc):
            text = (
                "triagebot cannot reach its database right now, so this was not done; "
                f"please retry in a few minutes (ref {ref})."
            )
        else:
            text = f"Something went wrong (ref {ref}). The error is logged under that reference."
        self.safe_ephemeral(where, text)
        return ref

    def safe_ephemeral(self, where: Where, text: str, blocks: Any = None) -> bool:
        if not (where.channel and where.user):
            return False
        try:
            self.poster.ephemeral(where.channel, where.user, text, blocks, where.thread_ts)
            return True
        except Exception as exc:  # noqa: BLE001 - a notice must never raise
            log.warning("could not post ephemeral notice to %s: %s", where.channel, exc)
            return False

    def is_admin(self, user: str) -> bool:
        return bool(user) and user in self.settings.admin_user_ids

    # --- the bot's own identity --------------------------------------------------------------

    def learn_identity(self, body: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        """Remember our bot user id / bot id from Bolt's context or the event's authorizations."""
        if self.bot_user_id and self.bot_id:
            return
        user = context.get("bot_user_id") or ""
        bot = context.get("bot_id") or ""
        if not user:
            for auth in body.get("authorizations") or ():
                if auth.get("is_bot") and auth.get("user_id"):
                    user = auth["user_id"]
                    break
        with self._lock:
            self.bot_user_id = self.bot_user_id or user
            self.bot_id = self.bot_id or bot

    def is_self(self, message: Mapping[str, Any]) -> bool:
        if self.bot_id and message.get("bot_id") == self.bot_id:
            return True
        return bool(self.bot_user_id) and message.get("user") == self.bot_user_id

    def mentions_self(self, text: str) -> bool:
        return bool(self.bot_user_id) and f"<@{self.bot_user_id}" in (text or "")

    # --- channels -----------------------------------------------------------------------------

    def channel_mode(self, channel: str) -> ChannelMode:
        """The mode set with /triagebot-config, else the configured one, else the default."""
        services = self.services()
        with session_scope(services.sessions) as session:
            stored = repo.get_channel_mode(session=session, channel=channel)
        if stored:
            try:
                return ChannelMode(stored)
            except ValueError:
                log.warning("channel %s has unknown mode %r", channel, stored)
        return self.settings.mode_for_channel(channel)

    def set_channel_mode(self, channel: str, mode: ChannelMode, user: str) -> None:
        services = self.services()
        with session_scope(services.sessions) as session:
            repo.set_channel_mode(session=session, channel=channel, mode=str(mode), user_id=user)
            repo.audit(
                session=session,
                actor=user,
                action="channel_mode_set",
                subject=f"channel:{channel}",
                detail={"mode": str(mode)},
            )

    def channel_is_private(self, channel: str) -> bool:
        """From conversations.info (cached); unknown counts as private (the safe side)."""
        if channel.startswith("D"):
            return True
        now = time.monotonic()
        with self._lock:
            cached = self._private.get(channel)
        if cached is not None and now - cached[1] < PRIVATE_TTL:
            return cached[0]
        try:
            info = self.client.conversations_info(channel=channel)
            conv = info.get("channel") or {}
            private = bool(conv.get("is_private") or conv.get("is_im") or conv.get("is_mpim"))
        except SlackApiError as exc:
            log.warning("conversations.info %s failed (%s): treating as private", channel, exc)
            return True
        with self._lock:
            self._private[channel] = (private, now)
        return private

    def new_item_visibility(self, channel: str) -> str:
        mode = self.channel_mode(channel) if channel else ChannelMode.OFF
        if not channel:
            return "public"
        return visibility_of_new_item(
            channel, str(mode), is_private=self.channel_is_private(channel)
        )

    # --- labels offered for corrections ----------------------------------------------------------

    def label_options(self) -> dict[str, list[str]]:
        """Known labels per target: those of the active models, else of the taxonomy file.

        A taxonomy file of your own (``TRIAGEBOT_TAXONOMY_FILE``) declares your labels: those
        an active model has not learnt yet follow its labels, so that people can teach them
        through corrections. The bundled sample taxonomy (the default) only stands in for
        targets without a model: its labels are not yours."""
        services = self.services()
        classifiers = services.classifiers
        out: dict[str, list[str]] = {}
        for target, loaded in dict(getattr(classifiers, "active", {}) or {}).items():
            labels = _model_labels(getattr(loaded, "model", None))
            if labels:
                out[target] = labels
        taxonomy_path = getattr(classifiers, "taxonomy_path", None)
        declared = getattr(self.settings, "taxonomy_file", None) is not None
        for target, labels in self._taxonomy_labels(taxonomy_path).items():
            if target not in out:
                out[target] = list(labels)
            elif declared:
                out[target] += [label for label in labels if label not in out[target]]
        return out

    def _taxonomy_labels(self, taxonomy_path: Any) -> dict[str, list[str]]:
        """Labels per target from the taxonomy file, parsed once per (path, mtime, size)."""
        if not taxonomy_path:
            return {}
        path = Path(taxonomy_path)
        try:
            stat = path.stat()
        except OSError:
            return {}
        if not path.is_file():
            return {}
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._taxonomy_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            taxonomy = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            taxonomy = {}
        parsed: dict[str, list[str]] = {}
        if isinstance(taxonomy, Mapping):
            for target, labels in taxonomy.items():
                if isinstance(labels, dict | list):
                    parsed[str(target)] = [str(x) for x in labels]
        with self._lock:
            self._taxonomy_cache = (key, parsed)
        return parsed

    # --- triage ---------------------------------------------------------------------------

    def triage(self, event: Event, mode: str) -> Triage:
        services = self.services()
        with TRIAGE_LATENCY.time():
            return services.assistant.triage(
                event, visibility=visibility_for_channel(event.channel, mode)
            )

    def triage_and_record(
        self,
        event: Event,
        *,
        mode: str,
        surface: str,
        thread_ts: str = "",
        message_ts: str = "",
        user: str = "",
    ) -> tuple[int, Triage]:
        services = self.services()
        result = self.triage(event, mode)
        with session_scope(services.sessions) as session:
            row = repo.record_event(
                session=session,
                source=str(event.source),
                kind=str(event.kind),
                external_id=event.external_id[:200],
                channel=event.channel,
                author=event.author,
                title=event.title,
                text=event.text,
                outcome="triaged",
            )
            event_row_id = row.id
        answer_id = record_answer(
            services.sessions,
            event=event,
            triage=result,
            surface=surface,
            event_id=event_row_id,
            channel=event.channel,
            thread_ts=thread_ts,
            message_ts=message_ts,
            requested_by=user or event.author,
        )
        EVENTS.labels(source="slack", outcome="answered").inc()
        return answer_id, result

    def render(self, result: Triage, answer_id: int, query_line: str = "") -> tuple[str, list]:
        return render_triage(
            result, answer_id, label_options=self.label_options(), query_line=query_line
        )

    def answer_in_thread(
        self,
        event: Event,
        *,
        mode: str,
        surface: str,
        thread_ts: str,
        message_ts: str,
        user: str = "",
    ) -> str:
        """Triage, store, and post the answer as a reply in ``thread_ts``; returns its ts."""
        answer_id, result = self.triage_and_record(
            event,
            mode=mode,
            surface=surface,
            thread_ts=thread_ts,
            message_ts=message_ts,
            user=user,
        )
        text, blocks = self.render(result, answer_id)
        return self.poster.post(event.channel, text, blocks, thread_ts=thread_ts)


def _model_labels(model: Any) -> list[str]:
    for attr in ("classes_", "labels", "labels_"):
        value = getattr(model, attr, None)
        if value is None:
            continue
        if isinstance(value, Mapping):
            value = list(value)
        try:
            labels = [str(x) for x in value]
        except TypeError:
            continue
        if labels:
            return labels
    return []
