"""Evaluation: reports, a plain TF-IDF baseline, champion/challenger, fingerprints, splits."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.svm import LinearSVC

from classifiers.errors import ClassifierError
from classifiers.model import (
    Prediction,
    check_labels,
    check_texts,
    expected_calibration_error,
    holdout_mask,
)


class Predictor(Protocol):
    def predict(self, texts: Sequence[str], embeddings: np.ndarray, *,
                explain: bool = True) -> list[Prediction]: ...


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    """Figures for one model on one test set.

    ``accuracy``/``macro_f1``/``top3_accuracy`` use the top label of every item, answered
    or not; ``coverage`` is the share the model answered and ``covered_accuracy`` the
    accuracy on those. ``macro_f1`` averages over the labels present in the test set.
    ``calibration_error`` (expected calibration error of the top label's confidence, 10
    equal-width bins) is ``None`` for a model without probabilities.
    """

    target: str
    n_train: int
    n_test: int
    accuracy: float
    macro_f1: float
    top3_accuracy: float
    coverage: float
    covered_accuracy: float
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]
    calibration_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_class"] = [asdict(m) for m in self.per_class]
        d["confusion"] = {"labels": list(self.confusion[0]),
                          "matrix": [list(r) for r in self.confusion[1]]}
        return d

    def summary(self) -> dict[str, float]:
        """The headline figures; ``calibration_error`` only for a model with probabilities."""
        out = {k: getattr(self, k) for k in
               ("accuracy", "macro_f1", "top3_accuracy", "coverage", "covered_accuracy")}
        if self.calibration_error is not None:
            out["calibration_error"] = self.calibration_error
        return out


def build_report(target: str, n_train: int, y_true: Sequence[str], y_top: Sequence[str | None],
                 top3: Sequence[Sequence[str]], answered: Sequence[bool],
                 confidence: Sequence[float] | None = None) -> ClassificationReport:
    """Report from plain lists: true labels, top labels, top-3 lists, answered flags and,
    for a model with probabilities, the top label's confidence."""
    n = len(y_true)
    if n == 0:
        raise ClassifierError("cannot evaluate on an empty test set")
    y_t = np.array(y_true, dtype=object)
    y_p = np.array(["" if p is None else p for p in y_top], dtype=object)
    ans = np.asarray(answered, dtype=bool)
    correct = y_t == y_p
    present = sorted(set(y_true))
    p, r, f, s = precision_recall_fscore_support(
        y_t, y_p, labels=present, zero_division=0.0
    )
    per_class = tuple(
        ClassMetrics(lab, float(pi), float(ri), float(fi), int(si))
        for lab, pi, ri, fi, si in zip(present, p, r, f, s, strict=True)
    )
    all_labels = sorted(set(present) | {x for x in y_p if x})
    with warnings.catch_warnings():  # a one-label test set is legal, not worth a warning
        warnings.filterwarnings("ignore", message="A single label was found")
        cm = confusion_matrix(y_t, y_p, labels=all_labels)
    return ClassificationReport(
        target=target,
        n_train=int(n_train),
        n_test=n,
        accuracy=float(correct.mean()),
        macro_f1=float(np.mean(f)),
        top3_accuracy=float(np.mean([t in c[:3] for t, c in zip(y_true, top3, strict=True)])),
        coverage=float(ans.mean()),
        covered_accuracy=float(correct[ans].mean()) if ans.any() else 0.0,
        per_class=per_class,
        confusion=(tuple(all_labels), tuple(tuple(int(v) for v in row) for row in cm)),
        calibration_error=(None if confidence is None
                           else expected_calibration_error(confidence, correct)),
    )


