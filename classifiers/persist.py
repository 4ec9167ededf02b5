"""Save and load trained classifiers without executing code on load.

The artifact is a skops file holding only fitted scikit-learn parts, numpy arrays and plain
values; ``TextClassifier`` itself is rebuilt from them. Loading first lists the types the
file needs (``skops.io.get_untrusted_types``) and refuses any that are not on an explicit
allow-list of sklearn/numpy/scipy types. A JSON sidecar (the :class:`ModelCard`) carries the
metadata and the artifact's sha256, checked on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn
import skops
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer

from classifiers.errors import ClassifierError, ModelNotFittedError, UntrustedModelError
from classifiers.model import TextClassifier

FORMAT_VERSION = 1

# Types a TextClassifier artifact may contain beyond what skops trusts by default.
ALLOWED_TYPES: frozenset[str] = frozenset({
    "numpy.dtype",
    "numpy.float16",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._sgd_fast.Hinge",
    "sklearn.linear_model._sgd_fast.ModifiedHuber",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.loss.HalfBinomialLoss",
})
_ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def library_versions() -> dict[str, str]:
    return {"sklearn": sklearn.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "skops": skops.__version__}


@dataclass(frozen=True)
class ModelCard:
    """Metadata stored beside a model artifact."""

    target: str
    labels: tuple[str, ...]
    threshold: float
    temperature: float
    n_train: int
    fingerprint: str
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    artifact_sha256: str = ""
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        try:
            return cls(
                target=str(d["target"]), labels=tuple(str(x) for x in d["labels"]),
                threshold=float(d["threshold"]), temperature=float(d["temperature"]),
                n_train=int(d["n_train"]), fingerprint=str(d["fingerprint"]),
                metrics=dict(d.get("metrics") or {}), params=dict(d.get("params") or {}),
                versions=dict(d.get("versions") or {}), created_at=str(d.get("created_at", "")),
                artifact_sha256=str(d.get("artifact_sha256", "")),
                format_version=int(d.get("format_version", FORMAT_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassifierError(f"invalid model card: {exc}") from exc


def card_path(path: str | Path) -> Path:
    """The JSON sidecar of an artifact: ``team.skops`` -> ``team.json``."""
    return Path(path).with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _params(model: TextClassifier) -> dict[str, Any]:
    """Constructor parameters as plain JSON values (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.get_params().items()}


def _vocabulary_state(vec: TfidfVectorizer | None) -> dict[str, np.ndarray] | None:
    """A fitted vectorizer's vocabulary and idf as three arrays.

    skops stores every numpy scalar of a pickled ``vocabulary_`` dict as its own file in the
    zip, and its writer lists the archive for each one: saving 250k n-grams took 7.5 minutes.
    The analyzer settings are rebuilt from the model's own parameters on load.
    """
    if vec is None:
        return None
    terms = np.array(list(vec.vocabulary_), dtype=np.str_)
    index = np.fromiter(vec.vocabulary_.values(), dtype=np.int64, count=len(terms))
    return {"terms": terms, "index": index, "idf": np.asarray(vec.idf_, dtype=np.float64)}


def _rebuild_vectorizer(saved: Any, blank: TfidfVectorizer) -> TfidfVectorizer | None:
    """The vectorizer from ``_vocabulary_state`` (or as pickled by older artifacts)."""
    if saved is None or isinstance(saved, TfidfVectorizer):
        return saved
    blank.vocabulary_ = dict(zip(saved["terms"].tolist(), saved["index"].tolist(), strict=True))
    blank.idf_ = np.asarray(saved["idf"], dtype=np.float64)
    return blank


def _state(model: TextClassifier) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "params": _params(model),
        "classes": np.array([str(c) for c in model.classes_], dtype=np.str_),
        "word_vocabulary": _vocabulary_state(model.word_vectorizer_),
        "char_vocabulary": _vocabulary_state(model.char_vectorizer_),
        "estimator": model.estimator_,
        "temperature": float(model.temperature_),
        "blend_temperature": float(model.blend_temperature_),
        "threshold": float(model.threshold_),
        "class_weight_power": float(model.class_weight_power_),
        "embedding_weight": float(model.embedding_weight_),
        "knn_weight": float(model.knn_weight_),
        "semantic_weight": float(model.semantic_weight_),
        "semantic_temperature": float(model.semantic_temperature_),
        "semantic_estimator": model.semantic_estimator_,
        "fine_weight": float(model.fine_weight_),
        "fine_field": str(model.fine_field_),
        "fine_temperature": float(model.fine_temperature_),
        "fine_to_coarse": np.asarray(model.fine_to_coarse_, dtype=np.int64),
        "fine_estimator": model.fine_estimator_,
        "n_features_in": int(model.n_features_in_),
        "n_train": int(model.n_train_),
        "oof_metrics": {k: float(v) for k, v in model.oof_metrics_.items()},
        "example_embeddings": model.example_embeddings_.astype(np.float16),  # half the size
        "example_labels": model.example_labels_,
        "example_index": model.example_index_,
        "example_refs": np.array(getattr(model, "example_refs_", []), dtype=np.str_),
    }


