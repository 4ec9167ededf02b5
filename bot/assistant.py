"""The triage pipeline: classify, retrieve, suggest, flag novelty. No Slack, no SQL here.

``triage(event)`` embeds the text once and reuses the vector for the classifiers, the
incident search and the runbook search. Used by the CLI, Slack and webhooks alike.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from itertools import zip_longest
from typing import Any

from bot.classification import INCIDENT_REF, TAXONOMY_REF
from bot.events import RECORD_KINDS, Event, EventKind
from bot.intake.links import runbook_names
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
from knowledge.search import DocumentHit, HybridIndex
from knowledge.suggest import (
    extract_steps,
    jaccard,
    key_terms,
    merge_similar_causes,
    without_html,
)
from knowledge.text import normalize_name, tokenize

Visibility = Callable[[str], bool]

CAUSE_SECTIONS = ("meaning", "diagnosis", "cause", "symptom", "overview")
FIX_SECTIONS = ("mitigation", "remediation", "resolution", "fix", "solution", "steps", "workaround")
# A best-matching section that only says what the alert means or breaks (its Meaning is quoted
# as the likely cause already) gives way to the runbook's Diagnosis: what to check next.
ABOUT_SECTIONS = ("meaning", "impact", "overview", "summary", "description", "symptom")
CHECK_SECTIONS = ("diagnos", "investigat", "troubleshoot", "debug")
# A novel answer's hypotheses rest on weak leads: their confidence is scaled down.
NOVEL_CONFIDENCE_FACTOR = 0.5
MAX_STEPS = 12
INCIDENT_STEPS_FROM = 3  # resolutions of the best few similar incidents become steps
# Words that are everyday English in a ticket rather than evidence of the same problem.
_GENERIC = """
    able again ago always another anything around back bad big change changed come day days
    dear every everyone fine first fix fixed get getting give go going good got happen
    happened happening help hello hi hour hours issue issues keep keeps know last let like
    little long look looks lot make many minute minutes month morning much need needed new
    next night now number often ok one people please problem problems quick really regards
    right say see seem seems since something start started still stop sure take team thank
    thanks thing things think time times today tomorrow tried try trying two use used user
    users using want week weeks work worked working works yesterday year
    var lib usr etc tmp opt home dev srv
