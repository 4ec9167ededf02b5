"""From stored webhook events to Slack threads: dedup, grouping, triage, paced posting.

``accept`` stores every event at once (so nothing is lost and counts can be audited) and
queues it; one processing thread assigns groups in arrival order (the grouper is not
thread-safe and order matters) and hands the first event of each new group to a few triage
threads (``TRIAGEBOT_ALERT_TRIAGE_WORKERS``), which triage it and post the group's thread, so
paced Slack posts never hold up grouping. The top message is kept up to date with a running
count; updates of one group's top message are coalesced (at most one per ``update_interval``).
The first event of a group keeps the outcome "queued" until its thread is posted, so a
restart re-queues (and posts) it.

When the database is unreachable, ``accept`` writes the events to the durable local spool
(:mod:`bot.spool`) instead of failing; :meth:`AlertPipeline.apply_spooled` stores and queues
them, in order, once it is back. While anything is spooled, new events are spooled behind it,
so arrival order is kept.

Several replicas: every replica stores the events it receives, but only one groups them, the
holder of the ``alert-grouping`` lease (:meth:`AlertPipeline.lead`, every second). The leader
queues its own events at once and polls the events the others stored (outcome "queued").
A replica that takes the lease over (the leader stopped, or this replica restarted) first
rebuilds the open groups from the database: the groups seen inside the window, their threads,
counts and triage, and their events replayed into the grouper at the time they were grouped.
So a storm keeps one thread across replicas, restarts and rolling updates. A group restored
without a thread may have been posted just before the previous leader died: its thread is
searched for in Slack by the message metadata every top message carries, and adopted when
found, before it is posted (:mod:`bot.thread_adoption`).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from bot.alert_messages import render_group_message
from bot.answers import record_answer
from bot.config import Settings
from bot.events import RECORD_KINDS, AlertStatus, Event, EventKind, EventSource
from bot.intake.grouping import AlertGrouper, GroupingRules, to_timestamp
from bot.intake.links import clean_links
from bot.metrics import ALERT_GROUPING_LEADER, EVENTS, TRIAGE_LATENCY
from bot.record_learning import is_learnable, solved_record_handler
from bot.routing import route_channel
from bot.store import repository as repo
from bot.store.db import session_scope, with_lock_wait
from bot.store.models import AlertGroup, EventRecord, TriageAnswer
from bot.thread_adoption import PostedThreads, group_metadata, posted_threads
from bot.thread_replies import ThreadReplies
from bot.triage_types import Triage

log = logging.getLogger(__name__)

WRITE_BATCH = 500
LEASE_NAME = "alert-grouping"
LEASE_TTL_SECONDS = 30.0  # a leader that cannot renew for this long hands over
POLL_BATCH = 5_000  # stored events fetched per poll of the "queued" ones
RESTORE_EVENTS = 50_000  # newest events of the open groups replayed at a take-over
SEEN_GRACE_SECONDS = 60.0  # an id queued here is not queued again for at least this long
INTAKE_LOCK_WAIT_SECONDS = 5.0  # SQLite: longest wait for a write lock before spooling
_DONE_OUTCOMES = ("new_group", "grouped", "duplicate")
OUTCOME_FLUSH_SECONDS = 0.25
# A write of the grouping that fails because the database is unreachable (a failover, a
# terminated connection) is tried again after 1 s, doubling up to 30 s, while this replica
# leads; logged at most every DB_WARN_SECONDS.
DB_RETRY_FIRST_SECONDS = 1.0
DB_RETRY_MAX_SECONDS = 30.0
DB_WARN_SECONDS = 30.0
_IDLE: Any = object()  # the processing thread's "nothing arrived": time to write outcomes

_holders_lock = threading.Lock()
_live_holders: set[str] = set()


def _claim_holder(wanted: str | None) -> str:
    """The lease holder name of a new pipeline: host and process id, so that a container
    restarted in its pod (same host name, same pid) takes its own lease back at once instead
    of waiting for it to expire. A second live pipeline in one process (tests) gets a suffix."""
    base = wanted or f"{socket.gethostname()}:{os.getpid()}"
    with _holders_lock:
        name, n = base, 1
        while name in _live_holders:
            n += 1
            name = f"{base}#{n}"
        _live_holders.add(name)
        return name


def _release_holder(name: str) -> None:
    with _holders_lock:
        _live_holders.discard(name)


class AcceptedIds(list[int]):
    """Row ids of accepted events. ``spooled``: the database was unreachable and the events
    went to the local spool (durable; stored and processed on replay), ids are 0 for now."""

    spooled: bool = False


@dataclass
class GroupState:
    """What the pipeline tracks per open group (mirrored in the alert_groups table)."""

    row_id: int
    channel: str
    title: str
    reason: str
    thread_ts: str = ""
    kind: str = "alert"  # of its first event: "ticket" and "incident" are records
    count: int = 0
    duplicates: int = 0
    firing: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)
    alertnames: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    # the alerts' own pages (rule graph, runbook, dashboard, silence...): the first event's,
    # completed by later ones with kinds it lacked
    links: dict[str, str] = field(default_factory=dict)
    answer_id: int | None = None
    triage: Any = None
    # the thread was told the group resolved and asked for its root cause (once per group)
    resolution_noted: bool = False
    # alert names with an answer in the thread (stored), and those whose reply is on its way
    answered_names: set[str] = field(default_factory=set)
    answering_names: set[str] = field(default_factory=set)
    dirty: bool = False
    last_update: float = 0.0
    revision: int = 0  # +1 on every change; a render shows one revision
    posting: bool = False  # its first post (triage, chat.postMessage) is queued or running
    # Restored without a thread while its first post was due: that post may have reached
    # Slack before the previous leader died (see bot.thread_adoption).
    maybe_posted: bool = False
    opened_at: float = 0.0  # first_seen, pipeline clock

    @property
    def status(self) -> str:
        return "resolved" if self.resolved and not self.firing else "firing"

    def add_links(self, links: dict[str, str]) -> None:
        """Take the kinds of link the group has none of yet (the first alert's stay)."""
        for key, url in links.items():
            self.links.setdefault(key, url)

    def mark(self, fingerprint: str, status: AlertStatus) -> None:
        """Record the latest status of one alert of the group."""
        if status == AlertStatus.RESOLVED:
            self.firing.discard(fingerprint)
            self.resolved.add(fingerprint)
        else:
            self.firing.add(fingerprint)
            self.resolved.discard(fingerprint)


class AlertPipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: Any,
        assistant: Any,
        poster: Any | None,
        clock: Callable[[], float] = time.time,
        update_interval: float = 5.0,
        spool: Any | None = None,
        on_spooled: Callable[[], None] | None = None,
        lease_ttl: float = LEASE_TTL_SECONDS,
        lead_interval: float = 1.0,
        holder: str | None = None,
        intake_lock_wait: float = INTAKE_LOCK_WAIT_SECONDS,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.on_spooled = on_spooled
        self.sessions = sessions
        # Storing a call's alerts waits for another writer's SQLite lock (a long import,
        # say) only this long, then spools them: the sender gets its 202 well within the
        # 30 s that accept() waits, instead of a 503 for alerts that are stored anyway.
        self._intake_sessions = with_lock_wait(sessions, intake_lock_wait)
        # The writer stores on a plain connection of that engine: it needs no ORM session.
        self._intake_engine = self._intake_sessions.kw["bind"]
        self.assistant = assistant
        self.poster = poster
        self.clock = clock
        self.update_interval = update_interval
        self.grouper = AlertGrouper(
            window_seconds=max(1, settings.group_window_seconds),
            rules=GroupingRules(dedup_seconds=settings.dedup_window_seconds),
        )
        self.groups: dict[str, GroupState] = {}
        # None in _queue, _writes and _triage: stop()'s end marker for the thread reading it
        self._queue: queue.Queue[tuple[int, Event] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._next_evict = 0.0
        self._writes: queue.Queue[tuple[list[Event], Future[list[int]]] | None] = queue.Queue()
        # event row id, group row id, outcome, when it was grouped (pipeline clock)
        self._pending: list[tuple[int, int, str, float]] = []
        self._touched: set[str] = set()
        self._writing_outcomes = False
        # event row id, its new group, the event, when it was grouped
        self._triage: queue.Queue[tuple[int, GroupState, Event, float] | None] = queue.Queue()
        self.posts = 0
        self.updates = 0
        self.adopted = 0  # threads found in Slack instead of posted again
        self._posted: dict[str, PostedThreads] = {}  # by channel, for this take-over
        # Leadership of the grouping (see the module docstring).
        self.holder = _claim_holder(holder)
        self.lease_ttl = float(lease_ttl)
        self.lead_interval = float(lead_interval)
        self.leader = False
        self._lease_until = 0.0
        self._last_try = float("-inf")
        self._lead_lock = threading.Lock()
        self._process_lock = threading.RLock()  # grouping state: processing vs take-over
        self._queued_ids: dict[int, float] = {}  # event id -> when queued here
        # Held by the writer from its insert until its events are in _queued_ids, and by the
        # poll while it reads the "queued" ids: the poll never sees this replica's events
        # committed but not yet queued (it queued them a second time, and the second pass
        # rewrote a new group's first event as a duplicate of itself). Neither holder waits
        # on it inside another lock, so it adds no wait cycle (see _queue_stored).
        self._intake_gate = threading.Lock()
        self._db_warned = float("-inf")  # monotonic time of the last "database" warning
        self._stopped = threading.Event()
        self._ending = False  # stop() has told the threads to end
        self._submit_lock = threading.Lock()  # no call is queued behind the writer's end
        self._triage_threads: list[threading.Thread] = []
        for i in range(settings.alert_triage_workers):
            # Daemon threads, like the others: exiting never waits for paced posts.
            name = f"alert-triage-{i}"
            worker = threading.Thread(target=self._triage_loop, name=name, daemon=True)
            worker.start()
            self._triage_threads.append(worker)
        self.replies = ThreadReplies(self)  # after the top message: more answers, resolution
        self._writer = threading.Thread(target=self._write_loop, name="alert-store", daemon=True)
        self._writer.start()
        self._thread = threading.Thread(target=self._run, name="alert-pipeline", daemon=True)
        self._thread.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="alert-flush", daemon=True)
        self._flusher.start()
        try:
            self.lead()  # a single replica groups from its first event on
        except Exception as exc:  # noqa: BLE001 - the lead loop tries again every second
            log.warning("cannot take the alert-grouping lease now: %s", exc)
        self._leader_thread = threading.Thread(
            target=self._lead_loop, name="alert-leader", daemon=True
        )
        self._leader_thread.start()

    # Labels per target offered for corrections (the Slack app's, set by from_runtime).
    label_options: Callable[[], Any] | None = None
    # Called (pipeline thread, must not block) with each processed ticket or incident that
    # came with its resolution: see bot.record_learning. Set by from_runtime.
    on_solved_record: Callable[[Event], None] | None = None

    @classmethod
    def from_runtime(cls, runtime: Any) -> AlertPipeline:
        services = runtime.services
        poster = None
        if runtime.settings.slack_enabled:
            from bot.slack.http import slack_app_for

            # The Slack app's own poster: alert threads and bot replies share one client and
            # one per-channel pacer (Slack's ~1 message/s/channel limit counts both).
            slack_app_for(runtime)
            poster = runtime.components["slack_bot"].poster
        replayer = runtime.components.get("spool_replayer")
        pipeline = cls(
            settings=runtime.settings,
            sessions=services.sessions,
            assistant=services.assistant,
            poster=poster,
            spool=runtime.components.get("spool"),
            on_spooled=replayer.wake if replayer is not None else None,
        )
        if poster is not None:  # corrections offer every known label, as answers in Slack do
            pipeline.label_options = runtime.components["slack_bot"].label_options
        if runtime.settings.learn_solved_records:
            pipeline.on_solved_record = solved_record_handler(runtime)
        return pipeline

    def known_labels(self) -> Any:
        """The labels a correction on a group's message offers per target; None when unknown
        (the prediction's own candidates are offered)."""
        if self.label_options is None:
            return None
        try:
            return self.label_options()
        except Exception:
            log.warning("cannot list the known labels for corrections", exc_info=True)
            return None

    # --- leadership of the grouping -------------------------------------------------------

    def lead(self) -> bool:
        """Take or renew the grouping lease; returns whether this pipeline groups now.

        On taking it over, the open groups are rebuilt from the database first. The leader
        then queues the events stored but not grouped yet (by other replicas, or before a
        restart), in id order. The lease is tried every ``lease_ttl / 6`` seconds; a leader
        that cannot reach the database keeps leading until its lease would have expired (no
        other replica can take it before), then steps down."""
        with self._lead_lock:
            if self._stopped.is_set():
                return False
            now = self.clock()
            if now - self._last_try >= self.lease_ttl / 6:
                self._last_try = now
                try:
                    with session_scope(self.sessions) as session:
                        held = repo.acquire_lease(
                            session=session,
                            name=LEASE_NAME,
                            holder=self.holder,
                            ttl=timedelta(seconds=self.lease_ttl),
                            now=_when(now),
                        )
                except Exception as exc:  # database down: see the docstring
                    if self.leader and now >= self._lease_until:
                        self._step_down(f"the lease could not be renewed: {_first_line(exc)}")
                    elif not self.leader:
                        if not _database_down(exc):
                            raise
                        # tried again every poll: one line per DB_WARN_SECONDS, not per try
                        self._warn_db("cannot take the alert-grouping lease", exc)
                    return self.leader
                if held:
                    self._lease_until = now + self.lease_ttl
                    if not self.leader:
                        self._take_over(now)
                elif self.leader:
                    self._step_down("another replica holds the lease")
            if self.leader:
                self._queue_stored(now)
            return self.leader

    def stop(self, wait: float = 5.0) -> None:
        """Hand the lease over at once (orderly shutdown): another replica need not wait for
        it to expire. Events not grouped yet stay stored as "queued" for the next leader;
        a thread post already under way gets up to ``wait`` seconds to finish first.

        Then the pipeline's threads end (calls accepted before are stored first; later ones
        fail at once), each waited for up to ``max(wait, 1)`` seconds in all: a stopped
        pipeline neither edits its threads' messages nor calls Slack any more."""
        with self._lead_lock:
            self._stopped.set()
            _release_holder(self.holder)
            if self.leader:
                self._step_down("stopping")
                deadline = time.monotonic() + wait
                while self._triage.unfinished_tasks and time.monotonic() < deadline:
                    time.sleep(0.05)
                try:
                    with session_scope(self.sessions) as session:
                        repo.release_lease(session=session, name=LEASE_NAME, holder=self.holder)
                except Exception as exc:  # noqa: BLE001 - it expires on its own
                    log.warning("cannot release the alert-grouping lease: %s", exc)
        self._end_threads(max(wait, 1.0))

    def threads(self) -> list[threading.Thread]:
        """The pipeline's own threads (all daemon threads; they end with :meth:`stop`)."""
        return [*self._triage_threads, self.replies.thread, self._writer, self._thread,
                self._flusher, self._leader_thread]

    def _end_threads(self, timeout: float) -> None:
        with self._submit_lock:  # stop() may run twice: one end marker per thread
            if not self._ending:
                self._ending = True
                self._writes.put(None)  # after the calls accepted before: those are stored
                self._queue.put(None)
                for _ in self._triage_threads:
                    self._triage.put(None)
                self.replies.stop()
        # The flusher and the lease thread wait on _stopped; the others end at their marker.
        deadline = time.monotonic() + timeout
        for thread in self.threads():
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self.threads() if t.is_alive()]
        if alive:
            log.warning("alert pipeline threads still busy %.0f s after stop: %s",
                        timeout, ", ".join(alive))

    def _lead_loop(self) -> None:
        while not self._stopped.wait(self.lead_interval):
            try:
                self.lead()
            except Exception as exc:  # noqa: BLE001 - tried again next time
                log.warning("alert-grouping lease: %s", exc)

    def _take_over(self, now: float) -> None:
        with self._process_lock:
            self.grouper = AlertGrouper(
                window_seconds=self.grouper.window_seconds, rules=self.grouper.rules
            )
            with self._lock:
                self.groups = {}
            self._pending, self._touched = [], set()
            self._posted = {}
            restored = self._restore(now)
            self.leader = True
        ALERT_GROUPING_LEADER.set(1)
        log.info("leading the alert grouping (%s); %d open groups restored", self.holder, restored)

    def _step_down(self, why: str) -> None:
        with self._process_lock:
            self.leader = False
            try:  # what was grouped here is written, so the next leader need not redo it
                self._flush_outcomes()
            except Exception as exc:  # noqa: BLE001 - those events stay "queued": redone
                log.warning("cannot write the last grouping outcomes: %s", exc)
            # Both stay stored as "queued": the next leader queues the events again, and
            # restores the groups whose thread is not posted and posts it.
            dropped = _drain(self._queue) + _drain(self._triage)
            self.replies.drop_waiting()  # not stored as answered: the next leader answers them
            with self._lock:
                self._queued_ids.clear()
        ALERT_GROUPING_LEADER.set(0)
        log.log(
            logging.INFO if why == "stopping" else logging.WARNING,
            "no longer leading the alert grouping (%s); %d queued events left to the next leader",
            why,
            dropped,
        )

    def _restore(self, now: float) -> int:
        """Rebuild the groups still open at ``now`` from the database; returns how many.

        A group whose thread was not posted yet (the previous leader stopped first) keeps
        its first event "queued" but linked to the group: it is restored too, and its triage
        and first post are queued again here, so its later alerts stay with it."""
        since = _when(now - self.grouper.window_seconds)
        with session_scope(self.sessions) as session:
            rows = session.scalars(select(AlertGroup).where(AlertGroup.last_seen >= since)).all()
            if not rows:
                return 0
            by_id = {row.id: row for row in rows}
            in_open_groups = EventRecord.group_id.in_(list(by_id))
            grouped = session.scalars(
                select(EventRecord)
                .where(in_open_groups, EventRecord.outcome.in_(_DONE_OUTCOMES))
                .order_by(EventRecord.id.desc())
                .limit(RESTORE_EVENTS)
            ).all()
            # First events of threads not posted yet: at most one per group, never capped.
            unposted_first = session.scalars(
                select(EventRecord).where(in_open_groups, EventRecord.outcome == "queued")
            ).all()
            events = sorted([*grouped, *unposted_first], key=lambda e: e.id, reverse=True)
            answers = self._thread_answers(session, rows)
            states: dict[int, GroupState] = {}
            for row in rows:
                try:
                    states[row.id] = self._restored_state(
                        row, answers.get((row.channel, row.thread_ts))
                    )
                except (TypeError, ValueError, AttributeError) as exc:
                    # One unreadable row must not keep every replica from grouping: that
                    # group's later alerts open a new thread instead.
                    log.warning("alert group %s cannot be restored: %s", row.id, exc)
            replay = [
                (e.group_id, e.id, _event_from_row(e), e.outcome, e.grouped_at) for e in events
            ]
        unposted: list[tuple[int, GroupState, Event, float]] = []
        received: dict[str, float] = {}  # fingerprint -> latest notification replayed
        for group_id, event_id, event, outcome, grouped_at in reversed(replay):
            if group_id not in states:
                continue
            row, state = by_id[group_id], states[group_id]
            t = to_timestamp(grouped_at or row.last_seen)
            if outcome == "queued":  # the first event of a group whose thread is not posted
                state.posting = state.maybe_posted = True
                unposted.append((event_id, state, event, t))
            if not row.key.startswith("record:"):
                self.grouper.restore(event, row.key, t)
            # Stored in id order, not always received in it: the latest notification wins.
            fp, when = event.fingerprint or str(event_id), to_timestamp(event.received_at)
            if when >= received.get(fp, float("-inf")):
                received[fp] = when
                state.mark(fp, event.status)
            if outcome == "new_group" and not state.title:
                state.title = event.alertname or event.title or event.text[:80]
        with self._lock:
            for group_id, state in states.items():
                self.groups[by_id[group_id].key] = state
            for event_id, *_ in unposted:
                self._queued_ids[event_id] = now
        self._posted = posted_threads(
            self.poster, [(s.row_id, s.channel, s.opened_at) for _, s, _, _ in unposted]
        )
        for task in unposted:
            self._triage.put(task)
        self.grouper.prune(now)
        return len(states)

    def _restored_state(self, row: AlertGroup, answer: TriageAnswer | None) -> GroupState:
        """A group's state from its row and the answer its thread shows."""
        summary = row.summary or {}
        state = GroupState(
            row_id=row.id,
            channel=row.channel,
            title=str(summary.get("title") or ""),
            reason=row.reason,
            thread_ts=row.thread_ts,
            # (a group stored before its kind was: a record group is a ticket or incident)
            kind=str(summary.get("kind") or ("ticket" if row.reason == "ticket" else "alert")),
            count=row.count,
            duplicates=int(summary.get("duplicates") or 0),
            alertnames={str(k): int(v) for k, v in (summary.get("alertnames") or {}).items()},
            reasons=[str(r) for r in summary.get("reasons") or []],
            links=clean_links(summary.get("links")),
            resolution_noted=bool(summary.get("resolution_noted")),
            # (groups stored before this was kept: every name seen counts as answered)
            answered_names={str(n) for n in summary.get("answered_names",
                                                         summary.get("alertnames") or {})},
            last_update=to_timestamp(row.last_seen),
            opened_at=to_timestamp(row.first_seen),
        )
        if answer is not None:
            state.answer_id = answer.id
            try:
                state.triage = Triage.from_dict(answer.answer)
            except Exception:  # noqa: BLE001 - the count is still updated, without triage
                log.warning("stored answer %s cannot be shown again", answer.id)
        return state

    @staticmethod
    def _thread_answers(
        session: Any, rows: Sequence[AlertGroup]
    ) -> dict[tuple[str, str], TriageAnswer]:
        """The answer each posted thread shows, by (channel, thread ts): one query per
        ``WRITE_BATCH`` threads, not one per group, at a take-over."""
        threads = [row.thread_ts for row in rows if row.thread_ts]
        answers: dict[tuple[str, str], TriageAnswer] = {}
        for start in range(0, len(threads), WRITE_BATCH):
            chunk = threads[start : start + WRITE_BATCH]
            for answer in session.scalars(
                select(TriageAnswer)
                .where(TriageAnswer.message_ts.in_(chunk))
                .order_by(TriageAnswer.id)
            ):
                answers[(answer.channel, answer.message_ts)] = answer  # the newest wins
        return answers

    def _queue_stored(self, now: float) -> int:
        """Queue the stored events nobody has grouped yet (ids not queued here already).

        No lock of this pipeline is taken inside a transaction: the processing thread holds
        ``_lock`` while it opens a group (a write), so the two would wait on each other."""
        with self._intake_gate:  # this replica's own events: stored and queued, or neither
            with session_scope(self.sessions) as session:
                ids = list(
                    session.scalars(
                        select(EventRecord.id)
                        .where(EventRecord.outcome == "queued")
                        .order_by(EventRecord.id)
                        .limit(POLL_BATCH)
                    )
                )
            with self._lock:
                new = [i for i in ids if i not in self._queued_ids]
                if len(ids) < POLL_BATCH:  # every queued id was seen: forget the done ones
                    still = set(ids)
                    self._queued_ids = {
                        i: t
                        for i, t in self._queued_ids.items()
                        if i in still or now - t < SEEN_GRACE_SECONDS
                    }
        if not new:
            return 0
        rows: list[EventRecord] = []
        with session_scope(self.sessions) as session:
            for start in range(0, len(new), WRITE_BATCH):
                chunk = new[start : start + WRITE_BATCH]
                rows.extend(
                    session.scalars(
                        select(EventRecord)
                        .where(EventRecord.id.in_(chunk), EventRecord.outcome == "queued")
                        .order_by(EventRecord.id)
                    )
                )
            items = [(row.id, _event_from_row(row)) for row in rows]
        if items:
            log.info("queueing %d stored events not grouped yet", len(items))
            self._enqueue(items, now)
        return len(items)

    def _enqueue(self, items: list[tuple[int, Event]], now: float | None = None) -> None:
        now = self.clock() if now is None else now
        with self._lock:
            for row_id, _ in items:
                self._queued_ids[row_id] = now
        for item in items:
            self._queue.put(item)

    # --- intake ------------------------------------------------------------------------

    def accept(self, events: Sequence[Event], timeout: float = 30.0) -> list[int]:
        """Store events durably and queue them; returns their row ids. Concurrent calls share
        one transaction (group commit), so a storm costs a few commits per second instead of
        one per request. When the database is unreachable and a spool is configured, the
        events are spooled instead (the result's ``spooled`` is True). Raises when neither
        the database nor the spool can take them."""
        return self.submit(events).result(timeout=timeout)

    def submit(self, events: Sequence[Event]) -> Future[list[int]]:
        """:meth:`accept` without the wait: the future of the events' row ids, set by the
        writer thread once they are stored (or spooled). The webhook awaits it on the event
        loop instead of holding a worker thread while the group commit runs."""
        done: Future[list[int]] = Future()
        if not events:
            done.set_result(AcceptedIds())
            return done
        with self._submit_lock:
            if self._ending:
                done.set_exception(RuntimeError("the alert pipeline is stopped"))
            else:
                self._writes.put((list(events), done))
        return done

    def _write_loop(self) -> None:
        last = False
        while not last:
            first = self._writes.get()
            if first is None:  # stop(): every call before it is stored
                return
            batch = [first]
            while len(batch) < WRITE_BATCH:
                try:
                    item = self._writes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    last = True
                    break
                batch.append(item)
            if self.spool is not None and self.spool.pending():
                # Older events wait in the spool: queue behind them to keep arrival order.
                self._spool_batch(batch, None)
                continue
            try:
                with self._intake_gate:
                    with self._intake_engine.begin() as connection:  # commit, or roll back
                        ids_per_call = _insert_events(connection,
                                                      [events for events, _ in batch])
                    for (events, _), ids in zip(batch, ids_per_call, strict=True):
                        if self.leader:  # otherwise the leader's poll picks them up
                            self._enqueue(list(zip(ids, events, strict=True)))
            except Exception as exc:  # noqa: BLE001 - spooled, or every caller gets the error
                if self.spool is not None and _database_down(exc):
                    log.warning("database unreachable; spooling %d calls: %s", len(batch), exc)
                    self._spool_batch(batch, exc)
                    continue
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for (_, done), ids in zip(batch, ids_per_call, strict=True):
                done.set_result(AcceptedIds(ids))

    def _spool_batch(
        self, batch: list[tuple[list[Event], Future[list[int]]]], cause: BaseException | None
    ) -> None:
        """Write each call's events as one spool record; answer the callers."""
        try:
            self.spool.append_many(
                [("events", {"events": [event_to_dict(e) for e in events]}) for events, _ in batch]
            )
        except Exception as exc:  # noqa: BLE001 - the callers get an error (-> 503, retried)
            log.error("cannot spool webhook events: %s", exc)
            for _, done in batch:
                done.set_exception(cause or exc)
            return
        for events, done in batch:
            ids = AcceptedIds([0] * len(events))
            ids.spooled = True
            done.set_result(ids)
        if self.on_spooled is not None:
            self.on_spooled()

    def apply_spooled(self, record: Any) -> str:
        """Store the events of a spool record (idempotent by record id) and queue them.

        Returns "duplicate" when the record was stored before (a crash mid-replay)."""
        from bot.spool import already_applied, mark_applied

        events = [event_from_dict(d) for d in record.payload["events"]]
        with self._intake_gate:  # see _write_loop
            with session_scope(self.sessions) as session:
                if already_applied(session, record.id):
                    return "duplicate"
                rows = [_row_from_event(e) for e in events]
                session.add_all(rows)
                mark_applied(session, record)
                session.flush()
                ids = [r.id for r in rows]
            if self.leader:  # in order: older stored events were queued at the take-over
                self._enqueue(list(zip(ids, events, strict=True)))
        return "applied"

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every queued event is processed and every new group's thread posted
        (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Events first: an event's triage task is queued before the event is done; then
            # the outcomes written in the next batch.
            if (
                self._queue.unfinished_tasks == 0
                and self._triage.unfinished_tasks == 0
                and self.replies.idle()
                and not self._pending
                and not self._touched
                and not self._writing_outcomes
            ):
                return True
            time.sleep(0.01)
        return False

    # --- processing --------------------------------------------------------------------

    def _run(self) -> None:
        """Group events in arrival order; write their outcomes in batches.

        Outcomes are written at most every ``OUTCOME_FLUSH_SECONDS`` (or per ``WRITE_BATCH``):
        one write per event kept the database's write lock and the GIL busy while a storm
        was being accepted (accepted alerts/s 545 -> 417 when grouping stopped waiting for
        Slack posts, see docs/benchmarks.md)."""
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=OUTCOME_FLUSH_SECONDS)
            except queue.Empty:
                item = _IDLE
            try:
                if item is None:
                    return
                with self._process_lock:
                    # Not leading (stepped down): the event stays "queued" for the next leader.
                    if item is not _IDLE and self.leader:
                        self._process_or_requeue(*item)
                    due = len(self._pending) >= WRITE_BATCH or (
                        self._queue.empty()
                        and time.monotonic() - last_flush >= OUTCOME_FLUSH_SECONDS
                    )
                    if due and (self._pending or self._touched):
                        last_flush = time.monotonic()  # tried again after the same pause
                        self._flush_outcomes()
            except Exception as exc:
                if _database_down(exc):  # the outcomes stay pending: written at the next try
                    self._warn_db("cannot write alert grouping outcomes", exc)
                else:
                    log.exception("alert processing failed")
            finally:
                if item is not _IDLE:
                    self._queue.task_done()

    def _process_or_requeue(self, row_id: int, event: Event) -> None:
        """Group one event; when a write fails because the database is unreachable, the
        event (still "queued" in the database) is queued again by the next poll."""
        try:
            self._process(row_id, event)
        except Exception as exc:
            if not _database_down(exc):
                raise
            self._warn_db(f"cannot group event {row_id} now; it is queued again", exc)
            with self._lock:
                self._queued_ids.pop(row_id, None)

    def _warn_db(self, what: str, exc: BaseException) -> None:
        """One warning line for a database error, at most every ``DB_WARN_SECONDS``."""
        now = time.monotonic()
        if now - self._db_warned >= DB_WARN_SECONDS:
            self._db_warned = now
            log.warning("%s: database unreachable (%s)", what, _first_line(exc))

    def _retry_db(self, what: str, write: Callable[[], Any]) -> Any:
        """``write()``, tried again while it fails because the database is unreachable and
        this pipeline still leads (a replica that stepped down, or whose lease ran out, leaves
        the work to the next leader, which finds the event "queued")."""
        delay = DB_RETRY_FIRST_SECONDS
        while True:
            try:
                return write()
            except Exception as exc:
                leading = self.leader and self.clock() < self._lease_until
                if not _database_down(exc) or self._stopped.is_set() or not leading:
                    raise
                self._warn_db(f"{what}; trying again", exc)
            if self._stopped.wait(delay):
                raise RuntimeError(f"{what}: stopped before the database answered")
            delay = min(DB_RETRY_MAX_SECONDS, delay * 2)

    def _process(self, row_id: int, event: Event) -> None:
        now = self.clock()
        if event.kind in RECORD_KINDS:
            decision_group = f"record:{event.external_id or row_id}"
            is_new = decision_group not in self.groups
            is_dup = not is_new
            reason = "ticket" if is_new else "same record received again"
            stale = False
        else:
            decision = self.grouper.assign(event, now)
            decision_group, is_new, is_dup, reason, stale = (
                decision.group_id,
                decision.is_new_group,
                decision.is_duplicate,
                decision.reason,
                decision.stale,
            )
        fp = event.fingerprint or str(row_id)
        with self._lock:
            state = self.groups.get(decision_group)
        if state is None:  # only this thread opens groups; no lock held during the write
            # Tried again in place while this replica's lease lasts: the grouper has counted
            # the event already, so queueing it again would count it as its own duplicate.
            state = self._retry_db(
                f"cannot store a new alert group for event {row_id}",
                lambda: self._open_group(decision_group, event, reason, row_id),
            )
            if not is_new:  # opening it failed before (the grouper knew it): this opens it
                is_new, is_dup, stale = True, False, False
        with self._lock:
            if not is_dup:
                state.count += 1
            else:
                state.duplicates += 1
            name = event.alertname or event.title or "event"
            # Per name, the distinct alerts (as the header counts them), not status changes.
            known = fp in state.firing or fp in state.resolved
            state.alertnames[name] = state.alertnames.get(name, 0) + (
                0 if is_dup or known else 1
            )
            if not stale:  # an older notification than the one shown: its status is not
                state.mark(fp, event.status)
            state.add_links(event.links)
            if not is_new and reason not in state.reasons and not is_dup:
                state.reasons.append(reason)
            reply = self.replies.wants_own_answer(state, event, name, is_new=is_new,
                                                  is_dup=is_dup)
            state.dirty = True
            state.revision += 1
            state.posting = state.posting or is_new
        outcome = "new_group" if is_new else ("duplicate" if is_dup else "grouped")
        if reply:
            self.replies.answer_later(state, event)
        if is_new:
            self._triage.put((row_id, state, event, now))  # its outcome is written once posted
        else:
            self._pending.append((row_id, state.row_id, outcome, now))
        self._touched.add(decision_group)
        EVENTS.labels(source=str(event.source), outcome=outcome).inc()
        if self.on_solved_record is not None and is_learnable(event):
            self.on_solved_record(event)
        if now >= self._next_evict:
            self._evict_expired(now)

    def _evict_expired(self, now: float) -> int:
        """Forget the groups the grouper has expired (no event for its window), so that
        ``groups`` and the scans of :meth:`flush` stay bounded. A group whose outcome or
        top-message update is still pending is kept until that is done. Ticket/incident
        groups (``record:``) are not the grouper's and are kept, and so is a group whose
        first post is still queued or running. Pipeline thread only."""
        self._next_evict = now + min(60.0, self.grouper.window_seconds / 4)
        with self._lock:
            expired = [
                key
                for key, state in self.groups.items()
                if not key.startswith("record:")
                and key not in self._touched
                and not state.posting
                and not (state.dirty and state.thread_ts and self.poster is not None)
                and not self.grouper.is_open(key, now)
            ]
            for key in expired:
                del self.groups[key]
        return len(expired)

    def _open_group(self, key: str, event: Event, reason: str, event_id: int) -> GroupState:
        """Store a new group, and link its first event to it at once: that event stays
        "queued" until the thread is posted, and a leader taking over must know its group."""
        channel = route_channel(self.settings, event)
        title = event.alertname or event.title or event.text[:80]
        opened_at = _when(self.clock())
        with session_scope(self.sessions) as session:
            row = AlertGroup(
                key=key[:300],
                channel=channel,
                reason=reason,
                count=0,
                status="firing",
                summary={"title": title, "kind": str(event.kind), "links": dict(event.links)},
                first_seen=opened_at,
                last_seen=opened_at,
            )
            session.add(row)
            session.flush()
            row_id = row.id
            session.execute(
                update(EventRecord).where(EventRecord.id == event_id).values(group_id=row_id)
            )
        state = GroupState(
            row_id=row_id, channel=channel, title=title, reason=reason, kind=str(event.kind),
            opened_at=opened_at.timestamp(),
        )
        with self._lock:
            self.groups[key] = state
        return state

    def _flush_outcomes(self) -> None:
        """Write the outcomes and group counts of the events processed since the last call."""
        if not self._pending and not self._touched:
            return
        self._writing_outcomes = True  # wait_idle: taken off the lists, not written yet
        try:
            self._write_outcomes()
        finally:
            self._writing_outcomes = False

    def _write_outcomes(self) -> None:
        pending, self._pending = self._pending, []
        touched, self._touched = self._touched, set()
        try:
            self._write(pending, touched)
        except BaseException:  # kept for the next try: otherwise those events stay "queued"
            self._pending = pending + self._pending
            self._touched |= touched
            raise

    def _write(self, pending: list[tuple[int, int, str, float]], touched: set[str]) -> None:
        with self._lock:
            states = [self.groups[key] for key in touched if key in self.groups]
        with session_scope(self.sessions) as session:
            if pending:
                session.execute(
                    update(EventRecord),
                    [
                        {"id": e, "group_id": g, "outcome": o, "grouped_at": _when(t)}
                        for e, g, o, t in pending
                    ],
                )
            now = _when(self.clock())
            if states:
                session.execute(
                    update(AlertGroup),
                    [
                        {
                            "id": st.row_id,
                            "count": st.count,
                            "status": st.status,
                            "last_seen": now,
                            "summary": _summary(st),
                        }
                        for st in states
                    ],
                )

    def _triage_loop(self) -> None:
        while True:
            task = self._triage.get()
            if task is None:  # stop()
                self._triage.task_done()
                return
            row_id, state, event, grouped_at = task
            try:
                self._triage_and_post(row_id, state, event, grouped_at)
            except Exception:
                log.exception("triage or post of alert group %s failed", state.row_id)
            finally:
                with self._lock:
                    state.posting = False
                self._triage.task_done()

    def _triage_and_post(
        self, row_id: int, state: GroupState, event: Event, grouped_at: float
    ) -> None:
        """Triage thread: triage the first event of a new group, post the group's thread and
        record the event's outcome (last: a restart re-queues it if this does not finish)."""
        try:
            with TRIAGE_LATENCY.time():
                result = self.assistant.triage(event)
        except Exception:
            log.exception("triage failed for %s", event.title)
            result = None
        answer_id = None
        if result is not None:
            answer_id = self._retry_db(
                f"cannot store the triage of alert group {state.row_id}",
                lambda: record_answer(self.sessions, event=event, triage=result,
                                      surface="webhook", channel=state.channel),
            )
        with self._lock:
            state.answer_id, state.triage = answer_id, result
            shown, revision = _snapshot(state), state.revision
        ts = ""
        if self.poster is not None and state.channel:
            text, blocks = render_group_message(shown, result, answer_id, self.known_labels())
            adopted = False
            try:
                ts, adopted = self._post_or_adopt(state, text, blocks)
            except Exception:
                log.exception("posting alert group %s failed", state.row_id)
            if ts:
                with self._lock:
                    if adopted:
                        self.adopted += 1
                    else:
                        self.posts += 1
                    state.thread_ts = ts
                    # An adopted message shows what the dead leader rendered: edit it at the
                    # next flush. Changes made while a post was in flight need an edit too.
                    state.last_update = 0.0 if adopted else self.clock()
                    state.dirty = adopted or state.revision != revision
        self._retry_db(
            f"cannot store the thread of alert group {state.row_id}",
            lambda: _store_posted(self.sessions, row_id, state.row_id, grouped_at, ts, answer_id),
        )

    def _post_or_adopt(self, state: GroupState, text: str, blocks: Any) -> tuple[str, bool]:
        """Post the group's top message, tagged with its id; returns (ts, adopted).

        A group restored without a thread may have been posted already: its channel's history
        is searched first (once per channel and take-over), and a message found is adopted.
        A new group cannot have been posted, so it costs no search."""
        lookup = self._posted.get(state.channel) if state.maybe_posted else None
        found = lookup.ts_of(state.row_id) if lookup is not None else ""
        if found:
            log.info("alert group %s: thread %s posted before the take-over", state.row_id, found)
            return found, True
        ts = self.poster.post(state.channel, text, blocks, metadata=group_metadata(state.row_id))
        return ts or "", False

    # --- coalesced updates of top messages ------------------------------------------------

    def _flush_loop(self) -> None:
        while not self._stopped.wait(min(1.0, self.update_interval)):
            try:
                self.flush()
            except Exception:
                log.exception("updating alert threads failed")

    def flush(self, force: bool = False) -> int:
        """Edit the top message of every changed group whose last edit is old enough."""
        if self.poster is None:
            return 0
        now = self.clock()
        with self._lock:
            due = [
                (s, _snapshot(s), s.revision)
                for s in self.groups.values()
                if s.dirty
                and s.thread_ts
                and (force or now - s.last_update >= self.update_interval)
            ]
        done = 0
        for state, shown, revision in due:
            text, blocks = render_group_message(
                shown, shown.triage, shown.answer_id, self.known_labels()
            )
            try:
                self.poster.update(
                    shown.channel, shown.thread_ts, text, blocks, group_metadata(state.row_id)
                )
            except Exception:
                log.warning("chat.update failed for group %s", state.row_id, exc_info=True)
                continue
            with self._lock:
                state.dirty = state.revision != revision
                state.last_update = now
                self.updates += 1
            done += 1
            if shown.status == "resolved":
                self.replies.note_resolution(state, shown, now)
        return done


