"""The terminal answer prints stored text as written (Rich markup is not interpreted)."""

from __future__ import annotations

from rich.console import Console

from bot.render_text import render_hits, render_triage
from bot.triage_types import Evidence, Hypothesis, RunbookMatch, SimilarIncident, Step, Triage


def _printed(render, *args) -> str:
    console = Console(record=True, width=400, color_system=None)
    render(console, *args)
    return " ".join(console.export_text().split())


def test_bracketed_words_in_runbooks_and_incidents_are_printed_not_eaten() -> None:
    """Rich took "[pod priority and preemption]" (a Markdown link label) for a style tag and
    dropped it: "see (https://...)" was all that was left of the step."""
    ev = Evidence("runbook", "kubernetes/KubeCPUOvercommit.md#Mitigation", "Kube CPU", 0.9)
    triage = Triage(
        query="q",
        similar=(SimilarIncident(1, "INC-1", "incident", "[warn] disk [sda] full", 0.8,
                                 root_cause="[bold]no[/bold] rotation", resolution="[x] fixed",
                                 reasons=("shares terms: [sda]",)),),
        runbooks=(RunbookMatch(1, "a/b.md", "Disk [fill]", "Diagnosis [logs]",
                               "Check [the disk](https://example.org/disk) first.", 0.7),),
        hypotheses=(Hypothesis("Every write is [fsync'd][fsync] to disk.", 0.5, (ev,)),),
        steps=(Step("Use pod priorities, see [pod priority and preemption]"
                    "(https://kubernetes.io/docs/pod-priority/)", (ev,)),),
    )
    out = _printed(render_triage, triage)
    for shown in ("[warn] disk [sda] full", "[bold]no[/bold] rotation", "[x] fixed",
                  "shares terms: [sda]", "Disk [fill] > Diagnosis [logs]",
                  "Check [the disk](https://example.org/disk) first.",
                  "[fsync'd][fsync]", "see [pod priority and preemption]("):
        assert shown in out, shown
    hits = [{"score": 0.5, "kind": "runbook", "title": "[fill] disk", "ref": "r",
             "section": "[logs]"}]
    assert "[fill] disk" in _printed(render_hits, hits)
    assert "section: [logs]" in _printed(render_hits, hits)


def test_search_hits_show_the_cosine_not_the_fused_rank_score() -> None:
    """`triagebot search` printed "[1.288]", the fused rank score, which reads as 129%
    similar; it shows the best passage's cosine as `/similar` does in Slack."""
    hits = [{"score": 1.2885, "dense": 0.6776, "kind": "runbook", "title": "Postgres WAL",
             "ref": "runbook:database/postgres-wal-volume-full.md", "section": "Meaning"},
            {"score": 0.5, "kind": "incident", "title": "no cosine", "ref": "incident:X"}]
    out = _printed(render_hits, hits)
    assert "Postgres WAL (runbook:database/postgres-wal-volume-full.md) (similarity 0.68)" in out
    assert "1.28" not in out and "1.29" not in out
    assert "no cosine (incident:X)" in out and "0.500" not in out  # no number, not a wrong one
