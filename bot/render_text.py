"""Rendering a triage answer or search hits in the terminal (Rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from bot.triage_types import LabelPrediction, Triage, similarity_note


def _short(text: str, limit: int = 240) -> str:
    """One line of at most ``limit`` characters, escaped for Rich: stored text is printed as
    written ("[pod priority](https://...)" lost its label to Rich's markup before)."""
    text = " ".join(text.split())
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def prediction_evidence(p: LabelPrediction) -> str:
    """One line: the terms that weighed most and the closest labelled example."""
    parts = []
    if p.top_terms:
        parts.append("because of: " + ", ".join(p.top_terms[:4]))
    if p.examples:
        ref, label, similarity = p.examples[0]
        parts.append(f"like {_short(ref, 80)} ({label}, {similarity:.2f})")
    return "; ".join(parts)


def render_links(console: Console, links: dict[str, str], kind: str) -> None:
    """The event's own pages, one per line ("Runbook: https://..."); nothing if none."""
    from bot.intake.links import link_label

    for key, url in links.items():
        console.print(f"[dim]{link_label(key, kind)}:[/dim] {escape(url)}", soft_wrap=True)


def render_triage(console: Console, result: Triage) -> None:
    console.print(f"[bold]Triage[/bold] ({result.elapsed_ms:.0f} ms)")
    for p in result.predictions:
        if p.given is not None:  # the source's own word first
            console.print(f"  {p.field}: [bold]{escape(p.given)}[/bold] "
                          f"({escape(p.given_note())})")
            continue
        if p.unsure:
            alts = ", ".join(f"{escape(label)} {prob:.0%}" for label, prob in p.candidates[:3])
            why = "; ".join(x for x in (p.why_unsure(), p.filed_note()) if x)
            why = f" - {escape(why)}" if why else ""
            console.print(f"  {p.field}: [yellow]unsure[/yellow] ({alts}){why}")
        else:
            filed = f"; {escape(p.filed_note())}" if p.filed else ""
            console.print(f"  {p.field}: [bold]{escape(p.label or '')}[/bold] "
                          f"({p.confidence:.0%}{filed})")
        if why := prediction_evidence(p):
            console.print(f"      [dim]{escape(why)}[/dim]")
    if result.novel:
        console.print(
            "[yellow]Nothing like this has been seen before; the items below are weak leads.[/]"
        )
    console.print(f"\n[bold]{result.similar_heading()}[/bold]")
    if not result.similar:
        console.print("  none")
    for s in result.similar[:5]:
        console.print(f"  {escape(s.external_id)} {_short(s.title, 300)}"
                      + similarity_note(s.similarity))
        if s.root_cause:
            console.print(f"      root cause: {_short(s.root_cause)}")
        if s.resolution:
            console.print(f"      fix: {_short(s.resolution)}")
        if s.reasons:
            console.print(f"      why: {escape('; '.join(s.reasons))}")
    console.print("\n[bold]Runbook[/bold]")
    if not result.runbooks:
        console.print("  none")
    for r in result.runbooks[:1]:
        console.print(f"  {escape(r.document_title)} > {escape(r.section)}  "
                      f"({escape(r.document_path)}){similarity_note(r.similarity)}")
        if r.url:
            console.print(f"  {escape(r.url)}", soft_wrap=True)
        console.print("  " + _short(r.text, 600))
    if result.hypotheses:
        console.print("\n[bold]Possible root causes[/bold]")
        for h in result.hypotheses[:5]:
            refs = escape(", ".join(e.ref for e in h.evidence[:3]))
            console.print(f"  {h.confidence:.0%} {_short(h.text)}  [dim]({refs})[/dim]")
    if result.steps:
        console.print("\n[bold]Suggested steps[/bold]")
        for i, s in enumerate(result.steps[:8], 1):
            refs = escape(", ".join(e.ref for e in s.evidence[:2]))
            console.print(f"  {i}. {_short(s.text, 400)}  [dim]({refs})[/dim]")


def render_hits(console: Console, hits: list[dict[str, Any]]) -> None:
    if not hits:
        console.print("no results")
    for hit in hits:
        # the best passage's cosine, as in Slack's /similar; the fused rank score (the order)
        # exceeds 1 and is no similarity
        dense = hit.get("dense")
        console.print(f"{hit['kind']:8} {escape(str(hit['title']))}  ({escape(str(hit['ref']))})"
                      + similarity_note(None if dense is None else float(dense)))
        if hit.get("section"):
            console.print(f"         section: {escape(str(hit['section']))}")