def _store_posted(
    sessions: Any, event_id: int, group_id: int, grouped_at: float, ts: str,
    answer_id: int | None,
) -> None:
    """Record that a new group's first event is done and where its thread is (``ts``)."""
    with session_scope(sessions) as session:
        session.execute(
            update(EventRecord)
            .where(EventRecord.id == event_id)
            .values(group_id=group_id, outcome="new_group", grouped_at=_when(grouped_at))
        )
        if not ts:
            return
        group = session.get(AlertGroup, group_id)
        if group is not None:
            group.thread_ts = ts
        if answer_id:
            answer = repo.get_answer(session=session, answer_id=answer_id)
            if answer is not None:
                answer.message_ts = ts
                answer.thread_ts = ts


def _first_line(exc: BaseException) -> str:
    """A driver error in one log line (SQLAlchemy appends the statement and a link)."""
    lines = str(exc).splitlines()
    return lines[0] if lines else repr(exc)


def _database_down(exc: BaseException) -> bool:
    from bot.spool import is_database_down

    return is_database_down(exc)


def _drain(tasks: queue.Queue[Any]) -> int:
    """Take every waiting item off ``tasks`` (marking each done); returns how many."""
    dropped = 0
    while True:
        try:
            tasks.get_nowait()
        except queue.Empty:
            return dropped
        tasks.task_done()
        dropped += 1


