"""A durable local spool for work the database cannot take right now.

When the database is unreachable, incoming webhook events, feedback clicks and root causes, and
Slack channel messages and @mentions are written here instead of being refused (or left
unanswered), and replayed in order once it is back. Slash commands and the message shortcut
are not spooled: the person is told to retry.

Layout under ``<data_dir>/spool/``:

* ``seg-<seq>.jsonl``: append-only JSON-lines segments, one record per line
  (``{"id": uuid, "kind": "events"|"feedback"|"slack", "at": iso-time, "payload": {...}}``);
  every append is fsynced before it returns, so an acknowledged record survives a crash.
* ``seg-<seq>.done``: how many records of that segment were applied (replay progress).
* ``dead-letter.jsonl``: records that can never be applied (bad payload, a row that no
  longer exists); kept, logged and counted, never dropped silently.

Replay takes segments oldest first and records in file order, and removes a segment only
after every record in it was applied. A crash mid-replay may apply the record after the last
saved progress a second time, so apply functions must be idempotent: each record carries a
uuid which they store in the database in the same transaction as the record's rows (see
:func:`already_applied` / :func:`mark_applied`). Slack records are the exception: their
marker is committed *before* the work (triage, store, post in the thread), so a crash in
between leaves that message unanswered rather than answered twice (at most once, as for
every Slack event).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.metrics import SPOOL_RECORDS
from knowledge.storage import fsync_path

log = logging.getLogger(__name__)

SEGMENT_PREFIX = "seg-"
DEAD_LETTER = "dead-letter.jsonl"
LOCK_FILE = ".lock"
KINDS = ("events", "feedback", "slack")
MARKER_ACTION = "spool_replayed"


class SpoolError(RuntimeError):
    """The spool cannot be written (disk full, permissions) or is locked by another process."""


class DatabaseDown(RuntimeError):
    """Raised by an apply function when the database is still unreachable: stop, retry later."""


@dataclass(frozen=True)
class SpoolRecord:
    id: str
    kind: str
    at: str
    payload: dict[str, Any]


@dataclass
class ReplayResult:
    """What one :meth:`Spool.replay` call did."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    remaining: int = 0
    error: str = ""
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.error and self.remaining == 0