@dataclass
class Answers:
    """What a model answered on each test item, kept as rows so that the answers of several
    folds can be pooled into one report (every row tested once, by a model that never saw
    it)."""

    y_true: list[str] = field(default_factory=list)
    y_top: list[str | None] = field(default_factory=list)
    top3: list[list[str]] = field(default_factory=list)
    answered: list[bool] = field(default_factory=list)
    confidence: list[float] | None = field(default_factory=list)  # None: no probabilities

    def extend(self, other: Answers) -> None:
        self.y_true += other.y_true
        self.y_top += other.y_top
        self.top3 += other.top3
        self.answered += other.answered
        if self.confidence is not None and other.confidence is not None:
            self.confidence += other.confidence
        else:
            self.confidence = None

    def report(self, target: str, n_train: int) -> ClassificationReport:
        return build_report(target, n_train, self.y_true, self.y_top, self.top3,
                            self.answered, self.confidence)


def answers_of(model: Predictor, texts: Sequence[str], embeddings: np.ndarray,
               labels: Sequence[str]) -> Answers:
    """The answers of any model whose ``predict`` returns :class:`Prediction` objects."""
    texts_l = check_texts(texts)
    labels_l = check_labels(labels, len(texts_l))
    preds = model.predict(texts_l, embeddings, explain=False)  # figures need no top terms
    return Answers(labels_l, [p.top_label for p in preds],
                   [[c for c, _ in p.candidates] for p in preds],
                   [p.label is not None for p in preds], [p.confidence for p in preds])


def evaluate(model: Predictor, texts: Sequence[str], embeddings: np.ndarray,
             labels: Sequence[str], *, target: str | None = None) -> ClassificationReport:
    """Evaluate any model whose ``predict`` returns :class:`Prediction` objects."""
    return answers_of(model, texts, embeddings, labels).report(
        target or str(getattr(model, "target", "")), int(getattr(model, "n_train_", 0)))


def baseline_answers(train_texts: Sequence[str], train_labels: Sequence[str],
                     test_texts: Sequence[str], test_labels: Sequence[str]) -> Answers:
    """Reference point: TF-IDF word + char n-grams and a plain LinearSVC, no tuning."""
    tr = check_texts(train_texts, "train_texts")
    te = check_texts(test_texts, "test_texts")
    ytr = check_labels(train_labels, len(tr))
    yte = check_labels(test_labels, len(te))
    if len(set(ytr)) < 2:
        raise ClassifierError("baseline needs at least 2 distinct training labels")
    features = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
    ])
    pipe = make_pipeline(features, LinearSVC()).fit(tr, ytr)
    scores = np.asarray(pipe.decision_function(te))
    classes = pipe.classes_
    if scores.ndim == 1:
        scores = np.column_stack([-scores, scores])
    order = np.argsort(-scores, axis=1)[:, :3]
    top3 = [[str(classes[j]) for j in row] for row in order]
    return Answers(yte, [t[0] for t in top3], top3, [True] * len(te), None)


def baseline_tfidf_svc(train_texts: Sequence[str], train_labels: Sequence[str],
                       test_texts: Sequence[str], test_labels: Sequence[str],
                       *, target: str = "") -> ClassificationReport:
    """The baseline's report on one split (see :func:`baseline_answers`)."""
    return baseline_answers(train_texts, train_labels, test_texts, test_labels).report(
        target, len(train_texts))


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    accuracy_gain: float
    macro_f1_gain: float
    coverage_gain: float


# A champion whose answers on the held-out rows are this close to the target precision
# still answers trustworthily: its coverage is worth defending.
COVERED_ACCURACY_SLACK = 0.05


