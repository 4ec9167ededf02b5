"""Behaviour of Assistant.triage() on the bundled samples (real model, real indexes)."""

from __future__ import annotations

import json
import re

import pytest

from bot.events import Event, EventKind, EventSource
from bot.triage_types import Triage
from knowledge.suggest import extract_steps
from tests.assistant.conftest import SHARED

WAL = "disk full on /var/lib/postgresql on db-01"  # the README's demo query


def _event(text: str, **labels: str) -> Event:
    return Event(source=EventSource.CLI, kind=EventKind.ALERT, text=text, labels=dict(labels))


def _mitigation_parts(services, path: str) -> list[str]:
    """The texts of an indexed runbook's Mitigation section and its sub-sections (the heading
    may sit at any depth: front-matter titles and H1s both add a level)."""
    index = services.knowledge.indexes["runbooks"]
    chunk = next(p.id for p in index.passages() if p.doc_key.split(":", 1)[-1] == path)
    _, sections = services.knowledge.document_sections(chunk)
    with_heading = [s for s in sections if "Mitigation" in s.heading_path]
    if not with_heading:
        return []
    depth = with_heading[0].heading_path.index("Mitigation") + 1
    root = with_heading[0].heading_path[:depth]
    return [s.text for s in sections if s.heading_path[:depth] == root]


def _mitigation_text(services, path: str) -> str:
    return "\n".join(_mitigation_parts(services, path))


def test_demo_query_storage_wal_incidents_and_runbook_steps(services) -> None:
    triage = services.assistant.triage(_event(WAL))
    assert triage.prediction("category").label == "storage"
    ids = [s.external_id for s in triage.similar]
    assert ids[0] == "INC-2009", ids  # the same disk on the same host
    assert {"INC-2119", "INC-2226", "INC-2525"} <= set(ids), ids  # the other WAL incidents
    assert triage.runbooks[0].document_path == "database/postgres-wal-volume-full.md"
    assert not triage.novel
    mitigation = _mitigation_text(services, "database/postgres-wal-volume-full.md")
    runbook_steps = [s for s in triage.steps if s.evidence[0].kind == "runbook"]
    assert [s.text for s in runbook_steps] == extract_steps(mitigation)[: len(runbook_steps)]
    assert any("pg_drop_replication_slot" in s.text for s in runbook_steps)  # command intact
    incident_steps = [s for s in triage.steps if s.evidence[0].kind == "incident"]
    assert incident_steps and all(s.evidence[0].ref in ids for s in incident_steps)
    # the label's evidence: the closest labelled incidents that carry it, named
    examples = triage.prediction("category").examples
    assert examples and all(label == "storage" for _, label, _ in examples)
    assert all(ref.startswith("INC-") and ": " in ref for ref, _, _ in examples), examples


def test_label_evidence_never_shows_an_incident_the_channel_may_not_see() -> None:
    import numpy as np

    from bot.assistant import visible_examples
    from bot.triage_types import LabelPrediction
    from knowledge.search import HybridIndex, Passage

    index = HybridIndex("test-model", 4)
    index.upsert([Passage(7, "incident:INC-7", "incident", "disk full on db-7", "", "x"),
                  Passage(8, "incident:SEC-1", "incident", "ledger leaked", "", "y",
                          visibility="private:CSEC")],
                 np.eye(4, dtype=np.float32)[:2])
    p = LabelPrediction("category", "storage", 0.9, examples=(
        ("incident:8", "storage", 0.9), ("incident:7", "storage", 0.8),
        ("incident:99", "storage", 0.7),  # 99: deleted since the model was trained
        ("incident:x7", "storage", 0.6), ("7", "storage", 0.5)))  # not a reference we write
    public = visible_examples([p], index, lambda v: v in ("public", ""))[0]
    assert public.examples == (("INC-7: disk full on db-7", "storage", 0.8),)
    in_channel = visible_examples([p], index, lambda v: v in ("public", "private:CSEC"))[0]
    assert [ref for ref, _, _ in in_channel.examples] == ["SEC-1: ledger leaked",
                                                          "INC-7: disk full on db-7"]


def test_evidence_on_every_hypothesis_and_step(services) -> None:
    for text in (WAL, "VPN keeps disconnecting every 10 minutes since this morning"):
        triage = services.assistant.triage(_event(text))
        assert triage.hypotheses and triage.steps
        for item in (*triage.hypotheses, *triage.steps):
            assert item.evidence, item
            for ev in item.evidence:
                assert ev.kind in {"incident", "runbook"} and ev.ref
        confidences = [h.confidence for h in triage.hypotheses]
        assert confidences == sorted(confidences, reverse=True)
        assert 0 < sum(confidences) <= 1.0 + 1e-6
        runbook_refs = {e.ref for h in triage.hypotheses for e in h.evidence if e.kind == "runbook"}
        assert all("#" in r for r in runbook_refs)


