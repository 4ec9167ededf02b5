"""Retrieval learns from feedback: relevance judgments re-rank results for similar queries.

Every "helpful" / "not helpful" click on an answer becomes a judgment on the items that
answer showed first: helpful confirms the top runbook and the top similar incident; not
helpful demotes the item the reason points at (``wrong_runbook`` -> the runbook,
``irrelevant_incidents`` -> the incidents; other reasons say nothing about retrieval).
A later query whose embedding is close to a judged query (cosine >= ``min_similarity``, 0.95 by
default: the same alert with other label values) gets the judged documents moved up or down,
in proportion to how far above the threshold it is. The threshold is measured: on the
prometheus-operator alerts, 0.8 let confirmations on one alert leak into neighbouring alerts
(-21 points of hit@1 on queries without feedback), 0.9 still cost 7 points and 0.95 cost 2.
Confirmations ("helpful") therefore need a near-repeat (0.98: no two different alerts of that
set are that close) while rejections act from 0.95 (10 repeats of the same alert, 2-3 pairs of
different alerts are that close).

Judgments are read from the feedback and answers tables (the source of truth); the query
embeddings are computed once per answer and cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.store.db import session_scope
from bot.store.models import Feedback, TriageAnswer
from knowledge.search import DocumentHit

RUNBOOKS = "runbooks"
INCIDENTS = "incidents"
TARGETS_BY_REASON = {
    "wrong_runbook": (RUNBOOKS,),
    "irrelevant_incidents": (INCIDENTS,),
}


@dataclass(frozen=True)
class Judgment:
    index: str
    doc_key: str
    value: float  # +1 confirmed helpful, -1 rejected


def judgments_from_feedback(kind: str, reason: str, answer: dict[str, Any]) -> list[Judgment]:
    """The relevance judgments one feedback click on one answer stands for."""
    if kind == "helpful":
        value, indexes = 1.0, (RUNBOOKS, INCIDENTS)
    elif kind == "not_helpful" and reason in TARGETS_BY_REASON:
        value, indexes = -1.0, TARGETS_BY_REASON[reason]
    else:
        return []
    out = []
    if RUNBOOKS in indexes and answer.get("runbooks"):
        top = answer["runbooks"][0]
        out.append(Judgment(RUNBOOKS, f"{top.get('source', '')}:{top['document_path']}", value))
    if INCIDENTS in indexes and answer.get("similar"):
        for item in answer["similar"][: 1 if value > 0 else 3]:
            out.append(Judgment(INCIDENTS, f"{item['kind']}:{item['external_id']}", value))
    return out


class RelevanceMemory:
    """Judged (query, document) pairs, used to re-rank search hits for similar queries."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        embedder: Any,
        *,
        min_similarity: float = 0.95,
        min_similarity_positive: float = 0.98,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self.min_similarity = min_similarity
        self.min_similarity_positive = min_similarity_positive
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._last_feedback_id = 0
        self._checked_at = 0.0
        self._vectors: dict[int, np.ndarray] = {}  # answer id -> query embedding
        self._items: list[tuple[int, Judgment]] = []  # (answer id, judgment)
        # Per index: the judgments and their query vectors stacked once per refresh, so a
        # search costs one matrix-vector product instead of rebuilding the matrix.
        self._stacked: dict[str, tuple[list[Judgment], np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def refresh(self, *, force: bool = False) -> None:
        """Read feedback recorded since the last call (at most every ``refresh_seconds``)."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.refresh_seconds:
            return
        with self._lock:
            self._checked_at = now
            with session_scope(self._sessions) as session:
                rows = session.execute(
                    select(
                        Feedback.id,
                        Feedback.kind,
                        Feedback.reason,
                        TriageAnswer.id,
                        TriageAnswer.query,
                        TriageAnswer.answer,
                    )
                    .join(TriageAnswer, TriageAnswer.id == Feedback.answer_id)
                    .where(Feedback.id > self._last_feedback_id)
                    .where(Feedback.kind.in_(("helpful", "not_helpful")))
                    .order_by(Feedback.id)
                ).all()
            if not rows:
                return
            new_queries = {
                aid: query for _, _, _, aid, query, _ in rows if aid not in self._vectors and query
            }
            if new_queries:
                ids = list(new_queries)
                vectors = self._embedder.encode([new_queries[i] for i in ids])
                self._vectors.update(zip(ids, vectors, strict=True))
            for feedback_id, kind, reason, answer_id, _query, answer in rows:
                for judgment in judgments_from_feedback(kind, reason or "", answer or {}):
                    if answer_id in self._vectors:
                        self._items.append((answer_id, judgment))
                self._last_feedback_id = max(self._last_feedback_id, feedback_id)
            self._stacked = {}

    def _judgments(self, index: str) -> tuple[list[Judgment], np.ndarray] | None:
        with self._lock:
            if index not in self._stacked:
                items = [(aid, j) for aid, j in self._items if j.index == index]
                if not items:
                    return None
                vectors = np.vstack([self._vectors[aid] for aid, _ in items])
                self._stacked[index] = ([j for _, j in items], vectors)
            return self._stacked[index]

    def adjustments(self, index: str, query_vector: np.ndarray) -> dict[str, float]:
        """doc_key -> summed (similarity-weighted) judgment for queries close to this one."""
        stacked = self._judgments(index)
        if stacked is None:
            return {}
        judgments, matrix = stacked
        sims = matrix @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        out: dict[str, float] = {}
        for judgment, sim in zip(judgments, sims, strict=True):
            floor = self.min_similarity_positive if judgment.value > 0 else self.min_similarity
            if sim >= floor:
                # 0 at the threshold, 1 for the same query: only near-repeats move results.
                weight = (float(sim) - floor) / (1.0 - floor + 1e-9)
                out[judgment.doc_key] = out.get(judgment.doc_key, 0.0) + weight * judgment.value
        return out

    def rerank(
        self, index: str, query_vector: np.ndarray, hits: Sequence[DocumentHit], k: int
    ) -> list[DocumentHit]:
        """Move judged documents up or down; unjudged queries keep their order exactly."""
        self.refresh()
        adjust = self.adjustments(index, query_vector) if hits else {}
        if not adjust:
            return list(hits[:k])
        scores = [h.score for h in hits]
        spread = (max(scores) - min(scores)) or max(abs(max(scores)), 1e-6)
        out = []
        for hit in hits:
            delta = adjust.get(hit.doc_key, 0.0)
            if delta:
                label = "confirmed helpful" if delta > 0 else "marked not helpful"
                hit = replace(
                    hit,
                    score=hit.score + delta * spread,
                    reasons=(*hit.reasons, f"{label} for a similar query"),
                )
            out.append(hit)
        out.sort(key=lambda h: -h.score)
        return out[:k]
