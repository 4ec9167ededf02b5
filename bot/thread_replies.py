"""Replies the bot adds to an alert group's thread after its top message.

- **Each other alert name gets its own answer.** An Alertmanager group may hold unrelated
  problems (``group_by: [team]``, say) and the top message triages only its first alert, so
  every other alert name that joins while firing gets its answer as a reply (up to
  ``MAX_ANSWERED_NAMES`` per thread, the first included).
- **Resolution.** When every alert of a group has resolved, the thread is told so once, with
  how long it lasted and the button of the answer's root-cause form.

Both are remembered in the group's stored summary (``answered_names``,
``resolution_noted``), so a take-over by another replica does not reply again. The pipeline
owns the groups and their lock; this class only reads and marks them under that lock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from bot.alert_messages import render_thread_answer, resolution_reply
from bot.answers import record_answer
from bot.events import AlertStatus, Event, EventKind
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import AlertGroup

if TYPE_CHECKING:
    from bot.alert_pipeline import AlertPipeline, GroupState

log = logging.getLogger(__name__)

MAX_ANSWERED_NAMES = 5  # alert names of one thread with an answer (the top message's too)
REPLY_WAIT_SECONDS = 120.0  # how long a reply waits for its thread to be posted


class ThreadReplies:
    """The replies of one :class:`~bot.alert_pipeline.AlertPipeline` (see the module)."""

    def __init__(self, pipeline: AlertPipeline) -> None:
        self.pipeline = pipeline
        # another alert name joined a thread: its own answer goes in as a reply
        self._waiting: queue.Queue[tuple[GroupState, Event] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="alert-replies", daemon=True)
        self.thread.start()

    def answer_later(self, state: GroupState, event: Event) -> None:
        self._waiting.put((state, event))

    def idle(self) -> bool:
        return self._waiting.unfinished_tasks == 0

    def stop(self) -> None:
        """Let the thread end after the answer under way (the pipeline stops)."""
        self._waiting.put(None)

    def drop_waiting(self) -> None:
        """Forget the answers not posted yet (this replica stops grouping)."""
        while True:
            try:
                task = self._waiting.get_nowait()
            except queue.Empty:
                return
            self._waiting.task_done()
            if task is None:  # stop()'s end marker stays
                self._waiting.put(None)
                return

    def wants_own_answer(
        self, state: GroupState, event: Event, name: str, *, is_new: bool, is_dup: bool
    ) -> bool:
        """Whether this event's alert name gets an answer of its own in the thread: a group
        of Alertmanager (``group_by: [team]``, say) may hold unrelated problems, and the top
        message triages only the first. Caller holds the lock."""
        if is_new:
            state.answered_names.add(name)
            return False
        known = state.answered_names | state.answering_names
        pipeline = self.pipeline
        if (is_dup or event.kind != EventKind.ALERT or event.status != AlertStatus.FIRING
                or name in known or len(known) >= MAX_ANSWERED_NAMES
                or not pipeline.settings.answer_each_alert_name or pipeline.poster is None):
            return False
        state.answering_names.add(name)
        return True

    def _loop(self) -> None:
        while True:
            task = self._waiting.get()
            if task is None:  # stop()
                self._waiting.task_done()
                return
            state, event = task
            try:
                self._answer(state, event)
            except Exception:
                log.exception("answer of %s in alert group %s failed", event.title, state.row_id)
                with self.pipeline._lock:  # the name's next alert tries again
                    state.answering_names.discard(event.alertname or event.title or "event")
            finally:
                self._waiting.task_done()

    def _answer(self, state: GroupState, event: Event) -> None:
        """Triage ``event`` and post its answer as a reply in its group's thread (once the
        thread is posted); the name is then stored as answered."""
        pipeline = self.pipeline
        name = event.alertname or event.title or "event"
        deadline = time.monotonic() + REPLY_WAIT_SECONDS
        while not state.thread_ts:
            if pipeline._stopped.is_set() or time.monotonic() > deadline:
                with pipeline._lock:
                    state.answering_names.discard(name)
                return
            time.sleep(0.1)
        result = pipeline.assistant.triage(event)
        answer_id = pipeline._retry_db(
            f"cannot store the answer of {name} in alert group {state.row_id}",
            lambda: record_answer(pipeline.sessions, event=event, triage=result,
                                  surface="webhook", channel=state.channel,
                                  thread_ts=state.thread_ts),
        )
        text, blocks = render_thread_answer(event, result, answer_id, pipeline.known_labels())
        ts = pipeline.poster.post(state.channel, text, blocks, thread_ts=state.thread_ts)
        with pipeline._lock:
            state.answering_names.discard(name)
            state.answered_names.add(name)
            names = sorted(state.answered_names)
        _store_answered(pipeline.sessions, state.row_id, names, answer_id, ts)

    def note_resolution(self, state: GroupState, shown: GroupState, now: float) -> None:
        """Once per alert group, when all its alerts resolved: a reply in its thread that
        says so and asks for the root cause and fix (the button of the answer's own form),
        so that the next on-call with this alert finds them under similar incidents."""
        pipeline = self.pipeline
        if (not pipeline.settings.ask_root_cause_on_resolve or shown.kind != "alert"
                or shown.answer_id is None):
            return
        with pipeline._lock:
            if state.resolution_noted:
                return
            state.resolution_noted = True  # before the post: a concurrent flush skips it
        text, blocks = resolution_reply(shown, now)
        try:
            pipeline.poster.post(shown.channel, text, blocks, thread_ts=shown.thread_ts)
        except Exception:
            log.warning("cannot post the resolution of group %s", state.row_id, exc_info=True)
            with pipeline._lock:
                state.resolution_noted = False  # tried again at its next update
            return
        try:
            _store_resolution_noted(pipeline.sessions, state.row_id)
        except Exception:  # noqa: BLE001 - kept in memory; written with its next change
            log.warning("cannot store that group %s was told it resolved", state.row_id)


def _store_answered(
    sessions: Any, group_id: int, names: list[str], answer_id: int, ts: str
) -> None:
    """The names answered in a group's thread, and where the reply of ``answer_id`` is."""
    with session_scope(sessions) as session:
        group = session.get(AlertGroup, group_id)
        if group is not None:
            group.summary = {**(group.summary or {}), "answered_names": names}
        answer = repo.get_answer(session=session, answer_id=answer_id)
        if answer is not None and ts:
            answer.message_ts = ts


def _store_resolution_noted(sessions: Any, group_id: int) -> None:
    with session_scope(sessions) as session:
        group = session.get(AlertGroup, group_id)
        if group is not None:
            group.summary = {**(group.summary or {}), "resolution_noted": True}
