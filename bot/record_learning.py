"""Resolved tickets and incidents that arrive by webhook become searchable history.

A help desk sends a ticket to ``/webhooks/generic`` when it is opened and again when it is
solved, now with its ``resolution`` (and maybe ``root_cause``). The solved version is what
the next agent with the same problem needs, so it is stored as a past record, as
``triagebot import`` would, and added to the incidents index at once; the other replicas
catch up at their next sync. Its labels (final category, assignment group, priority) are
training data for the next retrain.

The alert pipeline calls :func:`is_learnable` for every stored event it processes (once per
event, on the grouping leader, including events replayed from the spool) and hands those
to :meth:`RecordLearner.learn` on a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.events import RECORD_KINDS, Event
from bot.intake.links import RECORD
from bot.store import repository as repo
from bot.store.db import session_scope
from knowledge.records import too_long

log = logging.getLogger(__name__)

LABEL_FIELDS = ("category", "severity", "priority", "team", "service")
SOURCE_NAME = "webhook"


def is_learnable(event: Event) -> bool:
    """A ticket or incident that comes with how it was solved."""
    notes = event.annotations
    return event.kind in RECORD_KINDS and bool(notes.get("resolution") or notes.get("root_cause"))


def record_id(event: Event) -> str:
    """The record's own id; one from its text when it came without (``webhook:<hash>``)."""
    return event.external_id or f"{SOURCE_NAME}:{event.fingerprint}"


def incident_fields(event: Event) -> dict[str, Any]:
    """The incident row's fields from the event; empty values are left out, so a webhook
    that sends fewer fields than an earlier import does not blank them."""
    description = event.text
    if event.title and description.startswith(event.title):
        description = description[len(event.title) :].lstrip("\n")
    fields: dict[str, Any] = {
        "kind": str(event.kind),
        "title": event.title,
        "description": description,
        "root_cause": event.annotations.get("root_cause", ""),
        "resolution": event.annotations.get("resolution", ""),
        "url": event.links.get(RECORD, ""),
        **{name: event.labels.get(name, "") for name in LABEL_FIELDS},
    }
    return {name: value for name, value in fields.items() if value}


class RecordLearner:
    """Stores solved records and makes them searchable (see the module docstring)."""

    def __init__(self, *, sessions: Any, knowledge: Any, visibility: str) -> None:
        self.sessions = sessions
        self.knowledge = knowledge
        self.visibility = visibility

    def learn(self, event: Event) -> str:
        """Store one solved record: "added", "updated" or "unchanged" ("refused" when an id
        or label is too long to store). A record already stored (imported, or sent before)
        keeps its visibility: a webhook does not widen who may see it."""
        external_id = record_id(event)
        fields = incident_fields(event)
        if why := too_long({"id": external_id, **fields}):
            log.warning("solved %s %s not stored: %s", event.kind, external_id[:60], why)
            return "refused"
        # set on a new row only: the stored visibility stays, and a stored time reads back
        # naive on SQLite, so comparing it would report every re-send as a change
        new_row = {"visibility": self.visibility, "source_name": SOURCE_NAME,
                   "occurred_at": event.starts_at or event.received_at}
        with session_scope(self.sessions) as session:
            row, status = repo.upsert_incident(
                session=session, external_id=external_id, on_insert=new_row, **fields
            )
            row_id = row.id
        if status != "unchanged":
            self.knowledge.add_incident(row_id)
        log.info("solved %s %s from the webhook: %s", event.kind, external_id, status)
        return status


def solved_record_handler(runtime: Any) -> Callable[[Event], None]:
    """What the alert pipeline calls with each solved record: hands it to a
    :class:`RecordLearner` on the runtime's worker pool (it must not block grouping)."""
    from bot.workers import QueueFullError

    services = runtime.services
    learner = RecordLearner(
        sessions=services.sessions,
        knowledge=services.knowledge,
        visibility=runtime.settings.webhook_record_visibility,
    )

    def hand_over(event: Event) -> None:
        try:
            runtime.components["workers"].submit(learner.learn, event)
        except QueueFullError:
            log.warning("too busy to store solved %s %s now; import it later",
                        event.kind, event.external_id)

    return hand_over
