"""The triage pipeline: classify, retrieve, suggest, flag novelty. No Slack, no SQL here.

``triage(event)`` embeds the text once and reuses the vector for the classifiers, the
incident search and the runbook search. Used by the CLI, Slack and webhooks alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.events import Event
from bot.knowledge_base import INCIDENTS, RUNBOOKS, IncidentView, KnowledgeBase, SectionView
from bot.triage_types import (
    Evidence,
    Hypothesis,
    LabelPrediction,
    RunbookMatch,
    SimilarIncident,
    Step,
    Triage,
)
from knowledge.search import DocumentHit
from knowledge.suggest import extract_steps, key_terms, merge_similar_causes

Visibility = Callable[[str], bool]

CAUSE_SECTIONS = ("meaning", "diagnosis", "cause", "symptom", "overview")
FIX_SECTIONS = ("mitigation", "remediation", "resolution", "fix", "solution", "steps", "workaround")


class Assistant:
    """Answers "what is this, has it happened before, what do I do now?"."""

    def __init__(
        self,
        *,
        embedder: Any,
        knowledge: KnowledgeBase,
        classifiers: Any,
        novelty_threshold: float | None = None,
        max_text_chars: int = 4000,
        similar_k: int = 5,
    ) -> None:
        self.embedder = embedder
        self.knowledge = knowledge
        self.classifiers = classifiers
        self.novelty_override = novelty_threshold
        self.max_text_chars = max_text_chars
        self.similar_k = similar_k

    # --- novelty ----------------------------------------------------------------------

    @property
    def novelty_threshold(self) -> float:
        if self.novelty_override is not None:
            return self.novelty_override
        return self.knowledge.novelty_threshold()

    # --- the pipeline -------------------------------------------------------------------

    def triage(self, event: Event, *, visibility: Visibility | None = None) -> Triage:
        started = time.perf_counter()
        text = event.text[: self.max_text_chars]
        vector = self.embedder.encode_one(text)
        names = tuple(n for n in (event.alertname, event.title) if n)
        predictions = self.classifiers.predict(text, vector, kind=str(event.kind))
        incident_hits = self.knowledge.search(
            INCIDENTS, text, vector, k=self.similar_k * 3, visibility=visibility, names=names
        )
        runbook_hits = self.knowledge.search(
            RUNBOOKS, text, vector, k=3, visibility=visibility, names=names
        )
        similar = self._similar_incidents(text, event, incident_hits)
        runbooks, sections = self._runbooks(text, runbook_hits)
        best = max([h.dense for h in incident_hits[:1] + runbook_hits[:1]], default=0.0)
        novel = best < self.novelty_threshold
        hypotheses = self._hypotheses(similar, runbooks, sections)
        steps = self._steps(similar, runbooks, sections)
        return Triage(
            query=text,
            predictions=tuple(predictions),
            similar=tuple(similar[: self.similar_k]),
            runbooks=tuple(runbooks),
            hypotheses=tuple(hypotheses),
            steps=tuple(steps),
            novel=novel,
            novelty_score=round(float(best), 4),
            model_versions=self.classifiers.active_versions(),
            index_version=self.knowledge.version,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def search(self, text: str, *, kind: str | None = None, k: int = 5) -> list[dict[str, Any]]:
        """Plain hybrid search for the CLI and `/similar` / `/runbook`."""
        vector = self.embedder.encode_one(text[: self.max_text_chars])
        results: list[dict[str, Any]] = []
        if kind in (None, "runbook"):
            for hit in self.knowledge.search(RUNBOOKS, text, vector, k=k):
                results.append(_hit_dict(hit, "runbook"))
        if kind != "runbook":
            kinds = [kind] if kind else None
            for hit in self.knowledge.search(INCIDENTS, text, vector, k=k, kinds=kinds):
                results.append(_hit_dict(hit, hit.best.kind))
        results.sort(key=lambda h: -h["score"])
        return results[:k] if kind is None else results

    # --- similar incidents ----------------------------------------------------------------

    def _similar_incidents(
        self, text: str, event: Event, hits: Sequence[DocumentHit]
    ) -> list[SimilarIncident]:
        views = self.knowledge.incidents(h.best.id for h in hits)
        ranked: list[tuple[tuple[float, int, str], SimilarIncident]] = []
        seen: dict[str, int] = {}
        for hit in hits:
            view = views.get(hit.best.id)
            if view is None:
                continue
            key = _dedup_key(view)
            if key in seen:
                previous = ranked[seen[key]][1]
                ranked[seen[key]] = (
                    ranked[seen[key]][0],
                    _replace(previous, duplicates=previous.duplicates + 1),
                )
                continue
            item = SimilarIncident(
                incident_id=view.id,
                external_id=view.external_id,
                kind=view.kind,
                title=view.title,
                score=round(float(hit.score), 4),
                root_cause=view.root_cause,
                resolution=view.resolution,
                category=view.category,
                service=view.service,
                resolved_by=view.resolved_by,
                resolved_at=view.occurred_at,
                url=view.url,
                reasons=tuple(_reasons(text, event, view, hit)),
            )
            # Relevance first (rounded so near-ties fall to the tie-breakers), then a
            # documented fix, then recency.
            sort_key = (-round(hit.score, 2), 0 if view.resolution else 1, _neg_time(view))
            seen[key] = len(ranked)
            ranked.append((sort_key, item))
        ranked.sort(key=lambda pair: pair[0])
        return [item for _, item in ranked]

    # --- runbooks -------------------------------------------------------------------------

    def _runbooks(
        self, text: str, hits: Sequence[DocumentHit]
    ) -> tuple[list[RunbookMatch], list[SectionView]]:
        matches: list[RunbookMatch] = []
        best_sections: list[SectionView] = []
        for rank, hit in enumerate(hits):
            passage = hit.best
            doc_path = passage.doc_key.split(":", 1)[-1]
            matches.append(
                RunbookMatch(
                    chunk_id=passage.id,
                    document_path=doc_path,
                    document_title=passage.title,
                    section=passage.section,
                    text=passage.text,
                    score=round(float(hit.score), 4),
                    source=passage.source,
                    reasons=tuple(hit.reasons)
                    + tuple(
                        f"shares terms: {', '.join(t)}"
                        for t in [key_terms(text, passage.text)[:5]]
                        if t
                    ),
                )
            )
            if rank == 0:
                _, best_sections = self.knowledge.document_sections(passage.id)
        return matches, best_sections

    # --- suggestions ------------------------------------------------------------------------

    def _hypotheses(
        self,
        similar: Sequence[SimilarIncident],
        runbooks: Sequence[RunbookMatch],
        sections: Sequence[SectionView],
    ) -> list[Hypothesis]:
        causes: list[tuple[str, float, Evidence]] = []
        for item in similar:
            if item.root_cause:
                evidence = Evidence("incident", item.external_id, item.title, item.score)
                causes.append((item.root_cause, max(item.score, 0.0), evidence))
        if runbooks and sections:
            top = runbooks[0]
            for section in _sections_named(sections, CAUSE_SECTIONS)[:1]:
                summary = _first_sentences(section.text, 2)
                if summary:
                    evidence = Evidence(
                        "runbook",
                        f"{top.document_path}#{_heading(section)}",
                        top.document_title,
                        top.score,
                    )
                    causes.append((summary, max(top.score, 0.0) * 0.8, evidence))
        if not causes:
            return []
        merged = merge_similar_causes(causes)
        # Support of a hypothesis: the summed relevance of everything that backs it.
        support = [
            sum(score for text, score, ref in causes if ref in m.refs) for m in merged
        ]
        total = sum(support) or 1.0
        ranked = sorted(zip(merged, support, strict=True), key=lambda pair: -pair[1])
        return [
            Hypothesis(text=m.text, confidence=round(s / total, 3), evidence=tuple(m.refs))
            for m, s in ranked[:5]
        ]

    def _steps(
        self,
        similar: Sequence[SimilarIncident],
        runbooks: Sequence[RunbookMatch],
        sections: Sequence[SectionView],
    ) -> list[Step]:
        steps: list[Step] = []
        seen: set[str] = set()

        def add(text: str, evidence: Evidence) -> None:
            key = re.sub(r"\W+", " ", text.lower()).strip()
            if key and key not in seen:
                seen.add(key)
                steps.append(Step(text=text, evidence=(evidence,)))

        if runbooks and sections:
            top = runbooks[0]
            for section in _sections_named(sections, FIX_SECTIONS)[:1]:
                evidence = Evidence(
                    "runbook",
                    f"{top.document_path}#{_heading(section)}",
                    top.document_title,
                    top.score,
                )
                for step in extract_steps(section.text):
                    add(step, evidence)
        for item in similar[:3]:
            if item.resolution:
                add(
                    item.resolution.strip(),
                    Evidence("incident", item.external_id, item.title, item.score),
                )
        return steps[:10]


# --- helpers ----------------------------------------------------------------------------------


def _hit_dict(hit: DocumentHit, kind: str) -> dict[str, Any]:
    p = hit.best
    return {
        "kind": kind,
        "ref": p.doc_key,
        "id": p.id,
        "title": p.title,
        "section": p.section,
        "score": round(float(hit.score), 4),
        "dense": round(float(hit.dense), 4),
        "lexical": round(float(hit.lexical), 4),
        "reasons": list(hit.reasons),
    }


def _dedup_key(view: IncidentView) -> str:
    """Near-duplicates: same normalized title and same root cause."""
    title = re.sub(r"[\d_\-./:]+", " ", view.title.lower())
    title = " ".join(title.split())
    cause = " ".join(view.root_cause.lower().split())[:120]
    return f"{title}|{cause}"


def _replace(item: SimilarIncident, **changes: Any) -> SimilarIncident:
    from dataclasses import replace

    return replace(item, **changes)


def _neg_time(view: IncidentView) -> float:
    if not view.occurred_at:
        return 0.0
    try:
        return -datetime.fromisoformat(view.occurred_at).timestamp()
    except ValueError:
        return 0.0


def _reasons(text: str, event: Event, view: IncidentView, hit: DocumentHit) -> list[str]:
    reasons = list(hit.reasons)
    if event.service and view.service and event.service.lower() == view.service.lower():
        reasons.append(f"same service: {view.service}")
    alertname = event.alertname
    if alertname and alertname == view.labels.get("alertname"):
        reasons.append(f"same alert: {alertname}")
    shared = {
        k: v
        for k, v in event.labels.items()
        if k not in {"alertname", "severity"} and view.labels.get(k) == v
    }
    if shared:
        reasons.append("same labels: " + ", ".join(f"{k}={v}" for k, v in list(shared.items())[:3]))
    if not any(r.startswith("keywords") for r in reasons):
        terms = key_terms(text, f"{view.title} {view.description}")[:5]
        if terms:
            reasons.append("shares terms: " + ", ".join(terms))
    return reasons


def _heading(section: SectionView) -> str:
    return section.heading_path[-1] if section.heading_path else ""


def _sections_named(sections: Sequence[SectionView], names: Sequence[str]) -> list[SectionView]:
    """Sections whose own heading names one of ``names``, in the order of ``names``."""
    found = []
    for name in names:
        for section in sections:
            if name in _heading(section).lower() and section not in found:
                found.append(section)
    return found


def _first_sentences(text: str, n: int) -> str:
    body = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    body = re.sub(r"^#+ .*$", " ", body, flags=re.MULTILINE)
    body = " ".join(body.split())
    sentences = re.split(r"(?<=[.!?])\s+", body)
    return " ".join(sentences[:n]).strip()


__all__ = ["Assistant", "LabelPrediction"]
