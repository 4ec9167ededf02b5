"""Cold-start classifier: cosine similarity of a text embedding to label-description vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from classifiers.errors import ClassifierError
from classifiers.model import (
    MIN_ANSWERED,
    NEVER,
    Prediction,
    check_embeddings,
    check_labels,
    check_texts,
    choose_threshold,
    fit_temperature,
    softmax,
)


class ZeroShotClassifier:
    """Classify by similarity to embedded label descriptions; no training data needed.

    ``label_vectors[i]`` is the caller's embedding of ``label_descriptions``' i-th value (in
    dict order). Probabilities are ``softmax(cosine / temperature)``; once labels exist the
    temperature is fitted on them (``temperature_``), so that "70%" means right 7 times in 10.

    Like the trained model, it answers only above a confidence threshold chosen on labelled
    data to reach ``min_precision`` (by its Wilson lower bound, ``precision_z``). With no
    labelled data it cannot know how good its descriptions are, so until :meth:`calibrate`
    has seen labels it is always "unsure" and gives its top candidates. Every labelled
    example is held-out data for it: it learns nothing from them but its threshold.
    """

    def __init__(self, target: str, label_descriptions: dict[str, str],
                 label_vectors: np.ndarray, *, temperature: float = 0.05,
                 min_similarity: float = 0.2, min_precision: float = 0.9,
                 precision_z: float = 0.5, n_candidates: int = 3) -> None:
        if not isinstance(label_descriptions, dict) or len(label_descriptions) < 2:
            raise ClassifierError("label_descriptions needs at least 2 labels")
        if temperature <= 0:
            raise ClassifierError("temperature must be > 0")
        if not 0.0 < min_precision <= 1.0:
            raise ClassifierError("min_precision must be in (0, 1]")
        self.target = target
        self.label_descriptions = dict(label_descriptions)
        self.temperature = temperature
        self.min_similarity = min_similarity
        self.min_precision = min_precision
        self.precision_z = precision_z
        self.n_candidates = n_candidates
        vecs = check_embeddings(label_vectors, len(self.label_descriptions))
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ClassifierError("a label vector is all zeros")
        self.label_vectors_ = vecs / norms
        self.classes_ = np.array(list(self.label_descriptions), dtype=object)
        self.n_features_in_ = int(vecs.shape[1])
        self.n_train_ = 0
        self.temperature_ = temperature
        self.threshold_ = NEVER
        self.calibration_: dict[str, float] = {"n": 0}

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        emb = np.asarray(embeddings, dtype=np.float32)
        emb = check_embeddings(emb, emb.shape[0] if emb.ndim == 2 else -1, self.n_features_in_)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return (emb / np.where(norms == 0, 1.0, norms)) @ self.label_vectors_.T

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        texts_l = check_texts(texts)
        check_embeddings(embeddings, len(texts_l), self.n_features_in_)
        return softmax(self.similarities(embeddings).astype(np.float64), self.temperature_)

    def calibrate(self, texts: Sequence[str], embeddings: np.ndarray,
                  labels: Sequence[str]) -> ZeroShotClassifier:
        """Choose the abstention threshold on labelled examples (all of them held out).

        Rows whose label the taxonomy does not name count as mistakes: the model would
        answer them wrongly. No rows: it stays always unsure.
        """
        texts_l = check_texts(texts)
        labels_l = check_labels(labels, len(texts_l)) if texts_l else []
        if not texts_l:
            self.temperature_, self.threshold_ = self.temperature, NEVER
            self.calibration_ = {"n": 0}
            return self
        sims = self.similarities(check_embeddings(embeddings, len(texts_l), self.n_features_in_))
        index = {label: i for i, label in enumerate(self.classes_)}
        known = np.array([lab in index for lab in labels_l])
        # the temperature from the rows whose label it can name, when there are enough
        self.temperature_ = (
            fit_temperature(sims[known].astype(np.float64),
                            np.array([index[lab] for lab in labels_l if lab in index]))
            if known.sum() >= MIN_ANSWERED else self.temperature)
        proba = softmax(sims.astype(np.float64), self.temperature_)
        conf = proba.max(axis=1)
        # a text too far from every description is never answered, whatever the threshold
        conf = np.where(sims.max(axis=1) >= self.min_similarity, conf, 0.0)
        correct = self.classes_[proba.argmax(axis=1)] == np.array(labels_l, dtype=object)
        self.threshold_ = choose_threshold(conf, correct.astype(np.float64), self.min_precision,
                                           self.precision_z, MIN_ANSWERED)
        answered = conf >= self.threshold_
        self.calibration_ = {
            "n": len(texts_l),
            "temperature": self.temperature_,
            "accuracy": float(correct.mean()),
            "coverage": float(answered.mean()),
            "covered_accuracy": float(correct[answered].mean()) if answered.any() else 0.0,
        }
        return self

    def predict(self, texts: Sequence[str], embeddings: np.ndarray, *,
                explain: bool = True) -> list[Prediction]:
        """``explain`` is accepted for the common interface; similarity gives no terms."""
        texts_l = check_texts(texts)
        check_embeddings(embeddings, len(texts_l), self.n_features_in_)
        sims = self.similarities(embeddings).astype(np.float64)
        proba = softmax(sims, self.temperature_)
        k = min(self.n_candidates, len(self.classes_))
        out = []
        for i in range(len(texts_l)):
            top = np.argsort(-proba[i], kind="stable")[:k]
            cands = tuple((str(self.classes_[c]), float(proba[i, c])) for c in top)
            sure = cands[0][1] >= self.threshold_ and sims[i, top[0]] >= self.min_similarity
            out.append(Prediction(cands[0][0] if sure else None, cands[0][1], cands, ()))
        return out


def load_taxonomy(path: Path) -> dict[str, dict[str, str]]:
    """``{target: {label: description}}`` from a YAML taxonomy file.

    Targets whose value is not a mapping of at least 2 labels are left out (a zero-shot
    model needs two labels to choose between). Raises ``ClassifierError`` with the reason
    when the file cannot be read or is not a YAML mapping.
    """
    try:
        data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClassifierError(f"cannot read taxonomy {path}: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ClassifierError(f"taxonomy {path} is not valid YAML ({where}{why})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClassifierError(f"taxonomy {path}: expected a mapping of target -> labels")
    out: dict[str, dict[str, str]] = {}
    for target, labels in data.items():
        if isinstance(labels, dict) and len(labels) >= 2:
            out[str(target)] = {str(k): str(v or "").strip() for k, v in labels.items()}
    return out


def zero_shot_model(target: str, descriptions: dict[str, str],
                    encode: Callable[[list[str]], np.ndarray], *,
                    min_precision: float = 0.9) -> ZeroShotClassifier:
    """The zero-shot model of one target: each label is embedded as "label: description"
    (the name alone carries meaning too, and a label without a description still works)."""
    labels = list(descriptions)
    texts = [f"{label}: {descriptions[label]}" if descriptions[label] else label
             for label in labels]
    return ZeroShotClassifier(target, dict(zip(labels, texts, strict=True)), encode(texts),
                              min_precision=min_precision)
