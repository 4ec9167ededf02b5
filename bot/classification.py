"""Classifier lifecycle in the bot: training data from the database, the model registry
(versions in the database, artifacts under the data folder), champion/challenger promotion,
roll back, and prediction with the active versions (zero-shot until enough labels exist).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import LABEL_COLUMNS, ModelVersion
from bot.triage_types import LabelPrediction
from classifiers.embcache import EmbeddingCache
from classifiers.errors import ClassifierError
from classifiers.evaluate import Decision, champion_challenger, evaluate, fingerprint
from classifiers.hierarchy import finer_field
from classifiers.labels import label_spellings
from classifiers.model import TextClassifier
from classifiers.persist import library_versions, load_model, save_model
from classifiers.zeroshot import ZeroShotClassifier, load_taxonomy, zero_shot_model
from knowledge.embed import base_model_name

log = logging.getLogger(__name__)

# Which fields an answer shows for each kind of event.
FIELDS_BY_KIND = {
    "alert": ("category", "severity", "team"),
    "incident": ("category", "severity", "team"),
    "ticket": ("category", "priority", "team"),
    "message": ("category", "severity", "priority", "team"),
}
HOLDOUT_SHARE = 0.2
NEAREST_EXAMPLES = 3  # labelled examples shown beside each prediction
ZERO_SHOT_CALIBRATION_ROWS = 2_000  # labelled examples a zero-shot threshold is chosen on
INCIDENT_REF = "incident:"  # + incidents.id: how a model refers to a labelled record
TAXONOMY_REF = "taxonomy:"  # + "label: description": a zero-shot model's evidence


class TrainingSkipped(ValueError):
    """A target was not trained; the message says why."""


class NotEnoughDataError(TrainingSkipped):
    """Too few labelled examples to train a supervised model."""


class UnchangedDataError(TrainingSkipped):
    """The active model was trained on exactly these rows with these library versions."""


class NotActiveError(ValueError):
    """A roll back "from" a version that is no longer the active one: done already (the
    second click of a double click) or replaced meanwhile; nothing was changed."""


@dataclass(frozen=True)
class TrainOutcome:
    target: str
    version: str
    promoted: bool
    reason: str
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    previous_version: str = ""


@dataclass
class LoadedModel:
    version: str
    kind: str  # "supervised" | "zero-shot"
    model: Any
    metrics: dict[str, Any] = field(default_factory=dict)


def embedding_of(embedder: Any) -> dict[str, str]:
    """Which embeddings a model trained now reads: recorded with each version (beside its
    library versions) and compared when a version is loaded or promoted."""
    return {"embedding_model": str(embedder.model_name), "embedding_dim": str(embedder.dim)}


def embedding_mismatch(built_with: dict[str, Any], model: Any, serving: dict[str, str]) -> str:
    """How a model's training embeddings differ from the ones this process makes:
    ``""`` the same (or not recorded: versions from before 2026-12-03, judged by their
    dimension alone); ``"backend"`` the same model run by another backend (torch vs
    onnx-int8: vectors within cosine ~0.99, so it still serves, a retrain is advised);
    ``"model"`` another model, whose vectors mean nothing to it: it must not serve."""
    dim = str(built_with.get("embedding_dim") or getattr(model, "n_features_in_", "") or "")
    if dim and dim != serving["embedding_dim"]:
        return "model"
    name = str(built_with.get("embedding_model") or "")
    if not name or name == serving["embedding_model"]:
        return ""
    same_model = base_model_name(name) == base_model_name(serving["embedding_model"])
    return "backend" if same_model else "model"


def mismatch_message(target: str, version: str, built_with: dict[str, Any],
                     serving: dict[str, str], kind: str, model: Any = None) -> str:
    """What an admin reads (log, `models drift`, a refused promotion) about a mismatch."""
    dim = built_with.get("embedding_dim") or getattr(model, "n_features_in_", "?")
    trained = built_with.get("embedding_model") or f"other ({dim}-dimension)"
    if kind == "backend":
        return (f"{version} was trained on {trained} embeddings and this install makes "
                f"{serving['embedding_model']}: close vectors, it still answers; retrain "
                f"(`triagebot train --target {target}`) to measure it on them")
    return (f"{version} was trained on {trained} embeddings, this install makes "
            f"{serving['embedding_model']} ({serving['embedding_dim']} dimensions): it cannot "
            f"answer on them; retrain (`triagebot train --target {target}`)")


def nearest_labelled(model: Any, vector: np.ndarray, label: str | None,
                     k: int = NEAREST_EXAMPLES) -> tuple[tuple[str, str, float], ...]:
    """(what it is, its label, cosine) of the ``k`` labelled training examples closest to
    ``vector`` that carry ``label`` (the evidence for it), among the 20 closest; the closest
    of any label when none does. Empty for a model without them (zero-shot, or saved before
    refs existed). A zero-shot model has no examples: its evidence is the description of
    ``label`` in the taxonomy (``taxonomy:`` + "label: description") and its cosine."""
    if isinstance(model, ZeroShotClassifier):
        if label not in model.label_descriptions:
            return ()
        column = list(model.label_descriptions).index(label)
        similarity = float(model.similarities(vector.reshape(1, -1))[0, column])
        return ((f"{TAXONOMY_REF}{model.label_descriptions[label]}", label,
                 round(similarity, 4)),)
    nearest = getattr(model, "nearest_examples", None)
    if nearest is None:
        return ()
    close = [n for n in nearest(vector, 20) if n.ref]
    same = [n for n in close if n.label == label]
    return tuple((n.ref, n.label, round(n.similarity, 4)) for n in (same or close)[:k])


def promotion_reason(decision: Decision, *, cold: bool, forced: bool,
                     champion_version: str) -> str:
    """Why a challenger was promoted or rejected, as its version and audit row record it.
    ``cold``: the champion is the zero-shot model; ``forced``: promoted whatever the figures."""
    if decision.promote:
        if not cold:
            return decision.reason
        return ("enough labels: replaces the zero-shot cold-start model "
                f"({decision.reason.removeprefix('promote: ')})")
    why = decision.reason.removeprefix("keep champion: ")
    kept = "the zero-shot cold-start model" if cold else f"the champion {champion_version}"
    if forced:
        return ("promoted because forced; the champion/challenger comparison alone would have "
                f"kept {kept}: {why}")
    if cold:
        return f"{kept} stays, it is still better on the held-out split: {why}"
    return decision.reason


def in_holdout(text: str, share: float = HOLDOUT_SHARE) -> bool:
    """A stable held-out split: the same text is always on the same side, across retrains."""
    digest = hashlib.sha256(text.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


class ClassifierService:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        embedder: Any,
        models_dir: Path,
        targets: Sequence[str],
        min_precision: float = 0.9,
        min_labels: int = 30,
        taxonomy_path: Path | None = None,
        min_accuracy_gain: float = 0.0,
        min_macro_f1_gain: float = 0.0,
        max_coverage_loss: float = 0.05,
    ) -> None:
        self._sessions = session_factory
        self.embedder = embedder
        self.models_dir = models_dir
        self.targets = tuple(targets)
        self.min_precision = min_precision
        self.min_labels = min_labels
        self.taxonomy_path = taxonomy_path
        self.min_accuracy_gain = min_accuracy_gain
        self.min_macro_f1_gain = min_macro_f1_gain
        self.max_coverage_loss = max_coverage_loss
        self.active: dict[str, LoadedModel] = {}
        # targets whose active version was trained on other embeddings than this process
        # makes (the embedding model or backend was changed): why, for the admin
        self.retrain_needed: dict[str, str] = {}
        # active versions in the database at the last load, broken artifacts included, so
        # that sync() does not reload every minute because one artifact cannot be read
        self._db_versions: dict[str, str] = {}
        self._labels_seen: tuple[Any, ...] = ()  # labels_signature at the last calibration
        self._lock = threading.RLock()

    # --- loading ----------------------------------------------------------------------

    def load(self) -> None:
        """Load the active version of every target; zero-shot where none is trained."""
        loaded: dict[str, LoadedModel] = {}
        with session_scope(self._sessions) as session:
            rows = {t: repo.get_active_model(session=session, target=t) for t in self.targets}
            rows = {t: (r.version, r.artifact_path, dict(r.metrics),
                        dict(r.library_versions or {})) for t, r in rows.items() if r}
        serving = embedding_of(self.embedder)
        retrain_needed: dict[str, str] = {}
        for target, (version, artifact, metrics, built_with) in rows.items():
            try:
                model, _card = load_model(Path(artifact))
            except Exception as exc:  # noqa: BLE001 - a broken artifact must not stop start-up
                log.error("cannot load model %s (%s); using zero-shot", version, exc)
                continue
            mismatch = embedding_mismatch(built_with, model, serving)
            if mismatch == "backend":
                with session_scope(self._sessions) as session:
                    if repo.kept_on_these_embeddings(session=session, target=target,
                                                     version=version,
                                                     embedding_model=serving["embedding_model"]):
                        mismatch = ""  # measured on these vectors already, and kept
            if mismatch:
                retrain_needed[target] = mismatch_message(target, version, built_with,
                                                          serving, mismatch, model)
                if mismatch == "model":  # the embedding model was changed since training
                    log.error("%s; zero-shot answers until then", retrain_needed[target])
                    continue
                log.warning("%s", retrain_needed[target])
            loaded[target] = LoadedModel(version, "supervised", model, metrics)
        missing = [t for t in self.targets if t not in loaded]
        signature = self._labels_signature()
        loaded.update(self._zero_shot_models(missing))
        with self._lock:
            self.active = loaded
            self.retrain_needed = retrain_needed
            self._db_versions = {t: version for t, (version, *_) in rows.items()}
            self._labels_seen = signature

    def _zero_shot_models(self, targets: list[str]) -> dict[str, LoadedModel]:
        """Zero-shot models from the taxonomy, only for ``targets`` (those without a model)."""
        if not targets or not self.taxonomy_path:
            return {}
        try:
            taxonomy = load_taxonomy(self.taxonomy_path)
        except ClassifierError as exc:
            log.error("%s; no zero-shot models", exc)
            return {}
        described = [t for t in targets if t in taxonomy]
        data = self.training_examples_of(described)
        models = {}
        for target in described:
            model = zero_shot_model(target, taxonomy[target], self.embedder.encode,
                                    min_precision=self.min_precision)
            metrics = self._calibrate_zero_shot(target, model, *data[target][:2])
            models[target] = LoadedModel(f"{target}-zero-shot", "zero-shot", model, metrics)
        return models

    def _calibrate_zero_shot(self, target: str, model: Any, texts: list[str],
                             labels: list[str]) -> dict[str, Any]:
        """Choose a zero-shot model's abstention threshold on the labels that exist so far
        (none: it stays always unsure, with its top candidates). Returns its figures on
        them (every label is held-out data for a zero-shot model), ``{}`` without labels."""
        # the newest labels, enough to measure a precision; a replica without the embedding
        # cache must not embed a whole ticket history at start for a fallback model
        texts, labels = texts[-ZERO_SHOT_CALIBRATION_ROWS:], labels[-ZERO_SHOT_CALIBRATION_ROWS:]
        if texts:
            model.calibrate(texts, self.embed(texts), labels)
        log.info("%s zero-shot: threshold %.3f from %d labelled examples", target,
                 min(model.threshold_, 1.0), len(texts))
        figures = dict(model.calibration_)
        n = int(figures.pop("n", 0))
        return {**figures, "measured_on": n} if n else {}

    def recalibrate_zero_shot(self) -> None:
        """Recalibrate the targets still on zero-shot (new labels arrived, too few to train).

        A copy is calibrated and then swapped in: a triage running meanwhile never sees a
        new temperature with an old threshold."""
        signature = self._labels_signature()
        with self._lock:
            cold = {t: m for t, m in self.active.items() if m.kind == "zero-shot"}
        data = self.training_examples_of(list(cold))
        for target, loaded in cold.items():
            model = copy.copy(loaded.model)
            metrics = self._calibrate_zero_shot(target, model, *data[target][:2])
            with self._lock:
                if self.active.get(target) is loaded:  # not replaced by a load meanwhile
                    self.active[target] = LoadedModel(loaded.version, loaded.kind, model,
                                                      metrics)
        self._labels_seen = signature

    def _labels_signature(self) -> tuple[Any, ...]:
        with session_scope(self._sessions) as session:
            return repo.labels_signature(session=session)

    def sync(self) -> bool:
        """Reload when the active versions in the database differ from the loaded ones
        (a promotion or rollback made by the CLI or another replica). True if reloaded.
        Otherwise recalibrate the zero-shot models when the labelled data changed."""
        with session_scope(self._sessions) as session:
            in_db = {
                t: row.version
                for t in self.targets
                if (row := repo.get_active_model(session=session, target=t)) is not None
            }
        with self._lock:
            unchanged = in_db == self._db_versions
            cold = any(m.kind == "zero-shot" for m in self.active.values())
        if not unchanged:
            self.load()
            return True
        # labels imported by the CLI or another replica, still too few to train on: the
        # zero-shot threshold is chosen again on them
        if cold and self._labels_signature() != self._labels_seen:
            self.recalibrate_zero_shot()
        return False

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings through the on-disk cache: a retrain embeds only texts new since the
        last one. The cache folder is per embedding model (and text cut), so a model change
        never reuses stale vectors; an unreadable cache is bypassed, not fatal."""
        model_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(self.embedder.model_name))[-80:]
        folder = self.models_dir / "embcache" / f"{model_id}-{self.embedder.dim}-" \
            f"{getattr(self.embedder, 'max_chars', 0)}"
        try:
            cache = EmbeddingCache(folder, dim=self.embedder.dim)
        except (ClassifierError, OSError, ValueError) as exc:
            log.warning("embedding cache %s unusable (%s); embedding without it", folder, exc)
            return self.embedder.encode(texts)
        vectors = cache.get_or_compute(texts, self.embedder.encode)
        try:
            cache.save()
        except OSError as exc:
            log.warning("cannot save the embedding cache %s: %s", folder, exc)
        return vectors

    def built_with(self) -> dict[str, str]:
        """What a model trained now depends on: library versions and the embeddings."""
        return {**library_versions(), **embedding_of(self.embedder)}

    def _activate(self, target: str, version: str, model: Any, metrics: dict[str, Any],
                  built_with: dict[str, Any]) -> None:
        """Serve ``version`` for ``target`` (already active in the database)."""
        mismatch = embedding_mismatch(built_with, model, embedding_of(self.embedder))
        with self._lock:
            self.active[target] = LoadedModel(version, "supervised", model, metrics)
            self._db_versions[target] = version
            if mismatch:
                self.retrain_needed[target] = mismatch_message(
                    target, version, built_with, embedding_of(self.embedder), mismatch, model)
            else:
                self.retrain_needed.pop(target, None)

    def _set_aside(self, target: str) -> bool:
        """Whether ``target``'s active version cannot read this process's embeddings, so
        that zero-shot answers instead (see :meth:`load`)."""
        with self._lock:
            served = getattr(self.active.get(target), "kind", "")
            return target in self.retrain_needed and served != "supervised"

    def _refuse_other_embeddings(self, row: Any, model: Any) -> None:
        """Promoting or rolling back to a version trained on another embedding model would
        serve answers computed from vectors it never saw: refused, with what to do."""
        built_with = dict(row.library_versions or {})
        serving = embedding_of(self.embedder)
        if embedding_mismatch(built_with, model, serving) == "model":
            raise ValueError(mismatch_message(row.target, row.version, built_with, serving,
                                              "model", model))

    def active_versions(self) -> dict[str, str]:
        with self._lock:
            return {t: m.version for t, m in sorted(self.active.items())}

    # --- prediction ---------------------------------------------------------------------

    def predict(
        self, text: str, vector: np.ndarray, *, kind: str = "message"
    ) -> list[LabelPrediction]:
        fields = FIELDS_BY_KIND.get(kind, FIELDS_BY_KIND["message"])
        with self._lock:
            active = dict(self.active)
        out = []
        emb = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        for target in fields:
            loaded = active.get(target)
            if loaded is None:
                continue
            p = loaded.model.predict([text], emb)[0]
            out.append(
                LabelPrediction(
                    field=target,
                    label=p.label,
                    confidence=round(float(p.confidence), 4),
                    candidates=tuple((str(c), round(float(s), 4)) for c, s in p.candidates),
                    model_version=loaded.version,
                    top_terms=tuple(getattr(p, "top_terms", ()) or ()),
                    examples=nearest_labelled(loaded.model, emb[0], p.top_label),
                    threshold=float(loaded.model.threshold_),  # > 1: never answers
                )
            )
        return out

    # --- training data ------------------------------------------------------------------

    def training_data(self, target: str) -> tuple[list[str], list[str]]:
        """Labelled texts for ``target``: incidents/tickets, then feedback corrections.

        A correction for the same text overrides the stored label.
        """
        texts, labels, _refs = self.training_examples(target)
        return texts, labels

    def training_examples(self, target: str) -> tuple[list[str], list[str], list[str]]:
        """``training_data`` plus, per text, a reference shown (once resolved, see
        :func:`bot.assistant.visible_examples`) as the nearest labelled examples of a
        prediction: ``incident:<row id>``. A feedback correction gets none: its text may
        come from a private channel and has no visibility of its own."""
        return self.training_examples_of([target])[target]

    def training_examples_of(self, targets: Sequence[str],
                             ) -> dict[str, tuple[list[str], list[str], list[str]]]:
        """:meth:`training_examples` of several targets from one pass over the incidents
        (the zero-shot models of a fresh install are calibrated together at every sync)."""
        examples: dict[str, dict[str, tuple[str, str]]] = {t: {} for t in targets}
        if not examples:
            return {}
        with session_scope(self._sessions) as session:
            for row in repo.list_incidents(session=session):
                if not row.text:
                    continue
                for target, found in examples.items():
                    label = getattr(row, target, "") if hasattr(row, target) else ""
                    label = label or str((row.labels or {}).get(target, ""))
                    if label:
                        found[row.text] = (label, f"{INCIDENT_REF}{row.id}")
            for target, found in examples.items():
                for ex in repo.list_labeled_examples(session=session, field=target):
                    found[ex.text] = (ex.label, "")
        out = {}
        for target, found in examples.items():
            labels = [lab for lab, _ in found.values()]
            # one label written several ways ("Network", "network ") is one class, as in
            # `triagebot eval classify`: its most frequent spelling
            canon = label_spellings(labels)
            out[target] = (list(found), [canon.get(lab, lab) for lab in labels],
                           [ref for _, ref in found.values()])
        return out

    def finer_labels(self, target: str, texts: Sequence[str],
                     labels: Sequence[str]) -> tuple[str, list[str]]:
        """A label field of the stored incidents that refines ``target`` (the service of an
        alert for its category; see :mod:`classifiers.hierarchy`), and its value for each of
        ``texts`` ("" where none is stored, e.g. a feedback correction); ``("", [])`` when no
        field does. ``labels``: the training labels of ``texts``."""
        others = [f for f in LABEL_COLUMNS if f != target]
        with session_scope(self._sessions) as session:
            by_text = repo.incident_label_columns(session=session, fields=others)
        fields = {f: [by_text.get(t, {}).get(f, "") for t in texts] for f in others}
        name = finer_field(labels, fields)
        return (name, fields[name]) if name else ("", [])

    # --- training and promotion ------------------------------------------------------------

    def train(self, target: str, *, actor: str = "cli", force: bool = False) -> TrainOutcome:
        """Train a challenger; promote it only if it is at least as good on the held-out split."""
        texts, labels, refs = self.training_examples(target)
        if len(texts) < self.min_labels or len(set(labels)) < 2:
            raise NotEnoughDataError(
                f"{target}: {len(texts)} labelled examples in {len(set(labels))} classes; "
                f"need {self.min_labels} in 2+ (zero-shot stays active)"
            )
        holdout = [in_holdout(t) for t in texts]
        train_idx = [i for i, h in enumerate(holdout) if not h]
        test_idx = [i for i, h in enumerate(holdout) if h]
        if not test_idx or len({labels[i] for i in train_idx}) < 2:
            raise NotEnoughDataError(f"{target}: not enough data for a held-out split")
        tr_texts = [texts[i] for i in train_idx]
        tr_labels = [labels[i] for i in train_idx]
        te_texts = [texts[i] for i in test_idx]
        te_labels = [labels[i] for i in test_idx]
        data_fingerprint = fingerprint(tr_texts, tr_labels)
        if not force:
            self._check_something_changed(target, data_fingerprint)
        vectors = self.embed(texts)
        finer, fine = self.finer_labels(target, tr_texts, tr_labels)
        model = TextClassifier(target, min_precision=self.min_precision)
        model.fit(tr_texts, vectors[train_idx], tr_labels, refs=[refs[i] for i in train_idx],
                  fine_labels=fine or None, fine_field=finer)
        challenger = evaluate(model, te_texts, vectors[test_idx], te_labels)
        with self._lock:
            current = self.active.get(target)
        champion = None
        if current is not None:
            champion = evaluate(current.model, te_texts, vectors[test_idx], te_labels)
        cold = current is not None and current.kind == "zero-shot"
        # The zero-shot model is a champion like any other: with a few dozen labels a trained
        # model can be worse than good label descriptions. Against it "not worse" is enough;
        # the configured margins are there to stop churn between trained versions.
        decision = champion_challenger(
            champion,
            challenger,
            min_accuracy_gain=0.0 if cold else self.min_accuracy_gain,
            min_macro_f1_gain=0.0 if cold else self.min_macro_f1_gain,
            max_coverage_loss=self.max_coverage_loss,
            min_precision=self.min_precision,
        )
        promote = decision.promote or force
        version = f"{target}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        path = self.models_dir / target / f"{version}.skops"
        path.parent.mkdir(parents=True, exist_ok=True)
        card = save_model(model, path, metrics=challenger.summary(), fingerprint=data_fingerprint,
                          built_with=embedding_of(self.embedder))
        champion_summary = champion.summary() if champion is not None else None
        reason = promotion_reason(decision, cold=cold, forced=force,
                                  champion_version=current.version if current else "")
        set_aside = self._set_aside(target)
        if set_aside:  # zero-shot answered because of another embedding model
            reason += (f"; {self._db_versions.get(target, 'the active version')} is retired: "
                       "it was trained on other embeddings")
        previous = ""
        with session_scope(self._sessions) as session:
            row = repo.add_model_version(
                session=session,
                target=target,
                version=version,
                kind="supervised",
                status="candidate",
                artifact_path=str(path),
                metrics={**challenger.summary(), "confusion": challenger.to_dict()["confusion"],
                         "chosen_in_fit": model.chosen()},
                decision={
                    "promote": promote,
                    "reason": reason,
                    "champion": champion_summary,
                    "champion_version": current.version if current else "",
                },
                fingerprint=data_fingerprint,
                library_versions=dict(card.versions),
                n_train=len(tr_texts),
            )
            if promote:
                replaced = repo.activate_model(session=session, row=row)
                previous = replaced.version if replaced else (current.version if current else "")
            else:
                row.status = "rejected"
                if set_aside:
                    self._retire_set_aside(session, target, actor)
                elif current is not None and current.kind == "supervised":
                    # the champion, trained on the other backend's vectors, was just measured
                    # on these and kept: no retrain to advise any more
                    with self._lock:
                        self.retrain_needed.pop(target, None)
            repo.audit(
                session=session,
                actor=actor,
                action="model_promoted" if promote else "model_rejected",
                subject=version,
                detail={
                    "target": target,
                    "reason": reason,
                    "challenger": challenger.summary(),
                    "champion": champion_summary,
                },
            )
        if promote:
            self._activate(target, version, model, challenger.summary(), dict(card.versions))
        return TrainOutcome(
            target, version, promote, reason, challenger.summary(), champion_summary, previous
        )

    def _retire_set_aside(self, session: Session, target: str, actor: str) -> None:
        """The active version was trained on other embeddings and a model trained on the
        current ones lost to zero-shot: zero-shot stays, so the old version is retired in
        the database too (it cannot answer; nothing is left "to retrain")."""
        old = repo.get_active_model(session=session, target=target)
        if old is not None:
            old.status = "retired"
            repo.audit(session=session, actor=actor, action="model_set_aside",
                       subject=old.version, detail={"reason": self.retrain_needed.get(target, "")})
        with self._lock:
            self.retrain_needed.pop(target, None)
            self._db_versions.pop(target, None)

    def _check_something_changed(self, target: str, data_fingerprint: str) -> None:
        """Raise ``UnchangedDataError`` when a retrain would rebuild the newest version as is
        (same rows, same library versions) against the same champion: the nightly job then
        adds no identical version and spends no CPU. That covers a rejected newest version
        too (say, one the zero-shot model beat), as long as its champion is still active."""
        with session_scope(self._sessions) as session:
            active = repo.get_active_model(session=session, target=target)
            versions = repo.list_model_versions(session=session, target=target)

            def same_data(row: Any) -> bool:
                return (row is not None and row.kind == "supervised"
                        and row.fingerprint == data_fingerprint
                        and dict(row.library_versions or {}) == self.built_with())

            if same_data(active):
                raise UnchangedDataError(
                    f"{target}: no new labels or corrections since {active.version} "
                    "(`triagebot train --force` retrains anyway)")
            newest = versions[-1] if versions else None
            with self._lock:
                current = self.active.get(target)
            champion = (newest.decision or {}).get("champion_version", "") if newest else ""
            if (same_data(newest) and newest.status == "rejected" and current is not None
                    and champion == current.version
                    and (active is None or active.version == current.version)):
                raise UnchangedDataError(
                    f"{target}: no new labels or corrections since {newest.version}, which "
                    f"{current.version} beat (`triagebot train --force` retrains anyway)")

    def train_cold_targets(self, *, actor: str) -> list[TrainOutcome | str]:
        """Train the targets still on zero-shot (or on nothing) that now have enough labels.

        Cold start ends as soon as the labels exist (after an import), not at the next
        scheduled retrain; targets that already have a trained model wait for that.
        """
        with self._lock:
            cold = [t for t in self.targets
                    if getattr(self.active.get(t), "kind", "") != "supervised"]
        return self.train_each(cold, actor=actor)

    def train_all(self, *, actor: str = "scheduler") -> list[TrainOutcome | str]:
        return self.train_each(self.targets, actor=actor)

    def train_each(self, targets: Sequence[str], *, actor: str, force: bool = False,
                   on_start: Callable[[str], None] | None = None) -> list[TrainOutcome | str]:
        """``train`` every target; a skipped one gives the reason (a string) instead.
        ``on_start(target)`` is called before each (a CLI shows which one is training)."""
        results: list[TrainOutcome | str] = []
        for target in targets:
            if on_start is not None:
                on_start(target)
            try:
                results.append(self.train(target, actor=actor, force=force))
            except TrainingSkipped as exc:
                results.append(str(exc))
        self.recalibrate_zero_shot()  # what stays zero-shot chooses its threshold anew
        return results

    def promote(self, version: str, *, actor: str) -> bool:
        """Make a stored version active (admin decision); False, changing and auditing
        nothing, when it is the active one already."""
        with session_scope(self._sessions) as session:
            row = repo.get_model_version(session=session, version=version)
            if row is None:
                raise ValueError(f"no model version {version!r}")
            if row.status == "active":
                return False
            model, _ = load_model(Path(row.artifact_path))
            self._refuse_other_embeddings(row, model)
            replaced = repo.activate_model(session=session, row=row)
            repo.audit(
                session=session,
                actor=actor,
                action="model_promoted_manually",
                subject=version,
                detail={"replaced": replaced.version if replaced else ""},
            )
            target, metrics = row.target, dict(row.metrics)
            built_with = dict(row.library_versions or {})
        self._activate(target, version, model, metrics, built_with)
        return True

    def rollback(self, target: str, *, actor: str, expected: str = "") -> str:
        """Re-activate the version that was active before the current one.

        ``expected``: the version the admin saw active and means to roll back (an App Home
        button carries it). When another is active by then (a double click's first click
        already rolled it back), ``NotActiveError`` is raised and nothing changes: one
        click, one step back."""
        with session_scope(self._sessions) as session:
            # The active row is read locked (PostgreSQL; SQLite's BEGIN IMMEDIATE already
            # serializes writers): a second click waits for the first and then sees its change.
            active = (select(ModelVersion)
                      .where(ModelVersion.target == target, ModelVersion.status == "active")
                      .with_for_update())
            current = session.scalar(active)
            if current is None:
                # On PostgreSQL a click that waited on the lock re-checks only the row it
                # waited for (no longer active) and misses the one the first click activated:
                # a new statement sees it.
                current = session.scalar(active)
            if expected and (current is None or current.version != expected):
                now = f"`{current.version}` is" if current is not None else "no version is"
                raise NotActiveError(
                    f"{target}: `{expected}` is no longer the active version ({now}: "
                    "it was rolled back already, or replaced meanwhile)")
            if current is None:
                raise ValueError(f"{target}: no active version to roll back")
            versions = repo.list_model_versions(session=session, target=target)
            # The version active before the current one: the last promoted before it, by
            # promotion time, not by age (after `models promote` of an older version, the
            # one it replaced is newer); rolled back ones are not gone back to.
            def before_current(v: ModelVersion) -> bool:
                if current.promoted_at is None:  # not recorded: by age
                    return v.id < current.id
                return v.promoted_at <= current.promoted_at

            earlier = [
                v
                for v in versions
                if v.id != current.id and v.status == "retired" and v.promoted_at is not None
                and before_current(v)
            ]
            if not earlier:
                raise ValueError(f"{target}: no earlier promoted version to roll back to")
            previous = max(earlier, key=lambda v: (v.promoted_at, v.id))
            model, _ = load_model(Path(previous.artifact_path))
            self._refuse_other_embeddings(previous, model)
            repo.activate_model(session=session, row=previous)
            current.status = "rolled_back"
            repo.audit(
                session=session,
                actor=actor,
                action="model_rolled_back",
                subject=previous.version,
                detail={"from": current.version},
            )
            version, metrics = previous.version, dict(previous.metrics)
            built_with = dict(previous.library_versions or {})
        self._activate(target, version, model, metrics, built_with)
        return version
