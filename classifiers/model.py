"""Supervised text classifier: sentence embedding + TF-IDF n-grams -> calibrated linear model,
blended with a nearest-neighbour vote and a logistic regression over the embeddings alone.

The caller computes sentence embeddings (float32, L2-normalised) and passes them in; this
module never loads an embedding model. Everything data-dependent is chosen inside ``fit``
from out-of-fold (or held-out) predictions on the training data only: the class-weight power
and embedding weight (small grid, small data sets only), the softmax temperatures, the shares
of the kNN vote and of the embedding-only model in the blend, and the confidence threshold
under which the model abstains (label ``None``).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from classifiers.errors import ClassifierError, ModelNotFittedError
from classifiers.hierarchy import fine_classes, to_coarse

ESTIMATORS = ("svc", "logreg", "sgd")
DUPLICATE_WEIGHTINGS = ("log", "count", "none")
MIN_SEARCH_ROWS = 200  # below this, out-of-fold differences between candidates are noise
MIN_ANSWERED = 20  # held-out answers a confidence threshold must rest on, at the least
NEVER = math.nextafter(1.0, 2.0)  # threshold that no probability reaches: always abstain
WORD = re.compile(r"\w[\w.\-]*\w|\w")  # the words an explanation may name


@dataclass(frozen=True)
class Prediction:
    """One prediction. ``label`` is ``None`` when the model is unsure (abstains)."""

    label: str | None
    confidence: float
    candidates: tuple[tuple[str, float], ...]
    top_terms: tuple[str, ...] = ()

    @property
    def unsure(self) -> bool:
        return self.label is None

    @property
    def top_label(self) -> str | None:
        """The most probable label, whether or not the model answered."""
        return self.candidates[0][0] if self.candidates else None


@dataclass(frozen=True)
class Neighbor:
    """A training example close to a query; ``index`` is its position in the fit input and
    ``ref`` what the caller said it is (e.g. "INC-2003: 502s on checkout"), "" if nothing."""

    index: int
    label: str
    similarity: float
    ref: str = ""


# --------------------------------------------------------------------------- validation


def check_texts(texts: Sequence[str], name: str = "texts") -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence | np.ndarray):
        raise ClassifierError(f"{name} must be a sequence of strings, got {type(texts).__name__}")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ClassifierError(f"{name}[{i}] is {type(t).__name__}, expected str")
        out.append(t)
    return out


def check_embeddings(embeddings: Any, n: int, dim: int | None = None) -> np.ndarray:
    try:
        emb = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ClassifierError(f"embeddings are not numeric: {exc}") from exc
    if emb.ndim != 2:
        raise ClassifierError(f"embeddings must be 2-D (n, dim), got shape {emb.shape}")
    if emb.shape[0] != n:
        raise ClassifierError(f"{emb.shape[0]} embeddings for {n} texts")
    if dim is not None and emb.shape[1] != dim:
        raise ClassifierError(f"embedding dim {emb.shape[1]} != {dim} seen at fit time")
    if not np.isfinite(emb).all():
        raise ClassifierError("embeddings contain NaN or infinite values")
    return emb


def check_labels(labels: Sequence[str], n: int) -> list[str]:
    if isinstance(labels, str) or len(labels) != n:
        raise ClassifierError(f"expected {n} labels, got {len(labels)}")
    out = []
    for i, lab in enumerate(labels):
        if not isinstance(lab, str) or not lab.strip():
            raise ClassifierError(f"labels[{i}] must be a non-empty string, got {lab!r}")
        out.append(lab)
    return out


# --------------------------------------------------------------------------- numerics


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of softmax(scores / T)."""
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = scores / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[rows, y]))

    res = minimize_scalar(nll, bounds=(-7.0, 4.0), method="bounded")
    return float(math.exp(res.x))


def log_proba(proba: np.ndarray) -> np.ndarray:
    """Log-probabilities, with zeros clamped (a kNN vote can give a class exactly 0)."""
    return np.log(np.maximum(proba, 1e-12))


def recalibrate(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of probabilities (1.0: unchanged). Keeps every row's ranking."""
    if temperature == 1.0:
        return proba
    return softmax(log_proba(proba), temperature)


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool],
                               n_bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size.

    0 means "when it says 0.8, it is right 80% of the time"; the abstention threshold relies
    on that.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0:
        return 0.0
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    # per bin: |sum of hits - sum of confidences| = size * |accuracy - mean confidence|
    gap = np.bincount(bins, weights=hit - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / len(conf))