def _rebuild(state: dict[str, Any]) -> TextClassifier:
    params = dict(state["params"])
    target = params.pop("target")
    for key in ("word_ngrams", "char_ngrams", "knn_blend", "semantic_blend", "fine_blend"):
        if key in params:
            params[key] = tuple(params[key])
    model = TextClassifier(target, **params)
    model.classes_ = np.array([str(c) for c in state["classes"]], dtype=object)
    word, char = model.make_vectorizers(n_docs=0)  # n_docs only sets min_df, a fit setting
    # artifacts written before the compact vocabulary hold the pickled vectorizers
    model.word_vectorizer_ = _rebuild_vectorizer(
        state.get("word_vocabulary", state.get("word_vectorizer")), word)
    model.char_vectorizer_ = _rebuild_vectorizer(
        state.get("char_vocabulary", state.get("char_vectorizer")), char)
    model.estimator_ = state["estimator"]
    model.temperature_ = float(state["temperature"])
    # artifacts written before the blend was recalibrated: the blend as it was
    model.blend_temperature_ = float(state.get("blend_temperature", 1.0))
    model.threshold_ = float(state["threshold"])
    # artifacts written before the kNN blend: the constructor values, no kNN
    model.class_weight_power_ = float(state.get("class_weight_power", model.class_weight_power))
    model.embedding_weight_ = float(state.get("embedding_weight", model.embedding_weight))
    model.knn_weight_ = float(state.get("knn_weight", 0.0))
    # artifacts written before the semantic model: no semantic share
    model.semantic_weight_ = float(state.get("semantic_weight", 0.0))
    model.semantic_temperature_ = float(state.get("semantic_temperature", 1.0))
    model.semantic_estimator_ = state.get("semantic_estimator")
    # artifacts written before the finer-label model: none
    model.fine_weight_ = float(state.get("fine_weight", 0.0))
    model.fine_field_ = str(state.get("fine_field", ""))
    model.fine_temperature_ = float(state.get("fine_temperature", 1.0))
    model.fine_to_coarse_ = np.asarray(state.get("fine_to_coarse", np.empty(0)), dtype=np.int64)
    model.fine_estimator_ = state.get("fine_estimator")
    model.n_features_in_ = int(state["n_features_in"])
    model.n_train_ = int(state["n_train"])
    model.oof_metrics_ = dict(state["oof_metrics"])
    # float32 in memory: converting the float16 copy on every prediction cost ~4x the kNN vote
    model.example_embeddings_ = np.asarray(state["example_embeddings"], dtype=np.float32)
    model.example_labels_ = np.asarray(state["example_labels"])
    model.example_index_ = np.asarray(state["example_index"])
    # artifacts written before the refs: neighbours without a description
    model.example_refs_ = np.asarray(state.get("example_refs", []), dtype=np.str_).tolist()
    model._feature_names = None
    return model


def save_model(model: TextClassifier, path: str | Path, *, metrics: dict[str, Any] | None = None,
               fingerprint: str = "", built_with: dict[str, str] | None = None) -> ModelCard:
    """Write ``path`` (skops) and its JSON card; returns the card. ``built_with``: more of
    what the model depends on, recorded beside the library versions (the embedding model)."""
    if not hasattr(model, "estimator_"):
        raise ModelNotFittedError("cannot save an unfitted model")
    path = Path(path)
    _atomic_write(path, lambda tmp: sio.dump(_state(model), tmp, compression=8))
    card = ModelCard(
        target=model.target,
        labels=tuple(str(c) for c in model.classes_),
        threshold=float(model.threshold_),
        temperature=float(model.temperature_),
        n_train=int(model.n_train_),
        fingerprint=fingerprint,
        metrics=dict(metrics or {}),
        params=_params(model),
        versions={**library_versions(), **(built_with or {})},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        artifact_sha256=_sha256(path),
    )
    text = json.dumps(card.to_dict(), indent=2, sort_keys=True, default=float)
    _atomic_write(card_path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return card


def check_types(path: str | Path) -> list[str]:
    """Types the artifact needs beyond skops' defaults; raises if any is not allowed."""
    try:
        untrusted = sio.get_untrusted_types(file=Path(path))
    except Exception as exc:  # corrupt zip, bad schema ...
        raise UntrustedModelError(f"{path}: not a readable skops file ({exc})") from exc
    bad = [t for t in untrusted if t not in ALLOWED_TYPES or not t.startswith(_ALLOWED_PREFIXES)]
    if bad:
        raise UntrustedModelError(f"{path}: refusing untrusted types {sorted(bad)}")
    return untrusted


def load_model(path: str | Path) -> tuple[TextClassifier, ModelCard]:
    """Load an artifact written by :func:`save_model`, refusing anything not allow-listed."""
    path = Path(path)
    cpath = card_path(path)
    if not path.is_file():
        raise ClassifierError(f"model file not found: {path}")
    if not cpath.is_file():
        raise ClassifierError(f"model card not found: {cpath}")
    try:
        card = ModelCard.from_dict(json.loads(cpath.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ClassifierError(f"{cpath}: invalid JSON ({exc})") from exc
    if card.artifact_sha256 and card.artifact_sha256 != _sha256(path):
        raise UntrustedModelError(f"{path}: sha256 does not match its model card")
    trusted = check_types(path)
    try:
        state = sio.load(path, trusted=trusted)
    except Exception as exc:
        raise UntrustedModelError(f"{path}: cannot load ({exc})") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise ClassifierError(f"{path}: unsupported artifact format")
    try:
        model = _rebuild(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise ClassifierError(f"{path}: incomplete artifact ({exc})") from exc
    if model.target != card.target or tuple(str(c) for c in model.classes_) != card.labels:
        raise UntrustedModelError(f"{path}: artifact and model card disagree")
    return model, card