def champion_challenger(champion: ClassificationReport | None,
                        challenger: ClassificationReport, *, min_accuracy_gain: float = 0.0,
                        min_macro_f1_gain: float = 0.0, max_coverage_loss: float = 0.05,
                        min_precision: float = 0.9) -> Decision:
    """Promote the challenger only if it is at least as good on accuracy and macro-F1, and
    answers (rather than "unsure") at most ``max_coverage_loss`` fewer of the held-out rows
    (or fewer by no more than noise) than a champion whose answers there are about as accurate
    as ``min_precision`` asks.

    Without the coverage rule a challenger that ties on accuracy and macro-F1 but never
    reaches its threshold replaced a model answering 83% of the rows: every answer became
    "unsure". A champion whose answers fall short of the target precision is not defended.
    Both reports must be for the same target and measured on the same test set size.
    """
    if champion is None:
        return Decision(True, "no champion yet", challenger.accuracy, challenger.macro_f1,
                        challenger.coverage)
    if champion.target != challenger.target:
        raise ClassifierError(
            f"reports are for different targets: {champion.target!r} vs {challenger.target!r}")
    if champion.n_test != challenger.n_test:
        raise ClassifierError(
            f"reports were measured on different test sets ({champion.n_test} vs "
            f"{challenger.n_test} items)")
    acc = challenger.accuracy - champion.accuracy
    f1 = challenger.macro_f1 - champion.macro_f1
    cov = challenger.coverage - champion.coverage
    fails = []
    if acc < min_accuracy_gain:
        fails.append(f"accuracy gain {acc:+.3f} < {min_accuracy_gain:+.3f}")
    if f1 < min_macro_f1_gain:
        fails.append(f"macro-F1 gain {f1:+.3f} < {min_macro_f1_gain:+.3f}")
    if -cov > max(max_coverage_loss, _coverage_noise(champion, challenger)) and (
            champion.covered_accuracy >= min_precision - COVERED_ACCURACY_SLACK):
        fails.append(f"it would answer {challenger.coverage:.0%} of the rows instead of "
                     f"{champion.coverage:.0%} (the active model's answers are "
                     f"{champion.covered_accuracy:.0%} right; loss allowed "
                     f"{max_coverage_loss:.0%})")
    # both measured here, on the same held-out rows: the active model's figures from its
    # own training run (``models list``) came from another split and do not compare
    figures = (f"accuracy {challenger.accuracy:.3f} vs {champion.accuracy:.3f}, macro-F1 "
               f"{challenger.macro_f1:.3f} vs {champion.macro_f1:.3f} for the active model "
               f"on the same {challenger.n_test} held-out rows")
    if fails:
        return Decision(False, "keep champion: " + "; ".join(fails) + f" ({figures})",
                        acc, f1, cov)
    return Decision(True, f"promote: {figures}", acc, f1, cov)


def _coverage_noise(a: ClassificationReport, b: ClassificationReport) -> float:
    """Two standard errors of a coverage difference on these rows: on a few dozen held-out
    rows, three rows more or less answered is noise, not a model that stopped answering."""
    p = (a.coverage + b.coverage) / 2
    return 2.0 * float(np.sqrt(2.0 * p * (1.0 - p) / max(1, a.n_test)))


def fingerprint(texts: Sequence[str], labels: Sequence[str]) -> str:
    """sha256 over the sorted (text, label) pairs: same data in any order, same value."""
    texts_l = check_texts(texts)
    labels_l = check_labels(labels, len(texts_l))
    h = hashlib.sha256()
    for pair in sorted(zip(texts_l, labels_l, strict=True)):
        h.update(json.dumps(pair, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def stratified_split(labels: Sequence[str], test_size: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices, stratified per label.

    A label with a single example always goes to training; every other label keeps at
    least one example in training.
    """
    if not 0.0 < test_size < 1.0:
        raise ClassifierError("test_size must be in (0, 1)")
    y = np.unique(np.asarray(list(labels), dtype=object).astype(str), return_inverse=True)[1]
    mask = holdout_mask(y, test_size, seed)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def stratified_folds(labels: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """A fold number (0 .. k-1) per row for k-fold cross-validation, stratified per label:
    each label's rows are dealt round the folds in a seeded random order, from a random
    first fold so that small labels do not all land in fold 0. A label with a single row
    gets -1: it is always trained on and never tested, as :func:`stratified_split` keeps it
    in training (no model could answer it)."""
    if k < 2:
        raise ClassifierError("cross-validation needs at least 2 folds")
    y = np.asarray(list(labels), dtype=object).astype(str)
    rng = np.random.default_rng(seed)
    folds = np.full(len(y), -1, dtype=int)
    for label in sorted(set(y)):
        rows = np.flatnonzero(y == label)
        if len(rows) < 2:
            continue
        rows = rng.permutation(rows)
        folds[rows] = (np.arange(len(rows)) + rng.integers(k)) % k
    return folds