"""
GENERIC_WORDS = frozenset(_GENERIC.split())
# Above this share of documents a shared word explains nothing (needs a corpus of some size).
COMMON_SHARE = 0.08
COMMON_MIN_DOCS = 40
# A runbook is shown (and its Meaning / Mitigation become causes and steps) only when it is
# about the event: the alert names it (alertname, runbook_url), or its best section is close
# in meaning (cosine >= RUNBOOK_MIN_COSINE), or fairly close and sharing a telling word
# (>= RUNBOOK_MIN_COSINE_WITH_TERMS). Without it every help-desk ticket ("unable to change
# password") was answered with the nearest Kubernetes runbook and its steps. Measured in
# docs/evaluation.md ("Runbook relevance in the answer"): every correctly retrieved
# prometheus-operator alert keeps its runbook, 39 of 40 of our sample paraphrases.
RUNBOOK_MIN_COSINE = 0.45
RUNBOOK_MIN_COSINE_WITH_TERMS = 0.35
CACHE_SIZE = 2048


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
        self._cache_lock = threading.Lock()
        self._incident_cache: _VersionedCache = _VersionedCache(CACHE_SIZE)
        self._section_cache: _VersionedCache = _VersionedCache(256)

    # --- novelty ----------------------------------------------------------------------

    @property
    def novelty_threshold(self) -> float:
        if self.novelty_override is not None:
            return self.novelty_override
        return self.knowledge.novelty_threshold()

    def warm_up(self) -> None:
        """Build what the first query would otherwise pay for: BM25 structures of both
        indexes, the novelty threshold and the runbooks' web addresses. Call after loading
        (and after bulk imports)."""
        for index in self.knowledge.indexes.values():
            index.warm_up()
        _ = self.novelty_threshold
        self.knowledge.runbook_link("")  # one query, then a lookup per answer
        # The first torch inference and classifier call are slow: pay for them now.
        vector = self.embedder.encode_one("warm up: disk full on db-01")
        self.classifiers.predict("warm up: disk full on db-01", vector)

    # --- the pipeline -------------------------------------------------------------------

    def triage(
        self,
        event: Event,
        *,
        visibility: Visibility | None = None,
        timings: dict[str, float] | None = None,
    ) -> Triage:
        """The whole answer for one event. ``timings`` (optional) receives milliseconds per
        stage: embed, classify, search_incidents, search_runbooks, lookups, suggest."""
        started = time.perf_counter()
        clock = _Clock(timings)
        text = event.text[: self.max_text_chars]
        vector = self.embedder.encode_one(text)
        clock.lap("embed")
        # the runbook the alert names (runbook_url) is a candidate whatever it scores
        named_runbooks = runbook_names(event.links.get("runbook", ""))
        names = tuple(n for n in (event.alertname, event.title) if n)
        predictions = visible_examples(
            self.classifiers.predict(text, vector, kind=str(event.kind)),
            self.knowledge.index(INCIDENTS), visibility)
        if event.kind == EventKind.ALERT:  # a rule's labels are its author's word
            predictions = with_given_labels(predictions, event.labels, "alert")
        elif event.kind in RECORD_KINDS:
            predictions = with_filed_labels(predictions, event.labels)
        clock.lap("classify")
        # explain=False: the answer states its own shared terms; the index's keyword
        # reasons would be computed per hit and thrown away
        incident_hits = self.knowledge.search(
            INCIDENTS, text, vector, k=self.similar_k * 3, visibility=visibility, names=names,
            explain=False,
        )
        clock.lap("search_incidents")
        runbook_hits = self.knowledge.search(
            RUNBOOKS, text, vector, k=3, visibility=visibility, names=names + named_runbooks,
            explain=False,
        )
        clock.lap("search_runbooks")
        # Novelty: the closest thing retrieved at all (best cosine among the hits).
        best = max([h.dense for h in [*incident_hits, *runbook_hits]], default=0.0)
        novel = best < self.novelty_threshold
        runbook_hits = [h for h in runbook_hits if self._runbook_is_relevant(text, h)]
        views = self._incident_views(h.best.id for h in incident_hits)
        sections = self._sections(runbook_hits[0].best.id) if runbook_hits else []
        clock.lap("lookups")
        similar = self._similar_incidents(text, event, incident_hits, views, novel)
        runbooks = self._runbooks(text, runbook_hits, novel, named_runbooks)
        if runbooks and sections:
            runbooks[0] = _with_section_to_check(runbooks[0], sections)
        shown = similar[: self.similar_k]
        hypotheses = self._hypotheses(shown, runbooks, runbook_hits, sections, novel)
        steps = self._steps(shown, runbooks, sections)
        clock.lap("suggest")
        return Triage(
            query=text,
            predictions=tuple(predictions),
            similar=tuple(shown),
            runbooks=tuple(runbooks),
            hypotheses=tuple(hypotheses),
            steps=tuple(steps),
            novel=novel,
            novelty_score=round(float(best), 4),
            model_versions=self.classifiers.active_versions(),
            index_version=self.knowledge.version,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def search(
        self,
        text: str,
        *,
        kind: str | None = None,
        k: int = 5,
        visibility: Callable[[str], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Plain hybrid search for the CLI and `/similar` / `/runbook`.

        ``visibility`` (a predicate over item visibility strings) is applied inside the index,
        before the top ``k`` is taken, so hidden items never crowd out visible ones.
        """
        vector = self.embedder.encode_one(text[: self.max_text_chars])
        runbooks: list[dict[str, Any]] = []
        incidents: list[dict[str, Any]] = []
        if kind in (None, "runbook"):
            runbooks = [_hit_dict(hit, "runbook") for hit in self.knowledge.search(
                RUNBOOKS, text, vector, k=k, visibility=visibility)]
        if kind != "runbook":
            hits = self.knowledge.search(INCIDENTS, text, vector, k=k,
                                         kinds=[kind] if kind else None, visibility=visibility)
            views = self._incident_views(h.best.id for h in hits)
            incidents = [_hit_dict(hit, hit.best.kind) for hit in hits]
            for row, hit in zip(incidents, hits, strict=True):
                view = views.get(hit.best.id)
                if view is not None:  # what was found and done: why a past case helps
                    row["root_cause"], row["resolution"] = view.root_cause, view.resolution
        if kind is not None:
            return runbooks if kind == "runbook" else incidents
        # The two indexes fuse their signals differently, so their scores do not compare
        # (sorting by them let five runbooks hide the incident that matched): take turns.
        turns = (hit for pair in zip_longest(runbooks, incidents) for hit in pair if hit)
        return list(turns)[:k]

    # --- database lookups (cached per index version) ----------------------------------------

    def _incident_views(self, ids: Iterable[int]) -> dict[int, IncidentView]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        version = self._index_version(INCIDENTS)
        with self._cache_lock:
            found, missing = self._incident_cache.get_many(version, wanted)
        if missing:
            loaded = self.knowledge.incidents(missing)
            with self._cache_lock:
                self._incident_cache.put_many(version, loaded)
            found.update(loaded)
        return found

    def _sections(self, chunk_id: int) -> list[SectionView]:
        version = self._index_version(RUNBOOKS)
        with self._cache_lock:
            found, _ = self._section_cache.get_many(version, [chunk_id])
        if chunk_id in found:
            return found[chunk_id]
        _, sections = self.knowledge.document_sections(chunk_id)
        with self._cache_lock:
            self._section_cache.put_many(version, {chunk_id: sections})
        return sections

    def _index_version(self, name: str) -> str:
        index = self.knowledge.indexes.get(name)
        return index.version if index is not None else ""

    # --- explanations ---------------------------------------------------------------------

    def _telling_terms(self, name: str, query: str, text: str, limit: int = 5) -> list[str]:
        """Query words shared with ``text`` that say something: not everyday ticket words and
        (in a corpus of some size) not found in a large share of the documents; rarest first."""
        words = [w for w in key_terms(query, text, limit=30) if w not in GENERIC_WORDS]
        if not words:
            return []
        stems = {w: (tokenize(w) or [w])[0] for w in words}
        index = self.knowledge.indexes.get(name)
        if index is None:
            return words[:limit]
        share = index.document_frequency(set(stems.values()))
        if index.size >= COMMON_MIN_DOCS:
            words = [w for w in words if share.get(stems[w], 0.0) <= COMMON_SHARE]
        words.sort(key=lambda w: share.get(stems[w], 0.0))  # stable: query order on ties
        return words[:limit]

    # --- similar incidents ----------------------------------------------------------------

    def _similar_incidents(
        self,
        text: str,
        event: Event,
        hits: Sequence[DocumentHit],
        views: dict[int, IncidentView],
        novel: bool,
    ) -> list[SimilarIncident]:
        """Relevance first (rounded to 2 decimals so near-ties fall to the tie-breakers), then
        a documented fix, then recency; near-duplicates collapse into the best of them."""
        ranked: list[tuple[tuple[float, int, float], SimilarIncident]] = []
        seen: dict[str, int] = {}
        for hit in hits:
            view = views.get(hit.best.id)
            if view is None:
                continue
            key = _dedup_key(view)
            if key in seen:
                sort_key, previous = ranked[seen[key]]
                ranked[seen[key]] = (
                    sort_key, replace(previous, duplicates=previous.duplicates + 1)
                )
                continue
            reasons = self._incident_reasons(text, event, view, hit)
            if novel:
                reasons.insert(0, "weak lead: nothing close to this event is known")
            item = SimilarIncident(
                incident_id=view.id,
                external_id=view.external_id,
                kind=view.kind,
                title=_title_of(view),
                score=round(float(hit.score), 4),
                similarity=round(float(hit.dense), 4),
                root_cause=view.root_cause,
                resolution=view.resolution,
                category=view.category,
                service=view.service,
                resolved_by=view.resolved_by,
                resolved_at=view.occurred_at,
                url=view.url,
                reasons=tuple(reasons),
            )
            sort_key = (-round(hit.score, 2), 0 if view.resolution else 1, _neg_time(view))
            seen[key] = len(ranked)
            ranked.append((sort_key, item))
        ranked.sort(key=lambda pair: pair[0])
        return [item for _, item in ranked]

    def _incident_reasons(
        self, text: str, event: Event, view: IncidentView, hit: DocumentHit
    ) -> list[str]:
        reasons = [r for r in hit.reasons if not r.startswith("keywords")]
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
            pairs = ", ".join(f"{k}={v}" for k, v in list(shared.items())[:3])
            reasons.append(f"same labels: {pairs}")
        terms = self._telling_terms(INCIDENTS, text, f"{view.title}\n{view.description}")
        if terms:
            reasons.append("shares terms: " + ", ".join(terms))
        return reasons

    # --- runbooks -------------------------------------------------------------------------

    def _runbook_is_relevant(self, text: str, hit: DocumentHit) -> bool:
        """Whether a runbook hit is about the event (see RUNBOOK_MIN_COSINE): the best of
        several unrelated runbooks is still first, but it is no answer."""
        if hit.named or hit.dense >= RUNBOOK_MIN_COSINE:
            return True
        if hit.dense < RUNBOOK_MIN_COSINE_WITH_TERMS:
            return False
        passage = hit.best
        return bool(self._telling_terms(RUNBOOKS, text, f"{passage.title}\n{passage.text}"))

    def _runbooks(
        self, text: str, hits: Sequence[DocumentHit], novel: bool, named: Sequence[str] = ()
    ) -> list[RunbookMatch]:
        matches: list[RunbookMatch] = []
        named_keys = {normalize_name(n) for n in named}
        for hit in hits:
            passage = hit.best
            reasons = [r for r in hit.reasons if not r.startswith("keywords")]
            if named_keys & {normalize_name(n) for n in passage.names}:
                reasons.insert(0, "the alert's runbook_url points here")
            terms = self._telling_terms(RUNBOOKS, text, f"{passage.title}\n{passage.text}")
            if terms:
                reasons.append("shares terms: " + ", ".join(terms))
            if novel:
                reasons.insert(0, "weak lead: nothing close to this event is known")
            matches.append(
                RunbookMatch(
                    chunk_id=passage.id,
                    document_path=passage.doc_key.split(":", 1)[-1],
                    document_title=passage.title,
                    section=passage.section,
                    text=without_html(passage.text).strip(),
                    score=round(float(hit.score), 4),
                    similarity=round(float(hit.dense), 4),
                    source=passage.source,
                    url=self.knowledge.runbook_link(passage.doc_key),
                    reasons=tuple(reasons),
                )
            )
        return matches

    # --- suggestions ------------------------------------------------------------------------

    def _hypotheses(
        self,
        similar: Sequence[SimilarIncident],
        runbooks: Sequence[RunbookMatch],
        runbook_hits: Sequence[DocumentHit],
        sections: Sequence[SectionView],
        novel: bool,
    ) -> list[Hypothesis]:
        """Root causes of the similar incidents, merged when they say the same thing, plus the
        best runbook's Meaning/Diagnosis. Confidence = the share of all retrieved evidence
        (incidents weighted by their fused rank score, the runbook by its cosine; incidents
        without a recorded cause included) that backs the hypothesis; halved when the event
        is novel."""
        causes: list[tuple[str, float, Evidence]] = []
        total = 0.0
        for item in similar:
            weight = max(item.score, 0.0)
            total += weight
            if item.root_cause:
                evidence = Evidence("incident", item.external_id, item.title, item.score,
                                    item.similarity)
                causes.append((item.root_cause, weight, evidence))
        if runbooks and sections:
            top = runbooks[0]
            weight = max(float(runbook_hits[0].dense), 0.0)
            for section in _sections_named(sections, CAUSE_SECTIONS)[:1]:
                summary = _first_sentences(section.text, 2)
                if summary:
                    total += weight
                    ref = f"{top.document_path}#{_heading(section)}"
                    evidence = Evidence("runbook", ref, top.document_title, top.score,
                                        top.similarity)
                    causes.append((summary, weight, evidence))
        if not causes or total <= 0:
            return []
        merged = merge_similar_causes(causes, threshold=0.35)
        factor = NOVEL_CONFIDENCE_FACTOR if novel else 1.0
        weight_of = {id(ev): w for _, w, ev in causes}
        scored = [(m, sum(weight_of[id(ev)] for ev in m.refs)) for m in merged]
        scored.sort(key=lambda pair: -pair[1])
        return [
            Hypothesis(
                text=m.text,
                confidence=round(min(1.0, support / total) * factor, 3),
                evidence=tuple(m.refs),
            )
            for m, support in scored[:5]
        ]

    def _steps(
        self,
        similar: Sequence[SimilarIncident],
        runbooks: Sequence[RunbookMatch],
        sections: Sequence[SectionView],
    ) -> list[Step]:
        """The best runbook's mitigation steps in its own order (lists and commands intact),
        then the fixes of the most similar incidents; a step said twice is kept once with
        both citations."""
        steps: list[tuple[str, list[Evidence]]] = []

        def add(text: str, evidence: Evidence) -> None:
            text = text.strip()
            if not text:
                return
            for existing, cited in steps:
                if _same_step(existing, text):
                    if evidence not in cited:
                        cited.append(evidence)
                    return
            steps.append((text, [evidence]))

        if runbooks and sections:
            top = runbooks[0]
            fix_sections, level = _fix_sections(sections)
            for section in fix_sections:
                ref = f"{top.document_path}#{' > '.join(section.heading_path[level:])}"
                evidence = Evidence("runbook", ref, top.document_title, top.score,
                                    top.similarity)
                for step in extract_steps(section.text):
                    add(step, evidence)
        with_fix = [item for item in similar if item.resolution.strip()]
        for item in with_fix[:INCIDENT_STEPS_FROM]:
            add(item.resolution, Evidence("incident", item.external_id, item.title, item.score,
                                          item.similarity))
        return [Step(text=t, evidence=tuple(ev)) for t, ev in steps[:MAX_STEPS]]