def test_explanations_skip_everyday_words(services) -> None:
    triage = services.assistant.triage(
        _event("VPN keeps disconnecting every 10 minutes since this morning")
    )
    terms = [r for s in triage.similar for r in s.reasons if r.startswith("shares terms")]
    assert any("vpn" in r for r in terms)
    for reason in terms:
        for generic in ("keeps", "every", "minutes", "since", "morning"):
            assert generic not in reason.split(": ", 1)[1].split(", ")


def test_near_duplicates_collapse(services) -> None:
    triage = services.assistant.triage(_event("quasar ledger nightly export hangs at 99%"))
    dups = [s for s in triage.similar if s.external_id in {"DUP-1", "DUP-2"}]
    assert len(dups) == 1
    assert dups[0].duplicates == 1
    assert triage.similar[0].external_id in {"DUP-1", "DUP-2"}


def test_tie_breakers_fix_then_recency(services) -> None:
    triage = services.assistant.triage(
        _event("Zephyr billing reconciler reports totals mismatch for tenant batch")
    )
    ties = [s.external_id for s in triage.similar if s.external_id.startswith("TIE-")]
    assert ties == ["TIE-NEW-FIX", "TIE-OLD-FIX", "TIE-NEW-NOFIX"]


def test_off_topic_query_is_novel_and_weak(services) -> None:
    on_topic = services.assistant.triage(_event(WAL))
    off = services.assistant.triage(
        _event("What is a good recipe for banana bread with walnuts and cinnamon?")
    )
    assert off.novel and not on_topic.novel
    assert off.novelty_score < on_topic.novelty_score
    assert all(s.reasons[0].startswith("weak lead") for s in off.similar)
    if off.hypotheses:
        assert max(h.confidence for h in off.hypotheses) <= 0.5


def test_visibility_filters_private_incidents(services) -> None:
    text = "quasar ledger export written to a public bucket"
    everyone = services.assistant.triage(_event(text))
    assert "SEC-1" in [s.external_id for s in everyone.similar]
    public = services.assistant.triage(_event(text), visibility=lambda v: v == "public")
    assert "SEC-1" not in [s.external_id for s in public.similar]
    assert all("SEC-1" not in e.ref for h in public.hypotheses for e in h.evidence)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data (evaluation data) is absent")
def test_prometheus_runbook_steps_come_from_mitigation(tmp_path_factory) -> None:
    """For every alert whose gold runbook triage() ranks first, the runbook steps all come
    from that runbook's Mitigation section (none when it has no such section)."""
    from bot.app import build_services
    from bot.config import Settings

    root = SHARED / "runbooks" / "prometheus-operator"
    data_dir = tmp_path_factory.mktemp("prom") / "data"
    svc = build_services(Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False))
    try:
        svc.knowledge.index_runbooks(root / "corpus", source="prom")
        queries = [json.loads(line) for line in (root / "queries.jsonl").read_text().splitlines()]
        checked = with_steps = 0
        for q in queries:
            labels = q["alert"]["labels"]
            triage = svc.assistant.triage(_event(q["text"], **labels))
            if not triage.runbooks or triage.runbooks[0].document_path != q["gold"]:
                continue
            checked += 1
            text = (root / "corpus" / q["gold"]).read_text(encoding="utf-8")
            has_mitigation = "## Mitigation" in text
            mitigation = _mitigation_text(svc, q["gold"]) if has_mitigation else ""
            expected = [st for part in _mitigation_parts(svc, q["gold"])
                        for st in extract_steps(part)] if mitigation else []
            got = [s.text for s in triage.steps if s.evidence[0].kind == "runbook"]
            with_steps += bool(got)
            assert got == expected[: len(got)], q["id"]
            flat = " ".join(mitigation.split())  # a prose step joins its paragraph's lines
            assert all(" ".join(st.split("\n")[0].split()) in flat for st in got), q["id"]
            assert all(s.evidence[0].ref.startswith(q["gold"] + "#Mitigation")
                       for s in triage.steps if s.evidence[0].kind == "runbook")
            # the runbook excerpt is not the Meaning quoted as the likely cause beside it
            excerpt = " ".join(triage.runbooks[0].text.split())
            causes = [h.text for h in triage.hypotheses if h.evidence[0].kind == "runbook"]
            assert not any(c[:60] in excerpt for c in causes), q["id"]
            shown = [excerpt, *causes]
            assert not any("<details>" in t or "<summary>" in t for t in shown), q["id"]
        print(f"checked {checked} of {len(queries)} queries, {with_steps} with runbook steps")
        assert checked >= len(queries) * 0.9
        # most of these runbooks write their mitigation as prose: it is still the steps
        assert with_steps >= checked * 0.75, (with_steps, checked)
    finally:
        svc.close()