def is_database_down(exc: BaseException) -> bool:
    """True for errors that mean "the database is unreachable now", not "this data is bad"."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from bot.store.db import DatabaseUnavailableError

    if isinstance(exc, DatabaseDown | DatabaseUnavailableError | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


_OPEN: dict[Path, Spool] = {}
_OPEN_GUARD = threading.Lock()


def open_spool(directory: Path) -> Spool:
    """The one :class:`Spool` of ``directory`` in this process (shared by every runtime)."""
    key = Path(directory).resolve()
    with _OPEN_GUARD:
        spool = _OPEN.get(key)
        if spool is None:
            spool = _OPEN[key] = Spool(key)
        return spool


class Spool:
    """Append-only, fsynced JSON-lines segments with in-order, crash-safe replay."""

    def __init__(self, directory: Path, *, segment_records: int = 1000) -> None:
        self.directory = Path(directory)
        self.segment_records = segment_records
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"cannot create spool folder {self.directory}: {exc}") from exc
        self._lock_fd = _lock_folder(self.directory)
        self._lock = threading.Lock()  # appends and segment bookkeeping
        self._replaying = threading.Lock()  # one replay at a time
        self._current: Any = None  # open file of the segment being appended to
        self._current_path: Path | None = None
        self._current_count = 0
        self._seq = max((_seq_of(p) for p in self._segments()), default=0)
        self._pending = sum(self._unapplied(p) for p in self._segments())
        if self._pending:
            log.warning("spool %s holds %d records to replay", self.directory, self._pending)

    # --- writing ---------------------------------------------------------------------------

    def append(self, kind: str, payload: Mapping[str, Any]) -> str:
        """Write one record durably (fsynced) and return its id."""
        return self.append_many([(kind, payload)])[0]

    def append_many(self, items: list[tuple[str, Mapping[str, Any]]]) -> list[str]:
        """Write several records with one fsync; all or none are acknowledged."""
        lines, ids = [], []
        now = datetime.now(UTC).isoformat()
        for kind, payload in items:
            if kind not in KINDS:
                raise ValueError(f"unknown spool record kind {kind!r}; expected one of {KINDS}")
            record_id = uuid.uuid4().hex
            ids.append(record_id)
            record = {"id": record_id, "kind": kind, "at": now, "payload": dict(payload)}
            lines.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        with self._lock:
            try:
                fh = self._writable()
                fh.write("".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                self._close_current()
                raise SpoolError(f"cannot write to spool {self.directory}: {exc}") from exc
            self._current_count += len(lines)
            self._pending += len(lines)
            if self._current_count >= self.segment_records:
                self._close_current()
        for kind, _ in items:
            SPOOL_RECORDS.labels(kind=kind, outcome="spooled").inc()
        return ids

    def _writable(self) -> Any:
        if self._current is None:
            self._seq += 1
            path = self.directory / f"{SEGMENT_PREFIX}{self._seq:012d}.jsonl"
            self._current = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._current_path = path
            self._current_count = 0
            fsync_path(self.directory)
        return self._current

    def _close_current(self) -> None:
        if self._current is not None:
            with contextlib.suppress(OSError):
                self._current.close()
        self._current = None
        self._current_path = None
        self._current_count = 0

    def close(self) -> None:
        """Close the open segment and release the folder lock (shutdown; tests)."""
        with self._lock:
            self._close_current()
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
                self._lock_fd = None
        with _OPEN_GUARD:
            if _OPEN.get(self.directory.resolve()) is self:
                del _OPEN[self.directory.resolve()]

    # --- state -----------------------------------------------------------------------------

    def pending(self) -> int:
        """Records written and not yet applied."""
        return self._pending

    def records(self) -> Iterator[SpoolRecord]:
        """Every record not yet applied, in replay order (for inspection and tests)."""
        for path in self._segments():
            done = _read_progress(path)
            for i, record in enumerate(_read_segment(path)):
                if i >= done and record is not None:
                    yield record

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"{SEGMENT_PREFIX}*.jsonl"), key=_seq_of)

    def _unapplied(self, path: Path) -> int:
        return max(0, sum(1 for _ in _read_segment(path)) - _read_progress(path))

    # --- replay ----------------------------------------------------------------------------

    def replay(self, handler: Callable[[SpoolRecord], str | None]) -> ReplayResult:
        """Apply records in order with ``handler`` until the spool is empty or it fails.

        ``handler`` returns ``"duplicate"`` when the record was applied before (idempotency),
        anything else when it applied it now. It raises :class:`DatabaseDown` (or a database
        error) to stop the replay: the record stays and is tried again later. Any other error
        moves the record to the dead-letter file (logged, counted) and replay goes on.
        """
        result = ReplayResult()
        with self._replaying:
            for _ in range(100):  # new records may arrive while replaying; bounded rounds
                with self._lock:
                    self._close_current()  # seal: new appends go to a new segment
                    segments = self._segments()
                if not segments:
                    break
                for path in segments:
                    if not self._replay_segment(path, handler, result):
                        result.remaining = self._pending
                        return result
        result.remaining = self._pending
        return result

    def _replay_segment(
        self, path: Path, handler: Callable[[SpoolRecord], str | None], result: ReplayResult
    ) -> bool:
        done = _read_progress(path)
        records = list(_read_segment(path))
        for position in range(done, len(records)):
            record = records[position]
            if record is None:
                log.error("spool %s line %d is unreadable (torn write?): skipped", path, position)
                self._dead_letter_raw(path, position)
                result.dead_lettered += 1
            else:
                try:
                    outcome = handler(record)
                except Exception as exc:
                    if is_database_down(exc):
                        result.error = f"{exc.__class__.__name__}: {exc}"[:500]
                        log.info("spool replay paused: database unavailable (%s)", exc)
                        _write_progress(path, position)
                        return False
                    log.error(
                        "spool record %s (%s) cannot be applied: %r; moved to %s",
                        record.id,
                        record.kind,
                        exc,
                        DEAD_LETTER,
                        exc_info=exc,
                    )
                    self._dead_letter(record, exc)
                    result.dead_lettered += 1
                    SPOOL_RECORDS.labels(kind=record.kind, outcome="dead_letter").inc()
                else:
                    if outcome == "duplicate":
                        result.duplicates += 1
                        SPOOL_RECORDS.labels(kind=record.kind, outcome="duplicate").inc()
                    else:
                        result.applied += 1
                        result.kinds[record.kind] = result.kinds.get(record.kind, 0) + 1
                        SPOOL_RECORDS.labels(kind=record.kind, outcome="replayed").inc()
            with self._lock:
                self._pending = max(0, self._pending - 1)
            _write_progress(path, position + 1)
        path.unlink(missing_ok=True)
        _progress_path(path).unlink(missing_ok=True)
        fsync_path(self.directory)
        return True

    def _dead_letter(self, record: SpoolRecord, exc: BaseException) -> None:
        entry = {
            "id": record.id,
            "kind": record.kind,
            "at": record.at,
            "payload": record.payload,
            "error": f"{exc.__class__.__name__}: {exc}"[:1000],
        }
        self._append_dead_letter(json.dumps(entry, ensure_ascii=False, default=str))

    def _dead_letter_raw(self, path: Path, position: int) -> None:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        raw = lines[position] if position < len(lines) else ""
        entry = {"segment": path.name, "line": position, "raw": raw, "error": "unreadable"}
        self._append_dead_letter(json.dumps(entry, ensure_ascii=False))
        SPOOL_RECORDS.labels(kind="unknown", outcome="dead_letter").inc()

    def _append_dead_letter(self, line: str) -> None:
        with open(self.directory / DEAD_LETTER, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def dead_letters(self) -> list[dict[str, Any]]:
        path = self.directory / DEAD_LETTER
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --- idempotency markers (stored in the database with the record's rows) --------------------


def already_applied(session: Any, record_id: str) -> bool:
    """True when the record's marker is in the audit log (it was applied before a crash)."""
    from sqlalchemy import select

    from bot.store.models import AuditEntry

    found = session.scalar(
        select(AuditEntry.id)
        .where(AuditEntry.action == MARKER_ACTION, AuditEntry.subject == f"spool:{record_id}")
        .limit(1)
    )
    return found is not None