def wilson_lower_bound(successes: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion (``z`` = 0: the plain ratio)."""
    n = np.asarray(n, dtype=np.float64)
    p = np.asarray(successes, dtype=np.float64) / n
    if z <= 0.0:
        return p
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (centre - margin) / (1 + z2 / n)


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, min_precision: float,
                     z: float = 0.0, min_answered: int = 1) -> float:
    """Lowest confidence threshold whose answered items reach ``min_precision``.

    Items are answered when ``confidence >= threshold``. With ``z`` > 0 the precision must be
    reached by its Wilson lower bound, not just by the observed ratio: on a few dozen
    held-out items a lucky streak does not open the gate for everything. A threshold must
    also answer at least ``min_answered`` held-out items: five right answers out of five
    pass a z=0.5 bound of 0.9 but say little. Returns ``NEVER`` when no threshold reaches
    the precision.
    """
    if len(confidence) == 0:
        return NEVER
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    n = np.arange(1, len(conf) + 1)
    prec = wilson_lower_bound(np.cumsum(correct[order]), n, z)
    # only cut between distinct confidence values (ties are answered together)
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]
    ok = np.flatnonzero((prec >= min_precision) & last_of_tie & (n >= min_answered))
    if len(ok) == 0:
        return NEVER
    return float(conf[ok[-1]])


def knn_votes(query: np.ndarray, ref: np.ndarray, ref_y: np.ndarray, n_classes: int,
              k: int = 10, power: float = 4.0, floor: float = 0.5,
              chunk: int = 512) -> np.ndarray:
    """Class probabilities from the ``k`` most cosine-similar reference rows.

    Each neighbour votes with ``max(similarity, 0) ** power`` (sharper than a plain
    similarity weight, so a near-duplicate outweighs a crowd of loose matches). A background
    vote of ``k * floor ** power`` spread evenly over the classes keeps the distribution near
    uniform when every neighbour is only loosely similar (below ``floor``), so the vote stays
    unsure where the neighbours are weak. Rows are assumed L2-normalised.
    """
    out = np.zeros((len(query), n_classes), dtype=np.float64)
    if len(ref) == 0 or len(query) == 0:
        out[:] = 1.0 / n_classes
        return out
    k = min(k, len(ref))
    ref32 = np.asarray(ref, dtype=np.float32)
    for start in range(0, len(query), chunk):
        q = np.asarray(query[start:start + chunk], dtype=np.float32)
        sims = q @ ref32.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        w = np.maximum(np.take_along_axis(sims, idx, axis=1), 0.0).astype(np.float64) ** power
        rows = np.repeat(np.arange(len(q)), k)
        block = np.zeros((len(q), n_classes), dtype=np.float64)
        np.add.at(block, (rows, ref_y[idx].ravel()), w.ravel())
        out[start:start + len(q)] = block
    background = k * floor ** power
    out += background / n_classes
    return out / out.sum(axis=1, keepdims=True)


def mix(linear: np.ndarray, votes: np.ndarray | None, knn_weight: float,
        semantic: np.ndarray | None, semantic_weight: float,
        fine: np.ndarray | None = None, fine_weight: float = 0.0) -> np.ndarray:
    """Convex blend of the components; the linear model gets what the others leave.

    A component that is ``None`` counts as weight 0.
    """
    parts = [(p, w) for p, w in ((votes, knn_weight), (semantic, semantic_weight),
                                 (fine, fine_weight)) if p is not None and w > 0.0]
    if not parts:
        return linear
    out = max(1.0 - sum(w for _, w in parts), 0.0) * linear
    for part, weight in parts:
        out = out + weight * part
    return out


def weights_of_present(y: np.ndarray, class_weight: np.ndarray) -> dict[int, float]:
    """sklearn's ``class_weight`` dict for the classes present in ``y``."""
    return {int(c): float(class_weight[c]) for c in np.unique(y)}


def fit_capped(est: Any, X: Any, y: np.ndarray, w: np.ndarray) -> Any:
    """Fit without ConvergenceWarning: ``max_iter`` is a deliberate time cap."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=w)
    return est


def blend_grid(knn_shares: Sequence[float], semantic_shares: Sequence[float],
               fine_shares: Sequence[float] = (0.0,)) -> list[tuple[float, float, float]]:
    """(kNN, semantic, finer-label) shares that leave the linear model a share >= 0."""
    return [(float(k), float(s), float(f)) for k in knn_shares for s in semantic_shares
            for f in fine_shares if k + s + f <= 1.0 + 1e-9]


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-F1 over the classes present in ``y_true``."""
    present = np.unique(y_true)
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0.0))


def assign_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Stratified fold ids that tolerate classes smaller than ``n_folds`` (even singletons)."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        folds[idx] = (rng.integers(n_folds) + np.arange(len(idx))) % n_folds
    return folds


