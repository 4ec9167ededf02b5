"""Drift checks: has the text distribution or the label mix moved since training?"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest
from sklearn.metrics.pairwise import euclidean_distances

from classifiers.errors import ClassifierError


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ClassifierError(f"{name} must be a 2-D array with at least 2 rows, got {a.shape}")
    if not np.isfinite(a).all():
        raise ClassifierError(f"{name} contains NaN or infinite values")
    return a


def embedding_shift_test(reference: np.ndarray, recent: np.ndarray, *,
                         n_permutations: int = 200, max_samples: int = 1000,
                         seed: int = 0) -> tuple[float, float]:
    """MMD^2 (RBF kernel, median-heuristic bandwidth) and its permutation-test p-value."""
    rng = np.random.default_rng(seed)
    x = _as_matrix(reference, "reference")
    y = _as_matrix(recent, "recent")
    if x.shape[1] != y.shape[1]:
        raise ClassifierError(f"dimension mismatch: {x.shape[1]} vs {y.shape[1]}")
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rng.choice(len(y), max_samples, replace=False)]
    z = np.vstack([x, y])
    d = euclidean_distances(z, squared=True)
    med = np.median(d[np.triu_indices_from(d, k=1)])
    k = np.exp(-d / (med if med > 0 else 1.0))
    n, m = len(x), len(y)
    np.fill_diagonal(k, 0.0)  # unbiased estimate: drop self-similarity
    total = k.sum()

    def mmd2(in_x: np.ndarray) -> float:
        kx = k @ in_x
        sxx = float(in_x @ kx)
        sxy = float((1.0 - in_x) @ kx)
        syy = total - sxx - 2.0 * sxy
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)

    base = np.r_[np.ones(n), np.zeros(m)]
    stat = mmd2(base)
    if n_permutations <= 0:
        return stat, float("nan")
    exceed = sum(mmd2(rng.permutation(base)) >= stat for _ in range(n_permutations))
    return stat, (exceed + 1) / (n_permutations + 1)


def embedding_shift(reference: np.ndarray, recent: np.ndarray) -> float:
    """MMD^2 between two embedding samples (0 = same distribution; larger = more shift)."""
    return embedding_shift_test(reference, recent, n_permutations=0)[0]


def label_mix_shift(reference_labels: Sequence[str], recent_labels: Sequence[str]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two label distributions."""
    if len(reference_labels) == 0 or len(recent_labels) == 0:
        raise ClassifierError("label_mix_shift needs non-empty label lists")
    a, b = Counter(reference_labels), Counter(recent_labels)
    labels = sorted(set(a) | set(b), key=str)
    p = np.array([a[lab] for lab in labels], dtype=np.float64)
    q = np.array([b[lab] for lab in labels], dtype=np.float64)
    # scipy returns the JS *distance* (square root of the divergence); normalizes p and q
    return float(min(1.0, jensenshannon(p, q, base=2) ** 2))


def rolling_feedback_accuracy(correct: Sequence[bool], window: int = 50) -> np.ndarray:
    """Accuracy of the last ``window`` feedback items at each point (time order)."""
    if window < 1:
        raise ClassifierError("window must be >= 1")
    c = np.asarray(list(correct), dtype=np.float64)
    if c.size == 0:
        return c
    cs = np.concatenate([[0.0], np.cumsum(c)])
    idx = np.arange(1, len(c) + 1)
    lo = np.maximum(0, idx - window)
    return (cs[idx] - cs[lo]) / (idx - lo)


@dataclass(frozen=True)
class DriftReport:
    embedding_mmd: float
    embedding_p_value: float
    label_js: float | None
    feedback_accuracy: float | None
    n_feedback: int  # the judgments feedback_accuracy is measured on (its last window)
    n_reference: int
    n_recent: int
    should_retrain: bool
    reason: str
    fired: tuple[str, ...] = ()  # the checks that call for a retrain: embedding, labels, feedback

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift_report(reference: np.ndarray, recent: np.ndarray, *,
                 reference_labels: Sequence[str] | None = None,
                 recent_labels: Sequence[str] | None = None,
                 feedback_correct: Sequence[bool] | None = None,
                 baseline_accuracy: float | None = None,
                 p_value_threshold: float = 0.01, min_mmd: float = 0.01,
                 max_label_js: float = 0.1, max_accuracy_drop: float = 0.05,
                 feedback_window: int = 50, min_feedback: int = 20,
                 feedback_p_value: float = 0.05, n_permutations: int = 200,
                 seed: int = 0) -> DriftReport:
    """Combine the checks; retrain when any of them fires.

    Embedding drift needs both a significant permutation test and an MMD^2 of at least
    ``min_mmd`` (large samples make tiny, harmless shifts significant). Feedback says the
    model got worse only on at least ``min_feedback`` judgments (of the last
    ``feedback_window``) whose accuracy is below ``baseline_accuracy - max_accuracy_drop``
    by a one-sided binomial test at ``feedback_p_value``: one "wrong" click is 0% accuracy,
    and says nothing.
    """
    mmd, p = embedding_shift_test(reference, recent, n_permutations=n_permutations, seed=seed)
    reasons: list[str] = []
    fired: list[str] = []
    if p <= p_value_threshold and mmd >= min_mmd:
        reasons.append(f"text embeddings shifted (MMD^2 {mmd:.3f}, p={p:.3f})")
        fired.append("embedding")
    js = None
    if reference_labels is not None and recent_labels is not None and len(recent_labels):
        js = label_mix_shift(reference_labels, recent_labels)
        if js > max_label_js:
            reasons.append(f"label mix shifted (JS {js:.3f} > {max_label_js})")
            fired.append("labels")
    acc = None
    judged = list(feedback_correct or ())[-feedback_window:]
    feedback_note = ""
    if judged:
        acc = float(rolling_feedback_accuracy(judged, feedback_window)[-1])
        floor = None if baseline_accuracy is None else baseline_accuracy - max_accuracy_drop
        if floor is not None and acc < floor:
            n = len(judged)
            plural = "s" if n != 1 else ""
            if n < min_feedback:
                feedback_note = (f"feedback accuracy {acc:.2f} on {n} judgment{plural}: too few "
                                 f"to judge ({min_feedback} needed)")
            elif binomtest(sum(judged), n, max(floor, 0.0),
                           alternative="less").pvalue <= feedback_p_value:
                reasons.append(
                    f"feedback accuracy {acc:.2f} on {n} judgments fell below "
                    f"{baseline_accuracy:.2f} - {max_accuracy_drop:.2f}")
                fired.append("feedback")
            else:
                feedback_note = (f"feedback accuracy {acc:.2f} on {n} judgments: not "
                                 f"significantly below {floor:.2f}")
    reason = "; ".join(reasons) if reasons else (
        f"no drift (MMD^2 {mmd:.3f}, p={p:.3f}"
        + (f", label JS {js:.3f}" if js is not None else "")
        + (f", {feedback_note}" if feedback_note
           else f", feedback accuracy {acc:.2f}" if acc is not None else "") + ")")
    return DriftReport(mmd, p, js, acc, len(judged), len(np.asarray(reference)),
                       len(np.asarray(recent)), bool(reasons), reason, tuple(fired))
