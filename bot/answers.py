"""Storing what was shown: every answer with the model and index versions behind it."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bot.events import Event
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.triage_types import Triage


def record_answer(
    sessions: sessionmaker[Session],
    *,
    event: Event,
    triage: Triage,
    surface: str,
    event_id: int | None = None,
    channel: str = "",
    thread_ts: str = "",
    message_ts: str = "",
    requested_by: str = "",
) -> int:
    """Store the answer (and an audit entry) and return its id, used by feedback buttons."""
    with session_scope(sessions) as session:
        row = repo.record_answer(
            session=session,
            event_id=event_id,
            surface=surface,
            channel=channel or event.channel,
            thread_ts=thread_ts,
            message_ts=message_ts,
            requested_by=requested_by or event.author,
            query=triage.query,
            answer=triage.to_dict(),
            model_versions=dict(triage.model_versions),
            index_version=triage.index_version,
            latency_ms=triage.elapsed_ms,
        )
        repo.audit(
            session=session,
            actor=requested_by or event.author or surface,
            action="answer_shown",
            subject=f"answer:{row.id}",
            detail={
                "surface": surface,
                "channel": channel or event.channel,
                "model_versions": dict(triage.model_versions),
                "index_version": triage.index_version,
            },
        )
        return row.id