def holdout_mask(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified held-out mask; classes with a single example always stay in training."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(len(idx) - 1, round(len(idx) * fraction))
        mask[idx[:k]] = True
    return mask


def seen_in_fold(y: np.ndarray, cnt: np.ndarray,
                 splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """For every out-of-fold row (in ``_out_of_fold`` order): was its class in that fold's
    training rows?

    A row whose class its fold never saw cannot be predicted by any temperature; fitting the
    temperature on it flattens every other answer (on a set with many singleton classes the
    model then says 0.2 where it is right 85% of the time).
    """
    masks = [np.repeat(np.isin(y[te], y[tr]), cnt[te]) for tr, te in splits]
    return np.concatenate(masks) if masks else np.empty(0, dtype=bool)


def fit_temperature_on(scores: np.ndarray, y: np.ndarray, seen: np.ndarray) -> float:
    """``fit_temperature`` on the rows whose class was seen in training (all rows if none)."""
    return fit_temperature(scores[seen], y[seen]) if seen.any() else fit_temperature(scores, y)


# --------------------------------------------------------------------------- the estimator


@dataclass(frozen=True)
class FinePart:
    """The finer-label model's out-of-fold view: coarse probabilities of the held-out rows
    (in ``_out_of_fold`` order), its temperature, and what the final fit needs."""

    oof: np.ndarray
    temperature: float
    to_coarse: np.ndarray  # coarse class id of every fine class
    y: np.ndarray  # fine class id of every (merged) training row
    class_weight: np.ndarray


class TextClassifier(BaseEstimator):
    """Calibrated, abstaining text classifier for one target field (team, severity, ...).

    Features are ``[embedding * embedding_weight, tfidf(word n-grams), tfidf(char n-grams)]``.
    ``class_weight_power`` interpolates between no class weighting (0) and sklearn's
    "balanced" weighting (1). Duplicated (text, label) pairs are merged into one row whose
    sample weight is ``1 + log(count)`` (``duplicate_weighting="log"``; "count" keeps the raw
    count, "none" ignores it): a text seen 500 times still counts more, but does not blow up
    the effective ``C`` (which made liblinear crawl on large, repetitive ticket sets).

    With 200 to ``search_below`` distinct rows, ``fit`` also tries class-weight power 1.0
    and twice or zero times the embedding weight and keeps the pair with the best out-of-fold
    accuracy + macro-F1. The linear model's calibrated probabilities are blended with a kNN
    vote over the embeddings (``knn_k`` neighbours) and with a multinomial logistic regression
    on the embeddings alone (the "semantic" model, which carries paraphrases the n-grams miss);
    their shares are picked from ``knn_blend`` x ``semantic_blend`` by the same out-of-fold
    criterion (0 = not used; the linear model keeps the rest).

    ``fit(..., fine_labels=...)`` adds a fourth part when the rows also carry a finer label
    (the alert's service for its category, see :mod:`classifiers.hierarchy`): a linear model
    trained on the finer labels, its probabilities summed into the target's labels, with a
    share from ``fine_blend`` chosen the same way.
    """

    def __init__(
        self,
        target: str,
        *,
        min_precision: float = 0.9,
        precision_z: float = 0.5,
        estimator: str = "svc",
        C: float = 0.5,
        class_weight_power: float = 0.5,
        embedding_weight: float = 1.0,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        max_word_features: int | None = 100_000,
        max_char_features: int | None = 150_000,
        min_df: int = 2,
        cv: int = 5,
        holdout_above: int = 8_000,
        holdout_fraction: float = 0.1,
        min_class_count: int = 1,
        other_label: str = "other",
        n_candidates: int = 3,
        n_top_terms: int = 5,
        max_examples: int = 20_000,
        random_state: int = 0,
        duplicate_weighting: str = "log",
        knn_k: int = 10,
        knn_blend: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
        semantic_blend: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        fine_blend: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        semantic_C: float = 10.0,
        semantic_max_rows: int = 20_000,
        search_below: int = 3_000,
        max_iter: int = 100,
        n_jobs: int = 2,
    ) -> None:
        self.target = target
        self.min_precision = min_precision
        self.precision_z = precision_z
        self.estimator = estimator
        self.C = C
        self.class_weight_power = class_weight_power
        self.embedding_weight = embedding_weight
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features
        self.min_df = min_df
        self.cv = cv
        self.holdout_above = holdout_above
        self.holdout_fraction = holdout_fraction
        self.min_class_count = min_class_count
        self.other_label = other_label
        self.n_candidates = n_candidates
        self.n_top_terms = n_top_terms
        self.max_examples = max_examples
        self.random_state = random_state
        self.duplicate_weighting = duplicate_weighting
        self.knn_k = knn_k
        self.knn_blend = knn_blend
        self.semantic_blend = semantic_blend
        self.fine_blend = fine_blend
        self.semantic_C = semantic_C
        self.semantic_max_rows = semantic_max_rows
        self.search_below = search_below
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ params

    def _check_params(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ClassifierError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if not 0.0 < self.min_precision <= 1.0:
            raise ClassifierError("min_precision must be in (0, 1]")
        if not 0.0 <= self.precision_z <= 5.0:
            raise ClassifierError("precision_z must be in [0, 5]")
        if self.C <= 0 or self.embedding_weight < 0 or self.class_weight_power < 0:
            raise ClassifierError("C must be > 0; embedding_weight, class_weight_power >= 0")
        if self.cv < 2:
            raise ClassifierError("cv must be >= 2")
        if self.duplicate_weighting not in DUPLICATE_WEIGHTINGS:
            raise ClassifierError(
                f"duplicate_weighting must be one of {DUPLICATE_WEIGHTINGS}, "
                f"got {self.duplicate_weighting!r}")
        if self.knn_k < 1 or self.max_iter < 1 or self.n_jobs < 1:
            raise ClassifierError("knn_k, max_iter and n_jobs must be >= 1")
        if min(self.n_candidates, self.min_df, self.max_examples) < 1:
            raise ClassifierError("n_candidates, min_df and max_examples must be >= 1")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ClassifierError("holdout_fraction must be in (0, 1)")
        blends = tuple(self.knn_blend)
        if not blends or any(not 0.0 <= float(b) < 1.0 for b in blends):
            raise ClassifierError("knn_blend must be a non-empty tuple of weights in [0, 1)")
        shares = tuple(self.semantic_blend)
        if not shares or any(not 0.0 <= float(b) <= 1.0 for b in shares):
            raise ClassifierError("semantic_blend must be a non-empty tuple of weights in [0, 1]")
        fine = tuple(self.fine_blend)
        if not fine or any(not 0.0 <= float(b) <= 1.0 for b in fine):
            raise ClassifierError("fine_blend must be a non-empty tuple of weights in [0, 1]")
        if not blend_grid(blends, shares):
            raise ClassifierError("knn_blend + semantic_blend leave no share for any model")
        if self.semantic_C <= 0 or self.semantic_max_rows < 2:
            raise ClassifierError("semantic_C must be > 0 and semantic_max_rows >= 2")

    # ------------------------------------------------------------------ features

    def make_vectorizers(self, n_docs: int) -> tuple[TfidfVectorizer, TfidfVectorizer]:
        """Unfitted word and char TF-IDF vectorizers with this model's settings (``n_docs``,
        the number of training texts, only decides ``min_df``); also used to rebuild a saved
        model's vectorizers around its stored vocabulary."""
        min_df = self.min_df if n_docs >= 20 * self.min_df else 1
        common = dict(lowercase=True, sublinear_tf=True, min_df=min_df, dtype=np.float32)
        word = TfidfVectorizer(
            analyzer="word", ngram_range=self.word_ngrams, max_features=self.max_word_features,
            token_pattern=r"(?u)\b\w[\w.\-]*\w\b|\b\w\b", **common,
        )
        char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_ngrams,
            max_features=self.max_char_features, **common,
        )
        return word, char

    @staticmethod
    def _fit_vectorizer(vec: TfidfVectorizer, texts: list[str]) -> TfidfVectorizer | None:
        try:
            vec.fit(texts)
        except ValueError:  # empty vocabulary (no tokens at all)
            return None
        return vec

    def _ngrams(self, texts: list[str]) -> list[sp.csr_matrix]:
        return [vec.transform(texts) for vec in (self.word_vectorizer_, self.char_vectorizer_)
                if vec is not None]

    @staticmethod
    def _stack(emb: np.ndarray, weight: float, ngrams: list[sp.csr_matrix]) -> sp.csr_matrix:
        blocks: list[Any] = [sp.csr_matrix(emb * np.float32(weight)), *ngrams]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def _features(self, texts: list[str], emb: np.ndarray) -> sp.csr_matrix:
        weight = getattr(self, "embedding_weight_", self.embedding_weight)
        return self._stack(emb, weight, self._ngrams(texts))

    # ------------------------------------------------------------------ estimator

    def _make_estimator(self, class_weight: dict[Any, float]) -> Any:
        if self.estimator == "svc":
            return LinearSVC(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                             random_state=self.random_state)
        if self.estimator == "logreg":
            return LogisticRegression(
                C=self.C, class_weight=class_weight, solver="saga", max_iter=200,
                random_state=self.random_state,
            )
        return SGDClassifier(
            loss="modified_huber", alpha=1.0 / (self.C * 10_000), class_weight=class_weight,
            max_iter=30, tol=1e-4, random_state=self.random_state,
        )

    def _fit_one(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray,
                 class_weight: np.ndarray) -> Any:
        est = self._make_estimator(weights_of_present(y, class_weight))
        return fit_capped(est, X, y, w)

    def _map_parallel(self, fit: Any, jobs: Sequence[Any]) -> list[Any]:
        """``fit`` over ``jobs`` on ``n_jobs`` threads (liblinear and lbfgs release the GIL)."""
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
            warnings.simplefilter("ignore", ConvergenceWarning)
            return list(pool.map(fit, jobs))

    @staticmethod
    def _scores(est: Any, X: sp.csr_matrix, n_classes: int) -> np.ndarray:
        """Decision scores as an (n, n_classes) array over *global* class ids."""
        raw = np.asarray(est.decision_function(X), dtype=np.float64)
        if raw.ndim == 1:  # binary: one score, positive means est.classes_[1]
            raw = np.column_stack([-raw / 2, raw / 2])
        if len(est.classes_) == n_classes:
            return raw
        out = np.full((X.shape[0], n_classes), -np.inf)
        out[:, est.classes_] = raw
        # classes absent from this fold: far below the worst present score
        low = raw.min(axis=1, keepdims=True) - 10.0
        missing = np.setdiff1d(np.arange(n_classes), est.classes_)
        out[:, missing] = low
        return out

    # ------------------------------------------------------------------ fit

    def fit(self, texts: Sequence[str], embeddings: np.ndarray, labels: Sequence[str],
            refs: Sequence[str] | None = None, *, fine_labels: Sequence[str] | None = None,
            fine_field: str = "") -> TextClassifier:
        """``refs``: optional, one short description per text (its ticket id and title, say),
        kept with the stored examples so that :meth:`nearest_examples` can say which
        labelled examples a prediction resembles. ``fine_labels``: optional, per text, the
        value of a field that refines ``labels`` ("" where unknown), named ``fine_field``."""
        self._check_params()
        texts_l = check_texts(texts)
        if not texts_l:
            raise ClassifierError("cannot fit on zero examples")
        emb = check_embeddings(embeddings, len(texts_l))
        labels_l = check_labels(labels, len(texts_l))
        if refs is not None and len(refs) != len(texts_l):
            raise ClassifierError(f"{len(refs)} refs for {len(texts_l)} texts")
        if fine_labels is not None and len(fine_labels) != len(texts_l):
            raise ClassifierError(f"{len(fine_labels)} fine labels for {len(texts_l)} texts")

        counts = Counter(labels_l)
        if self.min_class_count > 1:
            rare = {lab for lab, c in counts.items() if c < self.min_class_count}
            if rare and len(counts) - len(rare) >= 1:
                labels_l = [self.other_label if lab in rare else lab for lab in labels_l]
                counts = Counter(labels_l)
        if len(counts) < 2:
            raise ClassifierError(f"need at least 2 distinct labels, got {sorted(counts)}")

        classes = np.array(sorted(counts), dtype=object)
        class_index = {c: i for i, c in enumerate(classes)}
        y_all = np.array([class_index[lab] for lab in labels_l], dtype=np.int64)

        # merge duplicated (text, label) pairs into weighted rows
        first: dict[tuple[str, int], int] = {}
        count: list[int] = []
        keep: list[int] = []
        for i, key in enumerate(zip(texts_l, y_all.tolist(), strict=True)):
            j = first.get(key)
            if j is None:
                first[key] = len(keep)
                keep.append(i)
                count.append(1)
            else:
                count[j] += 1
        keep_a = np.array(keep, dtype=np.int64)
        cnt = np.array(count, dtype=np.int64)
        if self.duplicate_weighting == "count":
            w = cnt.astype(np.float64)
        elif self.duplicate_weighting == "log":
            w = 1.0 + np.log(cnt)
        else:
            w = np.ones(len(cnt))
        y = y_all[keep_a]
        u_texts = [texts_l[i] for i in keep_a]
        u_emb = emb[keep_a]

        # class weights: (balanced) ** power, computed on the full counts
        full_counts = np.bincount(y_all, minlength=len(classes)).astype(np.float64)
        balanced = len(y_all) / (len(classes) * full_counts)

        clock = time.perf_counter()
        word, char = self.make_vectorizers(len(u_texts))
        self.word_vectorizer_ = self._fit_vectorizer(word, u_texts)
        self.char_vectorizer_ = self._fit_vectorizer(char, u_texts)
        self.classes_ = classes
        self.n_features_in_ = int(emb.shape[1])
        ngrams = self._ngrams(u_texts)
        self.timings_ = {"vectorize": time.perf_counter() - clock}
        clock = time.perf_counter()

        splits = self._splits(y)
        seen = seen_in_fold(y, cnt, splits)
        knn_oof = self._knn_out_of_fold(u_emb, y, cnt, splits, len(classes))
        # like the other searched choices, the semantic share is only searched from
        # MIN_SEARCH_ROWS rows: on a few dozen rows its out-of-fold lead is noise, and the
        # model is overconfident on vague text. A single share given by the caller is kept.
        semantic_shares = tuple(float(b) for b in self.semantic_blend)
        if len(set(semantic_shares)) > 1 and len(y) < MIN_SEARCH_ROWS:
            semantic_shares = (0.0,)
        semantic_oof, semantic_t = self._semantic_out_of_fold(
            u_emb, y, w, cnt, balanced ** self.class_weight_power, splits, len(classes),
            semantic_shares, seen)
        fine = self._fine_out_of_fold(
            u_emb, ngrams, y, w, cnt,
            [fine_labels[i] or "" for i in keep_a] if fine_labels is not None else None,
            splits, len(classes))
        grid = blend_grid(self.knn_blend if knn_oof is not None else (0.0,),
                          semantic_shares if semantic_oof is not None else (0.0,),
                          self.fine_blend if fine is not None else (0.0,))
        candidates = self._candidates(len(y))
        final: Any = None
        best: tuple[float, dict[str, Any]] | None = None
        for power, emb_weight in candidates:
            X = self._stack(u_emb, emb_weight, ngrams)
            # a single candidate: the final model trains alongside the out-of-fold models
            with_final = len(candidates) == 1
            scores, oof_y, final = self._out_of_fold(X, y, w, cnt, balanced ** power, splits,
                                                     len(classes), with_final)
            if scores.shape[0] == 0:
                break
            temperature = fit_temperature_on(scores, oof_y, seen)
            base = softmax(scores, temperature)
            for knn_share, semantic_share, fine_share in grid:
                if fine_share > 0.0 and emb_weight != self.embedding_weight:
                    continue  # the finer model reads the default features (see _proba)
                proba = mix(base, knn_oof, knn_share, semantic_oof, semantic_share,
                            fine.oof if fine is not None else None, fine_share)
                pred = proba.argmax(axis=1)
                objective = float(np.mean(pred == oof_y)) + macro_f1(oof_y, pred)
                if best is None or objective > best[0] + 1e-9:
                    best = (objective, dict(power=power, emb_weight=emb_weight,
                                            temperature=temperature, knn=knn_share,
                                            semantic=semantic_share, fine=fine_share,
                                            proba=proba, y=oof_y))
        self.timings_["out_of_fold"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if best is None:  # no usable out-of-fold split (tiny data): defaults, never answer
            chosen: dict[str, Any] = dict(power=self.class_weight_power,
                                          emb_weight=self.embedding_weight, temperature=1.0,
                                          knn=0.0, semantic=0.0, fine=0.0)
            self.threshold_ = NEVER
            self.oof_metrics_ = {"oof_n": 0}
        else:
            chosen = best[1]
            proba, oof_y = chosen["proba"], chosen["y"]
            # A blend of calibrated parts is not calibrated itself (the mix of a sharp and a
            # flat distribution is underconfident): one more temperature, on the blend.
            mixed = chosen["knn"] > 0.0 or chosen["semantic"] > 0.0 or chosen["fine"] > 0.0
            chosen["blend_temperature"] = (
                fit_temperature_on(log_proba(proba), oof_y, seen) if mixed else 1.0)
            correct = (proba.argmax(axis=1) == oof_y).astype(np.float64)
            raw_calibration = expected_calibration_error(proba.max(axis=1), correct)
            proba = recalibrate(proba, chosen["blend_temperature"])
            conf = proba.max(axis=1)
            self.threshold_ = choose_threshold(conf, correct, self.min_precision,
                                               self.precision_z, MIN_ANSWERED)
            answered = conf >= self.threshold_
            self.oof_metrics_ = {
                "oof_n": len(oof_y),
                "oof_accuracy": float(correct.mean()),
                "oof_coverage": float(answered.mean()),
                "oof_covered_accuracy": float(correct[answered].mean()) if answered.any() else 0.0,
                "oof_macro_f1": macro_f1(oof_y, proba.argmax(axis=1)),
                "oof_calibration_error": expected_calibration_error(conf, correct),
                "oof_calibration_error_before_blend_temperature": raw_calibration,
                "class_weight_power": float(chosen["power"]),
                "embedding_weight": float(chosen["emb_weight"]),
                "knn_weight": float(chosen["knn"]),
                "semantic_weight": float(chosen["semantic"]),
                "fine_weight": float(chosen["fine"]),
            }
        self.temperature_ = float(chosen["temperature"])
        self.blend_temperature_ = float(chosen.get("blend_temperature", 1.0))
        self.class_weight_power_ = float(chosen["power"])
        self.embedding_weight_ = float(chosen["emb_weight"])
        self.knn_weight_ = float(chosen["knn"])
        self.semantic_weight_ = float(chosen["semantic"])
        self.semantic_temperature_ = float(semantic_t)
        self.semantic_estimator_ = (
            self._fit_semantic(u_emb, y, w, balanced ** self.class_weight_power)
            if self.semantic_weight_ > 0.0 else None)
        self.fine_weight_ = float(chosen["fine"])
        self.fine_field_ = fine_field if fine is not None else ""  # considered, maybe unused
        self.fine_temperature_ = fine.temperature if fine is not None else 1.0
        self.fine_to_coarse_ = (fine.to_coarse if fine is not None and self.fine_weight_ > 0.0
                                else np.empty(0, dtype=np.int64))
        self.fine_estimator_ = (
            self._fit_one(self._stack(u_emb, self.embedding_weight, ngrams), fine.y, w,
                          fine.class_weight)
            if fine is not None and self.fine_weight_ > 0.0 else None)

        if final is None:
            X = self._stack(u_emb, self.embedding_weight_, ngrams)
            final = self._fit_one(X, y, w, balanced ** self.class_weight_power_)
        self.estimator_ = final
        self._store_examples(u_emb, y, keep_a, refs)
        self.n_train_ = len(texts_l)
        self._feature_names: np.ndarray | None = None
        self.timings_["final_fit"] = time.perf_counter() - clock
        return self

    def chosen(self) -> dict[str, Any]:
        """What fit chose out of fold: class weights, embedding weight, the parts' shares and
        the finer field (shown by ``eval classify`` and ``triagebot models show``)."""
        self._check_fitted()
        return {
            "class_weight_power": self.class_weight_power_,
            "embedding_weight": self.embedding_weight_,
            "knn_weight": self.knn_weight_,
            "semantic_weight": self.semantic_weight_,
            "finer_field": self.fine_field_ or None,
            "finer_weight": self.fine_weight_,
        }

    def _candidates(self, n_rows: int) -> list[tuple[float, float]]:
        """(class-weight power, embedding weight) pairs to compare out of fold; defaults first.

        Embedding weight 0 is the n-grams alone: where wording decides the label (alert
        severity, say) the embedding block only adds noise to the linear model.
        """
        pairs = [(self.class_weight_power, self.embedding_weight)]
        if MIN_SEARCH_ROWS <= n_rows <= self.search_below:
            for power in (self.class_weight_power, 1.0):
                for emb_weight in (self.embedding_weight, 2.0 * self.embedding_weight, 0.0):
                    if (power, emb_weight) not in pairs:
                        pairs.append((power, emb_weight))
        return pairs

    def _splits(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train, test) masks: ``cv`` stratified folds, or one held-out split when large."""
        if len(y) > self.holdout_above:
            mask = holdout_mask(y, self.holdout_fraction, self.random_state)
            splits = [(~mask, mask)]
        else:
            folds = assign_folds(y, self.cv, self.random_state)
            splits = [(folds != f, folds == f) for f in range(self.cv)]
        return [(tr, te) for tr, te in splits if te.any() and len(np.unique(y[tr])) >= 2]

    def _knn_out_of_fold(self, emb: np.ndarray, y: np.ndarray, cnt: np.ndarray,
                         splits: list[tuple[np.ndarray, np.ndarray]],
                         n_classes: int) -> np.ndarray | None:
        """kNN votes for the held-out rows of every split, in the order of ``_out_of_fold``."""
        if not splits or not any(b > 0 for b in self.knn_blend):
            return None
        votes = [np.repeat(knn_votes(emb[te], emb[tr], y[tr], n_classes, self.knn_k),
                           cnt[te], axis=0) for tr, te in splits]
        return np.vstack(votes)

    def _fit_semantic(self, emb: np.ndarray, y: np.ndarray, w: np.ndarray,
                      class_weight: np.ndarray) -> LogisticRegression:
        """Multinomial logistic regression on the embeddings alone (rows capped for speed)."""
        if len(y) > self.semantic_max_rows:
            rng = np.random.default_rng(self.random_state)
            pick = np.sort(rng.choice(len(y), self.semantic_max_rows, replace=False))
            emb, y, w = emb[pick], y[pick], w[pick]
        est = LogisticRegression(C=self.semantic_C, max_iter=300, random_state=self.random_state,
                                 class_weight=weights_of_present(y, class_weight))
        return fit_capped(est, emb, y, w)

    @staticmethod
    def _semantic_log_proba(est: LogisticRegression, emb: np.ndarray,
                            n_classes: int) -> np.ndarray:
        """Log-probabilities over *global* class ids (absent classes get a tiny probability)."""
        out = np.full((len(emb), n_classes), 1e-9)
        out[:, est.classes_] = np.maximum(est.predict_proba(emb), 1e-9)
        return np.log(out)

    def _semantic_out_of_fold(self, emb: np.ndarray, y: np.ndarray, w: np.ndarray,
                              cnt: np.ndarray, class_weight: np.ndarray,
                              splits: list[tuple[np.ndarray, np.ndarray]],
                              n_classes: int, shares: Sequence[float], seen: np.ndarray,
                              ) -> tuple[np.ndarray | None, float]:
        """Calibrated out-of-fold probabilities of the embedding-only model, and its temperature.

        ``(None, 1.0)`` when none of ``shares`` would use it.
        """
        if not splits or not any(b > 0 for b in shares):
            return None, 1.0
        fitted = self._map_parallel(
            lambda split: self._fit_semantic(emb[split[0]], y[split[0]], w[split[0]],
                                             class_weight), splits)
        logp = np.vstack([np.repeat(self._semantic_log_proba(est, emb[te], n_classes), cnt[te],
                                    axis=0) for est, (_, te) in zip(fitted, splits, strict=True)])
        oof_y = np.concatenate([np.repeat(y[te], cnt[te]) for _, te in splits])
        temperature = fit_temperature_on(logp, oof_y, seen)
        return softmax(logp, temperature), temperature

    def _out_of_fold(self, X: sp.csr_matrix, y: np.ndarray, w: np.ndarray, cnt: np.ndarray,
                     cw: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                     n_classes: int, with_final: bool = False,
                     ) -> tuple[np.ndarray, np.ndarray, Any]:
        """Decision scores for rows predicted by a model that did not see them.

        Duplicated texts count as many times as they occur (``cnt``). The fits run on
        ``n_jobs`` threads (liblinear releases the GIL). With ``with_final`` the model on all
        rows is trained in the same pool and returned third (else ``None``).
        """
        jobs = [(X[tr], y[tr], w[tr]) for tr, _ in splits]
        if with_final:
            jobs.append((X, y, w))
        fitted = self._map_parallel(lambda job: self._fit_one(*job, cw), jobs)
        final = fitted.pop() if with_final else None
        scores, ys = [], []
        for est, (_, te) in zip(fitted, splits, strict=True):
            s = self._scores(est, X[te], n_classes)
            scores.append(np.repeat(s, cnt[te], axis=0))
            ys.append(np.repeat(y[te], cnt[te]))
        if not scores:
            return np.empty((0, n_classes)), np.empty(0, dtype=np.int64), final
        return np.vstack(scores), np.concatenate(ys), final

    def _fine_out_of_fold(self, emb: np.ndarray, ngrams: list[sp.csr_matrix], y: np.ndarray,
                          w: np.ndarray, cnt: np.ndarray, fine: list[str] | None,
                          splits: list[tuple[np.ndarray, np.ndarray]],
                          n_classes: int) -> FinePart | None:
        """Out-of-fold coarse probabilities of a linear model trained on the finer labels.

        ``None`` when there is nothing finer to learn (no fine labels, or no more fine
        classes than coarse ones) or no share would use it.
        """
        if fine is None or not splits or not any(b > 0 for b in self.fine_blend):
            return None
        fine_y, fine_to_coarse = fine_classes(y, fine)
        n_fine = len(fine_to_coarse)
        if n_fine <= n_classes:
            return None
        counts = np.bincount(fine_y, weights=cnt, minlength=n_fine)
        class_weight = (counts.sum() / (n_fine * counts)) ** self.class_weight_power
        X = self._stack(emb, self.embedding_weight, ngrams)
        scores, oof_fine_y, _ = self._out_of_fold(X, fine_y, w, cnt, class_weight, splits,
                                                  n_fine)
        temperature = fit_temperature_on(scores, oof_fine_y,
                                         seen_in_fold(fine_y, cnt, splits))
        oof = to_coarse(softmax(scores, temperature), fine_to_coarse, n_classes)
        return FinePart(oof, temperature, fine_to_coarse, fine_y, class_weight)

    def _store_examples(self, emb: np.ndarray, y: np.ndarray, index: np.ndarray,
                        refs: Sequence[str] | None) -> None:
        if len(y) > self.max_examples:
            rng = np.random.default_rng(self.random_state)
            pick = np.sort(rng.choice(len(y), self.max_examples, replace=False))
            emb, y, index = emb[pick], y[pick], index[pick]
        # rounded to float16 (as saved by persist: half the size), held as float32 so that
        # predictions do not convert them again on every call
        self.example_embeddings_ = emb.astype(np.float16).astype(np.float32)
        self.example_labels_ = y.astype(np.int32)
        self.example_index_ = index.astype(np.int64)
        self.example_refs_ = ([str(refs[i]) for i in self.example_index_]
                              if refs is not None else [])

    # ------------------------------------------------------------------ predict

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise ModelNotFittedError(f"TextClassifier({self.target!r}) is not fitted")

    def _prepare(self, texts: Sequence[str], embeddings: np.ndarray) -> sp.csr_matrix:
        self._check_fitted()
        texts_l = check_texts(texts)
        emb = check_embeddings(embeddings, len(texts_l), self.n_features_in_)
        if not texts_l:
            return sp.csr_matrix((0, 0), dtype=np.float32)
        return self._features(texts_l, emb)

    def decision_scores(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """Raw linear decision scores (before calibration and the kNN blend)."""
        X = self._prepare(texts, embeddings)
        if X.shape[0] == 0:
            return np.empty((0, len(self.classes_)))
        return self._scores(self.estimator_, X, len(self.classes_))

    def _proba(self, X: sp.csr_matrix, emb: np.ndarray) -> np.ndarray:
        n_classes = len(self.classes_)
        proba = softmax(self._scores(self.estimator_, X, n_classes), self.temperature_)
        knn_weight = float(getattr(self, "knn_weight_", 0.0))
        semantic_est = getattr(self, "semantic_estimator_", None)
        votes = semantic = None
        if knn_weight > 0.0:
            votes = knn_votes(emb, self.example_embeddings_, self.example_labels_, n_classes,
                              self.knn_k)
        if semantic_est is not None:
            semantic = softmax(self._semantic_log_proba(semantic_est, emb, n_classes),
                               self.semantic_temperature_)
        fine = None
        if self.fine_estimator_ is not None:
            # fit gives the finer model a share only with the default embedding weight, so
            # it reads the same features as the linear model
            fine = to_coarse(
                softmax(self._scores(self.fine_estimator_, X, len(self.fine_to_coarse_)),
                        self.fine_temperature_), self.fine_to_coarse_, n_classes)
        blended = mix(proba, votes, knn_weight, semantic,
                      float(getattr(self, "semantic_weight_", 0.0)), fine, self.fine_weight_)
        return recalibrate(blended, float(getattr(self, "blend_temperature_", 1.0)))

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """Calibrated (blended) probabilities, columns in the order of ``classes_``."""
        X = self._prepare(texts, embeddings)
        if X.shape[0] == 0:
            return np.empty((0, len(self.classes_)))
        return self._proba(X, np.asarray(embeddings, dtype=np.float32))

    def predict(self, texts: Sequence[str], embeddings: np.ndarray, *,
                explain: bool = True) -> list[Prediction]:
        """Label (or ``None`` when unsure), top candidates and, with ``explain``, top terms."""
        X = self._prepare(texts, embeddings)
        if X.shape[0] == 0:
            return []
        texts_l = list(texts)
        proba = self._proba(X, np.asarray(embeddings, dtype=np.float32))
        k = min(self.n_candidates, len(self.classes_))
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        out = []
        for i in range(X.shape[0]):
            cands = tuple((str(self.classes_[c]), float(proba[i, c])) for c in top[i])
            conf = cands[0][1]
            label = cands[0][0] if conf >= self.threshold_ else None
            terms = self._top_terms(X[i], int(top[i, 0]), texts_l[i]) if explain else ()
            out.append(Prediction(label, conf, cands, terms))
        return out

    # ------------------------------------------------------------------ explanations

    def _ngram_names(self) -> np.ndarray:
        if getattr(self, "_feature_names", None) is None:
            names: list[np.ndarray] = []
            for vec, kind in ((self.word_vectorizer_, "w"), (self.char_vectorizer_, "c")):
                if vec is not None:
                    fn = vec.get_feature_names_out()
                    names.append(np.array([f"{kind}:{t}" for t in fn], dtype=object))
            self._feature_names = (
                np.concatenate(names) if names else np.empty(0, dtype=object)
            )
        return self._feature_names

    def _class_coef(self, c: int) -> np.ndarray:
        coef = self.estimator_.coef_
        if coef.shape[0] == 1:  # binary
            return coef[0] if c == 1 else -coef[0]
        return coef[c]

    def _top_terms(self, row: sp.csr_matrix, c: int, text: str) -> tuple[str, ...]:
        """The n-grams of ``text`` that pushed hardest towards class ``c``. A character n-gram
        is shown as the word of ``text`` it comes from ("deploy", not "eplo")."""
        if self.n_top_terms <= 0:
            return ()
        offset = self.n_features_in_
        cols = row.indices[row.indices >= offset]
        if len(cols) == 0:
            return ()
        vals = row[0, cols].toarray().ravel() * self._class_coef(c)[cols]
        names = self._ngram_names()
        order = np.argsort(-vals)
        tokens = [t for t in WORD.findall(text.lower()) if t not in ENGLISH_STOP_WORDS]
        words: list[str] = []
        chars: list[str] = []
        for j in order:
            if vals[j] <= 0:
                break
            kind, term = names[cols[j] - offset].split(":", 1)
            term = term.strip()
            if kind == "w":
                if not all(tok in ENGLISH_STOP_WORDS for tok in term.split()):
                    words.append(term)
            elif len(term) >= 3:
                # shown as the words that hold it; none: part of a stop word ("fter")
                chars.extend(tok for tok in tokens if term in tok)
        picked: list[str] = []
        for term in words + chars:  # word n-grams first; words behind char n-grams fill gaps
            if term and not any(term in p for p in picked):
                picked = [p for p in picked if p not in term]  # "deploy" over "deplo"
                picked.append(term)
            if len(picked) == self.n_top_terms:
                break
        return tuple(picked)

    def nearest_examples(self, embedding: np.ndarray, k: int = 5) -> list[Neighbor]:
        """Training examples closest (cosine) to one embedding."""
        self._check_fitted()
        q = check_embeddings(np.asarray(embedding).reshape(1, -1), 1, self.n_features_in_)[0]
        if k <= 0 or len(self.example_labels_) == 0:
            return []
        sims = self.example_embeddings_ @ q
        k = min(k, len(sims))
        idx = np.argpartition(-sims, k - 1)[:k]
        idx = idx[np.argsort(-sims[idx], kind="stable")]
        refs = getattr(self, "example_refs_", [])
        return [
            Neighbor(int(self.example_index_[i]), str(self.classes_[self.example_labels_[i]]),
                     float(sims[i]), refs[i] if refs else "")
            for i in idx
        ]