# --- helpers ----------------------------------------------------------------------------------


def visible_examples(predictions: Sequence[LabelPrediction], incidents: HybridIndex,
                     visibility: Visibility | None) -> list[LabelPrediction]:
    """Each prediction's nearest labelled examples as "INC-2003: title", keeping only the
    incidents this channel may see (a private incident must not leak through a label's
    evidence) and that still exist; a zero-shot label's description as "the taxonomy's
    label: description". A reference of any other form is skipped."""
    out = []
    for p in predictions:
        shown = []
        for ref, label, similarity in p.examples:
            if ref.startswith(TAXONOMY_REF):
                shown.append((f"the taxonomy's {ref.removeprefix(TAXONOMY_REF)}", label,
                              similarity))
                continue
            row_id = ref.removeprefix(INCIDENT_REF)
            passage = incidents.get(int(row_id)) if row_id.isdigit() and row_id != ref else None
            if passage is None or (visibility is not None and not visibility(passage.visibility)):
                continue
            name = passage.doc_key.split(":", 1)[-1]
            shown.append((f"{name}: {passage.title or passage.text}", label, similarity))
        out.append(replace(p, examples=tuple(shown)))
    return out


GIVEN_MAX_CHARS = 60  # a label value is a word or two; longer is not shown as one


def with_given_labels(predictions: Sequence[LabelPrediction], labels: dict[str, str],
                      given_by: str) -> list[LabelPrediction]:
    """Each prediction with the value the event carries for its field, if any (an alert
    rule's ``severity`` or ``team`` label; keys compared without case): the source's own
    word comes first in the answer, the model's stays beside it. Only for alerts: a
    ticket's category is the reporter's guess, which triage is there to check."""
    return [replace(p, given=value, given_by=given_by) if value else p
            for p, value in _field_values(predictions, labels)]


