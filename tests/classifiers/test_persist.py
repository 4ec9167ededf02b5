from __future__ import annotations

import json
import zipfile
from datetime import datetime

import numpy as np
import pytest
import skops.io as sio

from classifiers.errors import ClassifierError, ModelNotFittedError, UntrustedModelError
from classifiers.evaluate import fingerprint
from classifiers.model import TextClassifier
from classifiers.persist import _state, card_path, load_model, save_model


class Evil:  # a non-sklearn type smuggled into an artifact
    def __init__(self) -> None:
        self.payload = "rm -rf /"


@pytest.fixture(scope="module")
def fitted(tickets):
    texts, emb, labels = tickets
    return TextClassifier("team", cv=4).fit(texts, emb, labels,
                                            refs=[f"T-{i}:\n{t[:40]}" for i, t in enumerate(texts)])


def test_round_trip_gives_identical_predictions(fitted, tickets, tmp_path):
    texts, emb, labels = tickets
    fp = fingerprint(texts, labels)
    card = save_model(fitted, tmp_path / "team.skops", metrics={"accuracy": 0.9}, fingerprint=fp)
    loaded, card2 = load_model(tmp_path / "team.skops")
    assert card2 == card
    assert card.fingerprint == fp and card.target == "team"
    assert set(card.versions) == {"sklearn", "numpy", "scipy", "skops"}
    datetime.fromisoformat(card.created_at)
    assert card.labels == tuple(fitted.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(texts, emb),
                                  fitted.predict_proba(texts, emb))
    assert loaded.predict(texts, emb) == fitted.predict(texts, emb)
    assert loaded.nearest_examples(emb[0], 2) == fitted.nearest_examples(emb[0], 2)
    assert loaded.example_refs_ == fitted.example_refs_  # every ref, newlines and all
    assert loaded.nearest_examples(emb[0], 1)[0].ref.startswith("T-")
    sidecar = json.loads(card_path(tmp_path / "team.skops").read_text())
    assert sidecar["threshold"] == fitted.threshold_


def test_refuses_untrusted_type(fitted, tmp_path):
    path = tmp_path / "evil.skops"
    save_model(fitted, path, metrics={}, fingerprint="x")
    state = _state(fitted)
    state["estimator"] = Evil()
    sio.dump(state, path)  # tampered artifact, card updated to match its hash
    card = json.loads(card_path(path).read_text())
    card["artifact_sha256"] = ""
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(UntrustedModelError, match="untrusted types"):
        load_model(path)


def test_refuses_modified_artifact(fitted, tmp_path):
    path = tmp_path / "m.skops"
    save_model(fitted, path, metrics={}, fingerprint="x")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(UntrustedModelError, match="sha256"):
        load_model(path)


def test_missing_or_unfitted(tmp_path):
    with pytest.raises(ClassifierError, match="not found"):
        load_model(tmp_path / "nope.skops")
    with pytest.raises(ModelNotFittedError):
        save_model(TextClassifier("t"), tmp_path / "x.skops", metrics={}, fingerprint="")


def test_round_trip_keeps_fit_choices(tickets, tmp_path):
    texts, emb, labels = tickets
    model = TextClassifier("team", cv=4, knn_blend=(0.4,), semantic_blend=(0.3,),
                           search_below=0).fit(texts, emb, labels)
    save_model(model, tmp_path / "m.skops")
    loaded, _ = load_model(tmp_path / "m.skops")
    assert loaded.knn_weight_ == 0.4 and loaded.semantic_weight_ == 0.3
    assert loaded.semantic_temperature_ == model.semantic_temperature_
    assert loaded.blend_temperature_ == model.blend_temperature_ != 1.0
    assert (loaded.class_weight_power_, loaded.embedding_weight_) == (
        model.class_weight_power_, model.embedding_weight_)
    np.testing.assert_array_equal(loaded.predict_proba(texts, emb), model.predict_proba(texts, emb))


def test_an_artifact_from_before_the_blend_temperature_loads_unrecalibrated(tickets, tmp_path):
    texts, emb, labels = tickets
    model = TextClassifier("team", cv=4, knn_blend=(0.4,), semantic_blend=(0.0,),
                           search_below=0).fit(texts, emb, labels)
    path = tmp_path / "old.skops"
    save_model(model, path, metrics={}, fingerprint="x")
    state = _state(model)
    del state["blend_temperature"]
    sio.dump(state, path)  # as written by the previous version
    card = json.loads(card_path(path).read_text())
    card["artifact_sha256"] = ""
    card_path(path).write_text(json.dumps(card))
    loaded, _ = load_model(path)
    assert loaded.blend_temperature_ == 1.0
    model.blend_temperature_ = 1.0  # the blend exactly as the old version computed it
    np.testing.assert_array_equal(loaded.predict_proba(texts, emb), model.predict_proba(texts, emb))


def test_the_vocabulary_is_stored_as_arrays_not_one_file_per_term(fitted, tmp_path):
    """skops writes every numpy scalar of a pickled ``vocabulary_`` dict as its own file and
    lists the archive for each: 250k n-grams took 7.5 minutes to save."""
    path = tmp_path / "team.skops"
    save_model(fitted, path, metrics={}, fingerprint="x")
    n_terms = len(fitted.word_vectorizer_.vocabulary_) + len(fitted.char_vectorizer_.vocabulary_)
    with zipfile.ZipFile(path) as archive:
        n_files = len(archive.namelist())
    assert n_terms > 500 and n_files < 50
    assert "sklearn.feature_extraction.text.TfidfVectorizer" not in sio.get_untrusted_types(
        file=path)


def test_an_artifact_with_pickled_vectorizers_still_loads(fitted, tickets, tmp_path):
    texts, emb, _ = tickets
    path = tmp_path / "old.skops"
    save_model(fitted, path, metrics={}, fingerprint="x")
    state = _state(fitted)
    del state["word_vocabulary"], state["char_vocabulary"], state["example_refs"]
    state["word_vectorizer"] = fitted.word_vectorizer_  # as written by the previous version
    state["char_vectorizer"] = fitted.char_vectorizer_
    sio.dump(state, path)
    card = json.loads(card_path(path).read_text())
    card["artifact_sha256"] = ""
    card_path(path).write_text(json.dumps(card))
    loaded, _ = load_model(path)
    expected = fitted.predict_proba(texts, emb)
    np.testing.assert_array_equal(loaded.predict_proba(texts, emb), expected)
    assert loaded.nearest_examples(emb[0], 1)[0].ref == ""  # older artifacts had no refs
