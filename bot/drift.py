"""Drift check: are recent events still like the data the models were trained on?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import EventRecord, Feedback, TriageAnswer
from classifiers.drift import embedding_shift, label_mix_shift

MAX_REFERENCE = 2000
MAX_RECENT = 500


def check_drift(services: Any, *, days: int = 7, target: str = "category") -> dict[str, Any]:
    """Embedding shift and predicted-label mix of the last ``days`` vs the training data,
    and the accuracy that feedback reports over the same window."""
    since = datetime.now(UTC) - timedelta(days=days)
    texts, _labels = services.classifiers.training_data(target)
    with session_scope(services.sessions) as session:
        recent = list(
            session.scalars(
                select(EventRecord.text)
                .where(EventRecord.received_at >= since)
                .order_by(EventRecord.id.desc())
                .limit(MAX_RECENT)
            )
        )
        answers = session.scalar(
            select(TriageAnswer.id).where(TriageAnswer.created_at >= since).limit(1)
        )
        feedback = [f for f in repo.list_feedback(session=session, since=since)]
        corrections = sum(1 for f in feedback if f.kind == "correction" and f.field == target)
        judged = sum(1 for f in feedback if f.kind in {"helpful", "not_helpful", "correction"})
        _ = answers, Feedback
    report: dict[str, Any] = {
        "window_days": days,
        "recent_events": len(recent),
        "reference_texts": len(texts),
    }
    if len(recent) < 20 or len(texts) < 20:
        report.update(
            should_retrain=False, reason="not enough recent events or training data to judge drift"
        )
        return report
    rng = np.random.default_rng(0)
    reference = [texts[i] for i in rng.permutation(len(texts))[:MAX_REFERENCE]]
    ref_emb = services.embedder.encode(reference)
    rec_emb = services.embedder.encode(recent)
    shift = embedding_shift(ref_emb, rec_emb)
    model = services.classifiers.active.get(target)
    mix = None
    if model is not None:
        ref_pred = [p.label or "unsure" for p in model.model.predict(reference, ref_emb)]
        rec_pred = [p.label or "unsure" for p in model.model.predict(recent, rec_emb)]
        mix = label_mix_shift(ref_pred, rec_pred)
    feedback_accuracy = 1 - corrections / judged if judged else None
    report.update(_judge(shift, mix, feedback_accuracy, judged))
    return report


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    for attr in ("score", "statistic", "value", "distance"):
        if hasattr(value, attr):
            return float(getattr(value, attr))
    return float(value)


def _judge(shift: Any, mix: Any, feedback_accuracy: float | None, judged: int) -> dict[str, Any]:
    reasons = []
    shift_value = _as_float(shift)
    mix_value = _as_float(mix)
    drifted = bool(getattr(shift, "drifted", False)) or (shift_value or 0) > 0.1
    if drifted:
        reasons.append(f"recent events moved away from the training data (shift {shift_value:.3f})")
    if mix_value is not None and mix_value > 0.1:
        reasons.append(f"predicted category mix changed (JS {mix_value:.3f})")
    if feedback_accuracy is not None and judged >= 20 and feedback_accuracy < 0.8:
        reasons.append(f"feedback accuracy {feedback_accuracy:.0%} over {judged} judgments")
    return {
        "embedding_shift": shift_value,
        "label_mix_shift": mix_value,
        "feedback_accuracy": feedback_accuracy,
        "feedback_judgments": judged,
        "should_retrain": bool(reasons),
        "reason": "; ".join(reasons) or "no drift detected",
    }
