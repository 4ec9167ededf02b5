"""Result types of a triage answer, shared by the assistant, the renderers and storage.

They are plain frozen dataclasses with ``to_dict`` so that the CLI (``--json``), the
Slack renderer and the audit log all show exactly the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class LabelPrediction:
    """One classifier's answer for one field (category, severity, team ...).

    ``label`` is ``None`` when the model is unsure (confidence below its abstention
    threshold); ``candidates`` then lists the top alternatives with probabilities.
    """

    field: str
    label: str | None
    confidence: float
    candidates: tuple[tuple[str, float], ...] = ()
    model_version: str = ""
    top_terms: tuple[str, ...] = ()
    # the closest labelled training examples: (what it is, its label, cosine similarity)
    examples: tuple[tuple[str, str, float], ...] = ()
    # the confidence from which the model answers (> 1: it never does yet); None: unknown
    threshold: float | None = None
    # the value an alert's own labels give this field (its rule's ``severity``, ``team``):
    # shown first, as the rule author's word; the model's answer stays beside it (and in
    # the audit) for feedback and drift. See bot.assistant.with_given_labels.
    given: str | None = None
    given_by: str = ""  # what carried it ("alert")
    # the value a ticket was filed with (its reporter's priority or category): shown beside
    # the model's answer, which triage is there to check; never replaces it
    filed: str | None = None

    @property
    def unsure(self) -> bool:
        return self.label is None

    def given_note(self) -> str:
        """Where a given value came from, and the model's answer when it confidently
        differs: "from the alert; model: warning 93%"."""
        note = f"from the {self.given_by or 'source'}"
        if not self.unsure and (self.label or "").lower() != (self.given or "").lower():
            note += f"; model: {self.label} {round(self.confidence * 100)}%"
        return note

    def filed_note(self) -> str:
        """"filed as P1" beside the model's answer; "as filed" when they agree; "" when the
        ticket came without a value for this field."""
        if not self.filed:
            return ""
        if not self.unsure and (self.label or "").lower() == self.filed.lower():
            return "as filed"
        return f"filed as {self.filed}"

    def why_unsure(self) -> str:
        """Why there is no answer, in a few words ("" when it answered or nobody knows):
        a 98% top candidate is puzzling unless one also sees that the model needs 99%."""
        if not self.unsure or self.threshold is None:
            return ""
        if self.threshold > 1.0:
            # no confidence level reached the target precision on held-out labelled rows
            # (a zero-shot model without labels, or a trained one that is not there yet)
            return "not precise enough on the labelled examples yet; more labels help"
        return f"answers from {math.ceil(self.threshold * 100)}% confidence"


@dataclass(frozen=True)
class SimilarIncident:
    """A resolved incident or ticket that resembles the event."""

    incident_id: int
    external_id: str
    kind: str  # "incident" | "ticket" | "alert"
    title: str
    score: float
    root_cause: str = ""
    resolution: str = ""
    category: str = ""
    service: str = ""
    resolved_by: str = ""
    resolved_at: str = ""
    url: str = ""
    reasons: tuple[str, ...] = ()
    duplicates: int = 0  # near-duplicates collapsed into this one
    # cosine of its best passage to the event, the number shown to people; ``score`` is the
    # fused rank score (orders the list, weighs the evidence) and may exceed 1. None in
    # answers stored before it existed: see :func:`similarity_note`.
    similarity: float | None = None


@dataclass(frozen=True)
class RunbookMatch:
    """The runbook section that best matches the event."""

    chunk_id: int
    document_path: str
    document_title: str
    section: str  # heading path joined with " > "
    text: str
    score: float
    source: str = ""
    url: str = ""
    reasons: tuple[str, ...] = ()
    # the cosine of the runbook's best-matching section, as in SimilarIncident (also when a
    # Diagnosis is shown in place of the Meaning that matched: it says how close the runbook is)
    similarity: float | None = None


@dataclass(frozen=True)
class Evidence:
    """What a hypothesis or step rests on: an incident or a runbook section."""

    kind: str  # "incident" | "runbook"
    ref: str  # external id of the incident, or "path#section"
    title: str
    score: float  # the cited item's fused rank score, not a similarity
    similarity: float | None = None  # the cited item's cosine, as in SimilarIncident


@dataclass(frozen=True)
class Hypothesis:
    """A suggested root cause with its confidence and evidence."""

    text: str
    confidence: float
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Step:
    """A suggested remediation step (commands kept verbatim) with its evidence."""

    text: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Triage:
    """The whole answer for one event."""

    query: str
    predictions: tuple[LabelPrediction, ...] = ()
    similar: tuple[SimilarIncident, ...] = ()
    runbooks: tuple[RunbookMatch, ...] = ()
    hypotheses: tuple[Hypothesis, ...] = ()
    steps: tuple[Step, ...] = ()
    novel: bool = False
    novelty_score: float = 0.0  # best similarity seen; low means nothing close
    model_versions: dict[str, str] = field(default_factory=dict)
    index_version: str = ""
    elapsed_ms: float = 0.0

    def prediction(self, field_name: str) -> LabelPrediction | None:
        return next((p for p in self.predictions if p.field == field_name), None)

    def similar_heading(self) -> str:
        """Heading of the similar items: solved tickets for a help desk, incidents for on-call."""
        kinds = {s.kind for s in self.similar}
        if kinds == {"ticket"}:
            return "Similar solved tickets"
        if "ticket" in kinds:
            return "Similar past incidents and tickets"
        return "Similar past incidents"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Triage:
        """The inverse of :meth:`to_dict`, after a JSON round trip (a stored answer)."""

        def evidence(items: Any) -> tuple[Evidence, ...]:
            return tuple(Evidence(**known(Evidence, e)) for e in items or ())

        return cls(
            query=str(data.get("query", "")),
            predictions=tuple(
                LabelPrediction(
                    field=p["field"],
                    label=p.get("label"),
                    confidence=float(p.get("confidence", 0.0)),
                    candidates=tuple((str(c), float(s)) for c, s in p.get("candidates") or ()),
                    model_version=p.get("model_version", ""),
                    top_terms=tuple(p.get("top_terms") or ()),
                    examples=tuple((str(r), str(lab), float(s))
                                   for r, lab, s in p.get("examples") or ()),
                    threshold=(float(p["threshold"]) if p.get("threshold") is not None
                               else None),
                    given=p.get("given"),
                    given_by=str(p.get("given_by") or ""),
                    filed=p.get("filed"),
                )
                for p in data.get("predictions") or ()
            ),
            similar=tuple(
                SimilarIncident(**{**known(SimilarIncident, s),
                                   "reasons": tuple(s.get("reasons") or ())})
                for s in data.get("similar") or ()
            ),
            runbooks=tuple(
                RunbookMatch(**{**known(RunbookMatch, r),
                                "reasons": tuple(r.get("reasons") or ())})
                for r in data.get("runbooks") or ()
            ),
            hypotheses=tuple(
                Hypothesis(h["text"], float(h.get("confidence", 0)), evidence(h.get("evidence")))
                for h in data.get("hypotheses") or ()
            ),
            steps=tuple(
                Step(s["text"], evidence(s.get("evidence"))) for s in data.get("steps") or ()
            ),
            novel=bool(data.get("novel", False)),
            novelty_score=float(data.get("novelty_score", 0.0)),
            model_versions=dict(data.get("model_versions") or {}),
            index_version=str(data.get("index_version", "")),
            elapsed_ms=float(data.get("elapsed_ms", 0.0)),
        )


def similarity_note(similarity: float | None) -> str:
    """" (similarity 0.83)" after a similar incident's or runbook's title, in Slack and in the
    terminal alike: the cosine of its best passage, never the fused rank score (it exceeds 1
    and was read as "120% similar"). "" for an answer stored before items carried it: its
    only number is that rank score, and min(score, 1) would still be no similarity (a weak
    match ranked first by name and keywords would show as 1.00). No number beats a wrong one."""
    return "" if similarity is None else f" (similarity {similarity:.2f})"


def known(kind: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a stored item that ``kind`` has a field for. During a rolling update an
    older replica renders answers a newer one stored (a "More" click, a correction): a key
    added since must not make it fail."""
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}
