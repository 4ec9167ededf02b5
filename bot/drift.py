"""Drift check: are recent events still like the data the models were trained on?

The statistics live in :mod:`classifiers.drift` (MMD permutation test on embeddings,
Jensen-Shannon on the predicted-label mix, rolling feedback accuracy); this module only
gathers the inputs from the database and the active model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import EventRecord
from classifiers.drift import drift_report

MAX_REFERENCE = 2000
MAX_RECENT = 500
MIN_SAMPLES = 20
DRIFT_REMINDER_HOURS = 24.0  # default of TRIAGEBOT_DRIFT_REMINDER_HOURS


def feedback_verdicts(feedback: Sequence[Any], target: str) -> list[bool]:
    """Per person and answer, in the order of their first click: was the answer's
    ``target`` label right?

    A correction of that field or "not helpful: wrong classification" says no; "helpful"
    says yes. Other clicks say nothing about the classifier. Someone who clicked several
    times on one answer (helpful, then a correction of this field; or two corrections)
    gives one verdict: no if any of their clicks says the label was wrong, since "helpful"
    judges the whole answer and the correction this field.
    """
    verdicts: dict[Any, bool] = {}
    for f in feedback:
        corrected = f.kind == "correction" and f.field == target
        if corrected or (f.kind == "not_helpful" and f.reason == "wrong_category"):
            verdict = False
        elif f.kind == "helpful":
            verdict = True
        else:
            continue
        key = (f.answer_id, f.user_id) if f.answer_id is not None else ("click", id(f))
        verdicts[key] = verdicts.get(key, True) and verdict
    return list(verdicts.values())


def answered_by(judged: Sequence[tuple[Any, dict[str, str]]], target: str,
                version: str | None) -> list[Any]:
    """The feedback (from ``list_feedback_with_versions``) on answers whose ``target`` label
    came from ``version`` (all of it when ``version`` is None): the corrections that led to a
    retrain must not keep judging the model that replaced the one they corrected."""
    return [f for f, versions in judged if version is None or versions.get(target) == version]


@dataclass(frozen=True)
class RecentWindow:
    """What happened in the window: event texts (newest first), their embeddings, feedback."""

    days: int
    texts: list[str]
    embeddings: np.ndarray | None  # None when there are too few events to judge
    feedback: list[tuple[Any, dict[str, str]]]  # each with the model versions it judges
    kinds: list[str] | None = None  # of each event ("alert", "ticket"...); None: unknown

    def for_target(self, target: str) -> RecentWindow:
        """The events a target is asked about: a ticket is given no severity and an alert
        no priority (``FIELDS_BY_KIND``), so hundreds of tickets must not make the severity
        model look drifted. A target no kind names (a custom field) sees every event."""
        from bot.classification import FIELDS_BY_KIND

        asked = {kind for kind, fields in FIELDS_BY_KIND.items() if target in fields}
        if self.kinds is None or not asked:
            return self
        keep = [i for i, kind in enumerate(self.kinds) if kind in asked]
        if len(keep) == len(self.texts):
            return self
        embeddings = None
        if self.embeddings is not None and len(keep) >= MIN_SAMPLES:
            embeddings = self.embeddings[keep]
        return replace(self, texts=[self.texts[i] for i in keep], embeddings=embeddings,
                       kinds=[self.kinds[i] for i in keep])


def recent_window(services: Any, days: int) -> RecentWindow:
    """The last ``days`` of events (at most ``MAX_RECENT``), embedded when enough to judge."""
    since = datetime.now(UTC) - timedelta(days=days)
    with session_scope(services.sessions) as session:
        rows = session.execute(
            select(EventRecord.text, EventRecord.kind)
            .where(EventRecord.received_at >= since)
            .order_by(EventRecord.id.desc())
            .limit(MAX_RECENT)
        ).all()
        feedback = repo.list_feedback_with_versions(session=session, since=since)
    texts, kinds = [text for text, _ in rows], [str(kind) for _, kind in rows]
    embeddings = services.embedder.encode(texts) if len(texts) >= MIN_SAMPLES else None
    return RecentWindow(days, texts, embeddings, feedback, kinds)


def check_drift(services: Any, *, days: int = 7, target: str = "category",
                window: RecentWindow | None = None) -> dict[str, Any]:
    """Recent events vs the training data of ``target``; says whether to retrain and why.

    ``window``: the recent events already read (``days`` is then not used), so that several
    targets are checked against one read and one embedding of them.
    """
    window = (window or recent_window(services, days)).for_target(target)
    texts, _labels = services.classifiers.training_data(target)
    model = services.classifiers.active.get(target)
    verdicts = feedback_verdicts(
        answered_by(window.feedback, target, model.version if model is not None else None),
        target)
    report: dict[str, Any] = {
        "target": target,
        "window_days": window.days,
        "recent_events": len(window.texts),
        "reference_texts": len(texts),
        "feedback_judgments": len(verdicts),  # on the active version's answers
        "model_version": model.version if model is not None else "",
    }
    # the embedding model or backend changed since the active version was trained
    other_embeddings = services.classifiers.retrain_needed.get(target, "")
    if window.embeddings is None or len(texts) < MIN_SAMPLES:
        report.update(
            should_retrain=bool(other_embeddings),
            finding=other_embeddings,
            fired=["embedding_model"] if other_embeddings else [],
            reason=other_embeddings or (
                f"not enough to judge drift: {len(window.texts)} recent events and "
                f"{len(texts)} training texts, {MIN_SAMPLES} of each needed"),
        )
        return report
    rng = np.random.default_rng(0)
    reference = [texts[i] for i in rng.permutation(len(texts))[:MAX_REFERENCE]]
    ref_emb = services.classifiers.embed(reference)  # training texts: mostly cached
    recent, rec_emb = window.texts, window.embeddings
    ref_pred = rec_pred = None
    if model is not None:
        ref_pred = [p.label or "unsure"
                    for p in model.model.predict(reference, ref_emb, explain=False)]
        rec_pred = [p.label or "unsure"
                    for p in model.model.predict(recent, rec_emb, explain=False)]
    baseline = model.metrics.get("accuracy") if model is not None else None
    result = drift_report(
        ref_emb,
        rec_emb,
        reference_labels=ref_pred,
        recent_labels=rec_pred,
        feedback_correct=verdicts or None,
        baseline_accuracy=baseline,
    )
    report.update(result.to_dict())
    report["fired"] = list(result.fired)
    # what was found, without the next step (the admin channel's message says that once)
    report["finding"] = result.reason if result.should_retrain else ""
    if result.should_retrain:
        report["reason"] = f"{result.reason}: {what_to_do(target, result.fired)}"
    if other_embeddings:
        also = report["reason"] if report["should_retrain"] else ""
        report.update(should_retrain=True, reason="; ".join(filter(None, [other_embeddings, also])),
                      finding="; ".join(filter(None, [other_embeddings, report["finding"]])),
                      fired=["embedding_model", *report["fired"]])
    return report


def what_to_do(targets: str | Sequence[str], fired: Sequence[str]) -> str:
    """The admin's next step for the checks that fired on ``targets`` (one or several). A
    retrain learns only from labels: when the events themselves changed, the new kind needs
    labels first, or the retrain fits the same model again."""
    names = [targets] if isinstance(targets, str) else list(targets)
    command = f"triagebot train --target {names[0]}" if len(names) == 1 else "triagebot train"
    train = f"retrain (`{command}`, or Retrain now on the App Home)"
    it, was, its = ("it", "was", "its") if len(names) == 1 else ("they", "were", "their")
    promoted = ("it is promoted only if it measures better" if len(names) == 1
                else "a new model is promoted only if it measures better")
    if "embedding" in fired or "labels" in fired:
        return (f"recent events are unlike what {it} {was} trained on: label some of them "
                "(correct the answers in Slack, record their root causes, or `triagebot import "
                f"incidents`), then {train}; {promoted}")
    return f"people corrected {its} answers: {train} to learn their corrections; {promoted}"


def drift_alert(reports: Sequence[Mapping[str, Any]],
                reminder_hours: float = DRIFT_REMINDER_HOURS) -> str:
    """One admin-channel message for the targets whose drift ``reports`` call for a retrain:
    each target with what was found, then the next step once per kind of finding (not
    repeated per target)."""
    lines = [":warning: *Drift check*: recent events no longer look like what "
             + ("this model was" if len(reports) == 1 else "these models were")
             + " trained on."]
    lines += [f"• *{r['target']}* (`{r.get('model_version') or 'no model'}`): "
              f"{r.get('finding') or r.get('reason', '')}" for r in reports]
    steps: dict[str, list[str]] = {}  # next step -> the targets it is for
    fired_of: dict[str, list[str]] = {}
    for r in reports:
        fired = [f for f in r.get("fired") or () if f != "embedding_model"]
        if not fired:  # another embedding model only: its finding says what to do
            continue
        kind = "events" if {"embedding", "labels"} & set(fired) else "feedback"
        steps.setdefault(kind, []).append(str(r["target"]))
        fired_of.setdefault(kind, fired)
    for kind, targets in steps.items():
        label = "" if len(steps) == 1 else f" ({', '.join(targets)})"
        lines.append(f"*Next step*{label}: {what_to_do(targets, fired_of[kind])}.")
    lines.append(f"_Not posted again while this stays the same; a reminder after "
                 f"{reminder_hours:g} hours if it lasts._")
    return "\n".join(lines)


def drift_signature(report: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a drift warning new: the model version judged and the checks that fired
    (not their figures, which move a little with every run)."""
    return {"model_version": str(report.get("model_version") or ""),
            "fired": sorted(str(f) for f in report.get("fired") or ())}


def check_drift_all(services: Any, *, days: int = 7,
                    targets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``check_drift`` for each target (default: every classifier target); the recent events
    are read and embedded once."""
    window = recent_window(services, days)
    return [check_drift(services, target=t, window=window)
            for t in (targets or services.classifiers.targets)]