_EVENTS_TABLE = EventRecord.__table__
_INSERT_ONE = insert(_EVENTS_TABLE).returning(_EVENTS_TABLE.c.id)
_INSERT_MANY = insert(_EVENTS_TABLE).returning(_EVENTS_TABLE.c.id, sort_by_parameter_order=True)


def _insert_events(connection: Any, calls: list[list[Event]]) -> list[list[int]]:
    """One INSERT ... RETURNING (multi-row when several) for a whole group commit, on a Core
    connection; ids per call, in order. The ORM's bulk insert (``insert(EventRecord)`` run
    through a session) and the session around it cost more CPU than the statement: about
    430 -> 250 us per event on SQLite for a group commit of two one-alert calls, the common
    case of a storm."""
    values = [_event_values(e) for events in calls for e in events]
    if not values:
        return [[] for _ in calls]
    if len(values) == 1:
        ids = [connection.execute(_INSERT_ONE, values[0]).scalar_one()]
    else:
        ids = list(connection.execute(_INSERT_MANY, values).scalars())
    out, start = [], 0
    for events in calls:
        out.append(ids[start : start + len(events)])
        start += len(events)
    return out


def _event_values(e: Event) -> dict[str, Any]:
    return dict(
        source=str(e.source),
        kind=str(e.kind),
        external_id=e.external_id[:200],
        fingerprint=e.fingerprint[:100],
        group_key=e.group_key,
        status=str(e.status),
        channel=e.channel,
        title=e.title,
        text=e.text,
        labels=dict(e.labels),
        links=dict(e.links) or None,
        outcome="queued",
        received_at=e.received_at,
    )


