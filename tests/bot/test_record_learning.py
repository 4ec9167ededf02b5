"""Solved tickets and incidents from the generic webhook become past records."""

from __future__ import annotations

from sqlalchemy import select

from bot.intake.generic import parse_generic
from bot.record_learning import RecordLearner, is_learnable, record_id
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import Incident


def _incident(services, external_id: str) -> Incident:
    with session_scope(services.sessions) as session:
        row = session.scalars(select(Incident).where(Incident.external_id == external_id)).one()
        session.expunge(row)
        return row


def test_only_records_that_say_how_they_were_solved_are_learnt() -> None:
    solved, cause_only, open_, alert = parse_generic([
        {"id": "T1", "title": "VPN down", "resolution": "Restarted the gateway."},
        {"id": "I1", "source": "incident", "title": "DB slow", "root_cause": "Missing index."},
        {"id": "T2", "title": "VPN down"},
        {"id": "A1", "source": "alert", "title": "Disk full", "resolution": "Cleaned up."},
    ])
    assert [is_learnable(e) for e in (solved, cause_only, open_, alert)] == [
        True, True, False, False]
    (anonymous,) = parse_generic({"title": "Printer jam", "resolution": "Cleared it."})
    assert record_id(anonymous).startswith("webhook:") and len(record_id(anonymous)) > 10


def test_a_stored_record_keeps_its_visibility_and_the_fields_the_webhook_leaves_out(
    services,
) -> None:
    """An imported private ticket solved through the webhook stays private (a webhook does
    not widen who sees it), and its category is not blanked by an update without one."""
    with session_scope(services.sessions) as session:
        repo.upsert_incident(session=session, external_id="HD-1", kind="ticket",
                             title="Payroll export fails", description="CSV export errors",
                             category="finance-apps", visibility="private:CHR",
                             source_name="import")
    learner = RecordLearner(sessions=services.sessions, knowledge=services.knowledge,
                            visibility="public")
    (event,) = parse_generic({"id": "HD-1", "title": "Payroll export fails",
                              "description": "CSV export errors",
                              "resolution": "Raised the export's row limit."})
    assert learner.learn(event) == "updated"
    row = _incident(services, "HD-1")
    assert (row.visibility, row.category, row.source_name) == (
        "private:CHR", "finance-apps", "import")
    assert row.resolution == "Raised the export's row limit."
    assert learner.learn(event) == "unchanged"  # a re-send changes nothing

    (new,) = parse_generic({"id": "HD-2", "title": "Payroll export fails again",
                            "resolution": "Same fix."})
    assert learner.learn(new) == "added"
    assert _incident(services, "HD-2").visibility == "public"


def test_a_solved_record_too_long_to_store_is_refused_with_a_warning(services, caplog) -> None:
    learner = RecordLearner(sessions=services.sessions, knowledge=services.knowledge,
                            visibility="public")
    (event,) = parse_generic({"id": "HD-9", "title": "Printer jam", "team": "t" * 150,
                              "resolution": "Cleared it."})
    assert learner.learn(event) == "refused"
    assert "team is 150 characters long, at most 100 fit" in caplog.text
    with session_scope(services.sessions) as session:
        assert session.scalars(select(Incident).where(Incident.external_id == "HD-9")).all() == []