def with_filed_labels(predictions: Sequence[LabelPrediction],
                      labels: dict[str, str]) -> list[LabelPrediction]:
    """Each prediction with the value the ticket was filed with for its field, if any: the
    agent sees the reporter's priority beside the model's, which stays the answer."""
    return [replace(p, filed=value) if value else p
            for p, value in _field_values(predictions, labels)]


def _field_values(predictions: Sequence[LabelPrediction],
                  labels: dict[str, str]) -> list[tuple[LabelPrediction, str]]:
    """Each prediction with the event's label of the same field (keys compared without
    case; "" when there is none, or it is too long to be a label value)."""
    by_key = {k.strip().lower(): " ".join(str(v).split()) for k, v in labels.items()}
    out = []
    for p in predictions:
        value = by_key.get(p.field.lower(), "")
        out.append((p, value if len(value) <= GIVEN_MAX_CHARS else ""))
    return out


def _hit_dict(hit: DocumentHit, kind: str) -> dict[str, Any]:
    p = hit.best
    return {
        "kind": kind,
        "ref": p.doc_key,
        "id": p.id,
        "title": p.title,
        "section": p.section,
        "excerpt": " ".join(p.text.split())[:300],
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


TITLE_FROM_TEXT_CHARS = 100


def _title_of(view: IncidentView) -> str:
    """The record's title, or (a record imported without one) the start of its description
    cut at a word: an untitled postmortem was listed as its id and a blank."""
    if view.title.strip():
        return view.title
    text = " ".join(view.description.split())
    if len(text) <= TITLE_FROM_TEXT_CHARS:
        return text
    cut = text[:TITLE_FROM_TEXT_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def _neg_time(view: IncidentView) -> float:
    if not view.occurred_at:
        return 0.0
    try:
        return -datetime.fromisoformat(view.occurred_at).timestamp()
    except ValueError:
        return 0.0


def _heading(section: SectionView) -> str:
    return section.heading_path[-1] if section.heading_path else ""


def _sections_named(sections: Sequence[SectionView], names: Sequence[str]) -> list[SectionView]:
    """Sections (below the title) whose own heading names one of ``names`` as a word, in the
    order of ``names``."""
    found: list[SectionView] = []
    for name in names:
        pattern = re.compile(rf"\b{re.escape(name)}", re.IGNORECASE)
        for section in sections:
            named = len(section.heading_path) > 1 and pattern.search(_heading(section))
            if named and section not in found:
                found.append(section)
    return found


def _with_section_to_check(match: RunbookMatch, sections: Sequence[SectionView]) -> RunbookMatch:
    """``match`` showing its runbook's first Diagnosis-like section (with text) instead of the
    best-matching one when that one is a Meaning / Impact: the Meaning is quoted as the likely
    cause beside it (the same text twice) and neither says what to do. Without one, the best
    match if it is not the quoted Meaning, else another section about the alert (Impact)."""
    heading = match.section.split(" > ")[-1] if match.section else ""
    if not any(re.search(rf"\b{name}", heading, re.IGNORECASE) for name in ABOUT_SECTIONS):
        return match
    quoted = _sections_named(sections, CAUSE_SECTIONS)[:1]
    is_quoted = bool(quoted) and " > ".join(quoted[0].heading_path[1:]) == match.section

    def named(section: SectionView, names: Sequence[str]) -> bool:
        return any(re.search(rf"\b{name}", h, re.IGNORECASE)
                   for h in section.heading_path[1:] for name in names)

    others = [s for s in sections if s.text.strip() and s not in quoted]
    # what to check next; else (the best one is the quoted cause) what else it says about it
    instead = [s for s in others if named(s, CHECK_SECTIONS)] or (
        [s for s in others if named(s, ABOUT_SECTIONS)] if is_quoted else [])
    if not instead:
        return match
    section = instead[0]
    return replace(match, chunk_id=section.chunk_id, section=" > ".join(section.heading_path[1:]),
                   text=without_html(section.text).strip())


def _fix_sections(sections: Sequence[SectionView]) -> tuple[list[SectionView], int]:
    """The first mitigation-like section and its sub-sections, in document order, and the
    position of that heading in their paths. The heading may sit at any level: a "Mitigation"
    with no text of its own is only the parent of its sub-sections."""
    for name in FIX_SECTIONS:
        pattern = re.compile(rf"\b{re.escape(name)}", re.IGNORECASE)
        for section in sections:
            for depth, heading in enumerate(section.heading_path[1:], start=2):
                if pattern.search(heading):
                    root = section.heading_path[:depth]
                    found = [s for s in sections if s.heading_path[:depth] == root]
                    return found, depth - 1
    return [], 0


def _step_key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _same_step(a: str, b: str) -> bool:
    """The same instruction: equal once punctuation is ignored, or mostly the same words."""
    if _step_key(a) == _step_key(b):
        return True
    return jaccard(a, b) >= 0.8


class _Clock:
    """Fills ``timings`` with the milliseconds since the previous lap (no-op without it)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + (now - self.last) * 1000
        self.last = now


class _VersionedCache:
    """A small LRU of database lookups, emptied whenever the index version changes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.version = ""
        self.items: OrderedDict[int, Any] = OrderedDict()

    def get_many(self, version: str, keys: Sequence[int]) -> tuple[dict[int, Any], list[int]]:
        if version != self.version:
            self.version = version
            self.items.clear()
        found, missing = {}, []
        for key in keys:
            if key in self.items:
                self.items.move_to_end(key)
                found[key] = self.items[key]
            else:
                missing.append(key)
        return found, missing

    def put_many(self, version: str, values: dict[int, Any]) -> None:
        if version != self.version:
            return
        for key, value in values.items():
            self.items[key] = value
            self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def _first_sentences(text: str, n: int) -> str:
    body = re.sub(r"```.*?```", " ", without_html(text), flags=re.DOTALL)
    body = re.sub(r"^#+ .*$", " ", body, flags=re.MULTILINE)
    body = " ".join(body.split())
    sentences = re.split(r"(?<=[.!?])\s+", body)
    return " ".join(sentences[:n]).strip()


__all__ = ["Assistant", "LabelPrediction"]