def _row_from_event(e: Event) -> EventRecord:
    return EventRecord(**_event_values(e))


_EVENT_TIMES = ("received_at", "starts_at", "ends_at")


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as plain JSON values (for the spool); ``raw`` is left out."""
    out: dict[str, Any] = {}
    for f in fields(Event):
        if f.name == "raw":
            continue
        value = getattr(event, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, dict):
            value = {str(k): str(v) for k, v in value.items()}
        elif value is not None:
            value = str(value)
        out[f.name] = value
    return out


def event_from_dict(data: dict[str, Any]) -> Event:
    """The inverse of :func:`event_to_dict`; raises ValueError/KeyError on bad input."""
    values = dict(data)
    for name in _EVENT_TIMES:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
        elif name == "received_at":
            values.pop(name, None)
    values["source"] = EventSource(values["source"])
    values["kind"] = EventKind(values["kind"])
    values["status"] = AlertStatus(values.get("status") or "firing")
    values["links"] = clean_links(values.get("links"))
    known = {f.name for f in fields(Event)}
    return Event(**{k: v for k, v in values.items() if k in known})


def _event_from_row(row: EventRecord) -> Event:
    return Event(
        source=EventSource(row.source),
        kind=EventKind(row.kind),
        text=row.text,
        title=row.title,
        labels={str(k): str(v) for k, v in (row.labels or {}).items()},
        links=clean_links(row.links),
        status=AlertStatus(row.status)
        if row.status in ("firing", "resolved")
        else AlertStatus.FIRING,
        fingerprint=row.fingerprint,
        group_key=row.group_key,
        external_id=row.external_id,
        channel=row.channel,
        received_at=row.received_at,
    )


def _snapshot(state: GroupState) -> GroupState:
    """A copy to render outside the lock while the pipeline thread changes the original."""
    return replace(
        state,
        firing=set(state.firing),
        resolved=set(state.resolved),
        alertnames=dict(state.alertnames),
        reasons=list(state.reasons),
        links=dict(state.links),
    )


def _when(seconds: float) -> datetime:
    """The pipeline clock's seconds as a stored time."""
    return datetime.fromtimestamp(seconds, UTC)


def _summary(state: GroupState) -> dict[str, Any]:
    return {
        "title": state.title,
        "kind": state.kind,
        "alertnames": dict(state.alertnames),
        "firing": len(state.firing),
        "resolved": len(state.resolved),
        "duplicates": state.duplicates,
        "reasons": state.reasons[:10],
        "links": dict(state.links),
        "resolution_noted": state.resolution_noted,
        "answered_names": sorted(state.answered_names),
    }