def test_search_of_every_kind_takes_turns_between_runbooks_and_incidents(services) -> None:
    """Runbook and incident scores come from different fusions and do not compare: sorted
    together, five runbooks (a laptop and a mailbox among them) hid the incident that
    matched "disk full on db-01" word for word."""
    hits = services.assistant.search("disk full on db-01", k=5)
    assert [h["kind"] for h in hits] == ["runbook", "incident", "runbook", "incident", "runbook"]
    assert hits[1]["title"].startswith("Disk full on /var/lib/postgresql on db-01")
    only = services.assistant.search("disk full on db-01", kind="incident", k=3)
    assert len(only) == 3 and {h["kind"] for h in only} == {"incident"}


def test_an_alert_rules_labels_are_given_not_guessed(services) -> None:
    text = "WAL volume on db-01 is 97% full"
    alert = services.assistant.triage(_event(text, severity=" Critical ", Team="dba",
                                             category="x" * 200))
    severity, team = alert.prediction("severity"), alert.prediction("team")
    assert (severity.given, severity.given_by) == ("Critical", "alert")
    assert (team.given, team.given_by) == ("dba", "alert")  # keys compared without case
    assert alert.prediction("category").given is None  # not a label value: not shown as one
    # a ticket's fields are the reporter's guess, which triage is there to check
    ticket = services.assistant.triage(Event(source=EventSource.CLI, kind=EventKind.TICKET,
                                             text=text, labels={"priority": "P1"}))
    assert all(p.given is None for p in ticket.predictions)
    # ... shown beside the model's answer, which stays the answer
    priority = ticket.prediction("priority")
    assert priority.filed == "P1" and priority.given is None
    assert priority.filed_note() in ("as filed", "filed as P1")
    assert (priority.filed_note() == "as filed") == (priority.label == "P1")
    assert ticket.prediction("team").filed is None and ticket.prediction("team").filed_note() == ""
    assert Triage.from_dict(ticket.to_dict()).prediction("priority").filed == "P1"


def test_the_runbook_an_alert_names_is_the_one_shown(services) -> None:
    """An alert whose runbook_url names a runbook the bot has indexed gets that runbook,
    even when its text would have matched another one better (or none: a candidate set
    of a large corpus may not even hold it), and the answer says why."""
    text = "[warning] ReportBacklog: the nightly tenant report run for acme has not finished"
    plain = Event(source=EventSource.ALERTMANAGER, kind=EventKind.ALERT, text=text,
                  labels={"alertname": "ReportBacklog"})
    without = services.assistant.triage(plain).runbooks
    assert not without or not without[0].document_path.endswith("high-cpu-throttling.md")
    named = Event(source=EventSource.ALERTMANAGER, kind=EventKind.ALERT, text=text,
                  labels={"alertname": "ReportBacklog"},
                  links={"runbook": "https://runbooks.example.com/infra/high-cpu-throttling"})
    (top, *_) = services.assistant.triage(named).runbooks
    assert top.document_path.endswith("infra/high-cpu-throttling.md"), top.document_path
    assert top.reasons[0] == "the alert's runbook_url points here"


def test_a_runbook_about_something_else_is_not_shown(services) -> None:
    """Known incidents but no runbook on the topic: the nearest runbook is still first in the
    search, but it is no answer, and neither its Meaning nor its Mitigation may become the
    event's likely cause or steps. A runbook on the topic is still shown."""
    triage = services.assistant.triage(_event("quasar ledger nightly export hangs at 99%"))
    assert not triage.novel and triage.similar[0].external_id in {"DUP-1", "DUP-2"}
    assert triage.runbooks == ()
    cited = [e.kind for item in (*triage.hypotheses, *triage.steps) for e in item.evidence]
    assert cited and "runbook" not in cited  # the incidents' cause and fix remain
    on_topic = services.assistant.triage(_event(WAL))
    assert on_topic.runbooks[0].document_path == "database/postgres-wal-volume-full.md"


def test_an_untitled_incident_is_named_by_its_description(services) -> None:
    from knowledge.records import Record

    services.knowledge.import_records([Record(
        id="NOTITLE-1", source="incident", title="",
        description="The hyperion tape robot dropped cartridges during the weekly vault "
                    "rotation because its gripper calibration drifted after a firmware update.",
    )], kind="incident", source_name="tests")
    triage = services.assistant.triage(_event("hyperion tape robot dropped cartridges"))
    item = next(s for s in triage.similar if s.external_id == "NOTITLE-1")
    assert item.title.startswith("The hyperion tape robot dropped cartridges")
    assert item.title.endswith("…") and len(item.title) <= 101  # cut at a word
    assert not any(r.endswith("()") for r in item.reasons), item.reasons