def mark_applied(session: Any, record: SpoolRecord) -> None:
    """Write the record's marker; call inside the transaction that applies it."""
    from bot.store import repository as repo

    repo.audit(
        session=session,
        actor="spool",
        action=MARKER_ACTION,
        subject=f"spool:{record.id}",
        detail={"kind": record.kind, "spooled_at": record.at},
    )


# --- the background replayer -------------------------------------------------------------------


class SpoolReplayer:
    """Replays the spool while it is not empty: at once when woken, else with backoff
    (``min_delay`` doubling up to ``max_delay``) while the database stays unreachable."""

    def __init__(
        self,
        spool: Spool,
        handler: Callable[[SpoolRecord], str | None],
        *,
        min_delay: float = 2.0,
        max_delay: float = 30.0,
        idle_poll: float = 5.0,
    ) -> None:
        self.spool = spool
        self.handler = handler
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.idle_poll = idle_poll
        self.delay = min_delay
        self.last: ReplayResult | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SpoolReplayer:
        self._thread = threading.Thread(target=self._loop, name="spool-replay", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Try now (e.g. right after something was spooled, or the database came back)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> ReplayResult:
        """One replay attempt (also used at start-up and by tests)."""
        result = self.spool.replay(self.handler)
        self.last = result
        if result.applied or result.dead_lettered:
            log.info(
                "spool replay: %d applied, %d duplicates, %d dead-lettered, %d remaining",
                result.applied,
                result.duplicates,
                result.dead_lettered,
                result.remaining,
            )
        return result

    def _loop(self) -> None:
        wait = 0.0  # first attempt at once: replay at start-up
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.spool.pending():
                wait = self.idle_poll
                continue
            try:
                result = self.run_once()
                failed = bool(result.error)
            except Exception:
                log.exception("spool replay failed")
                failed = True
            if failed:
                self.delay = min(self.max_delay, max(self.min_delay, self.delay * 2))
                wait = self.delay
            else:
                self.delay = self.min_delay
                wait = 0.0 if self.spool.pending() else self.idle_poll


# --- files -----------------------------------------------------------------------------------


def _seq_of(path: Path) -> int:
    try:
        return int(path.stem[len(SEGMENT_PREFIX) :])
    except ValueError:
        return 0


def _progress_path(segment: Path) -> Path:
    return segment.with_suffix(".done")


def _read_progress(segment: Path) -> int:
    try:
        return max(0, int(_progress_path(segment).read_text(encoding="utf-8").strip() or 0))
    except (OSError, ValueError):
        return 0


def _write_progress(segment: Path, count: int) -> None:
    target = _progress_path(segment)
    tmp = target.with_suffix(".done.tmp")
    tmp.write_text(str(count), encoding="utf-8")
    os.replace(tmp, target)


def _read_segment(path: Path) -> Iterator[SpoolRecord | None]:
    """Records of a segment in order; ``None`` for an unreadable line (a torn last write)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            yield SpoolRecord(
                id=str(data["id"]),
                kind=str(data["kind"]),
                at=str(data.get("at", "")),
                payload=dict(data["payload"]),
            )
        except (ValueError, KeyError, TypeError):
            yield None


def _lock_folder(directory: Path) -> int | None:
    """An advisory lock so that two processes never replay one spool folder."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise SpoolError(f"spool {directory} is in use by another triagebot process") from exc
    return fd