# An alert named like the WAL runbook, titled like INC-2009: both get the name boost, so their
# fused rank scores exceed 1 (0.6 on top of the ranks).
NAMED_WAL = dict(text=WAL, title="Disk full on /var/lib/postgresql on db-01, postgres PANIC",
                 labels={"alertname": "PostgresWalVolumeFull"})


def _rendered(triage: Triage) -> tuple[str, str]:
    """The answer as people read it: Slack (the answer and its "More details") and terminal."""
    from rich.console import Console

    from bot.render_text import render_triage as render_cli
    from bot.slack.blocks import render_details, render_triage

    slack = json.dumps([render(triage, 7)[1] for render in (render_triage, render_details)],
                       ensure_ascii=False)
    console = Console(record=True, width=400, color_system=None)
    render_cli(console, triage)
    return slack, console.export_text()


def _fused_shown(score: float, *texts: str) -> bool:
    """Whether a rank score is shown as before: "(1.29)" in Slack, "[1.29]" in the terminal."""
    return any(f"({score:.2f})" in t or f"[{score:.2f}]" in t for t in texts)


def test_similar_incidents_and_runbooks_show_their_cosine_not_the_fused_score(services) -> None:
    """The fused rank score (ranks + name and title boosts) exceeds 1: "(1.29)" after a
    runbook read as 129% similar (10 of 42 audited answers). People see the cosine of the
    item's best passage, the figure its "semantic similarity" reason gives; the rank score
    still orders the list and stays in the answer's JSON."""
    from bot.knowledge_base import INCIDENTS, RUNBOOKS

    event = Event(source=EventSource.ALERTMANAGER, kind=EventKind.ALERT, **NAMED_WAL)
    triage = services.assistant.triage(event)
    top, runbook = triage.similar[0], triage.runbooks[0]
    assert top.external_id == "INC-2009"
    assert runbook.document_path == "database/postgres-wal-volume-full.md"
    assert top.score > 1 and runbook.score > 1, (top.score, runbook.score)  # the case at hand

    # the shown value is the search hit's cosine (searched again here, as triage does)
    vector = services.embedder.encode_one(WAL)
    names = (event.alertname, event.title)
    cosine = {}
    for index in (INCIDENTS, RUNBOOKS):
        for hit in services.knowledge.search(index, WAL, vector, k=15, names=names,
                                             explain=False):
            cosine.setdefault(hit.doc_key.split(":", 1)[-1], hit.dense)
    for item, key in ((top, top.external_id), (runbook, runbook.document_path)):
        assert 0 < item.similarity <= 1
        assert item.similarity == pytest.approx(cosine[key], abs=1e-4)

    slack, terminal = _rendered(triage)
    for item in (top, runbook):
        shown = f"(similarity {item.similarity:.2f})"
        assert shown in slack and shown in terminal, shown
        assert not _fused_shown(item.score, slack, terminal), item.score
    # every number shown beside an item is a similarity of at most 1
    for text in (slack, terminal):
        values = [float(v) for v in re.findall(r"\(similarity (\d+\.\d+)\)", text)]
        assert len(values) >= 2 and all(v <= 1 for v in values), values
    # --json keeps the rank score and adds the similarity, on evidence too
    data = json.loads(json.dumps(triage.to_dict()))
    assert data["similar"][0]["score"] == top.score > 1
    assert data["similar"][0]["similarity"] == top.similarity
    assert data["runbooks"][0]["similarity"] == runbook.similarity
    cited = {e["ref"]: e for h in data["hypotheses"] for e in h["evidence"]}
    assert cited["INC-2009"]["similarity"] == top.similarity
    assert Triage.from_dict(data) == triage


def test_an_answer_stored_before_similarity_renders_without_the_fused_score(services) -> None:
    """A "More" click on an answer stored by an older release: its items have no
    similarity, only the fused rank score. It renders, with no number rather than a wrong one
    (min(score, 1) would show 1.00 for any item ranked up by its name)."""
    event = Event(source=EventSource.ALERTMANAGER, kind=EventKind.ALERT, **NAMED_WAL)
    stored = json.loads(json.dumps(services.assistant.triage(event).to_dict()))
    for item in [*stored["similar"], *stored["runbooks"],
                 *[e for key in ("hypotheses", "steps") for x in stored[key]
                   for e in x["evidence"]]]:
        item.pop("similarity", None)  # absent before this release
    old = Triage.from_dict(stored)
    assert old.similar and old.runbooks and old.runbooks[0].score > 1
    assert all(s.similarity is None for s in (*old.similar, *old.runbooks))

    slack, terminal = _rendered(old)
    for text in (slack, terminal):
        assert "INC-2009" in text and "Disk full on /var/lib/postgresql" in text
        assert "postgres-wal-volume-full" in text
        assert "(similarity" not in text
    for item in (*old.similar, *old.runbooks):
        assert not _fused_shown(item.score, slack, terminal), item.score
