"""kNN vote, blend weight, duplicate weighting and the choices ``fit`` makes out of fold."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.errors import ClassifierError
from classifiers.model import (
    TextClassifier,
    blend_grid,
    knn_votes,
    mix,
    recalibrate,
    softmax,
)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_knn_near_duplicate_wins_and_weak_neighbours_stay_unsure():
    rng = np.random.default_rng(0)
    ref = _unit(rng.normal(size=(30, 16)))
    y = np.arange(30) % 3
    near = _unit(ref[:1] + 0.01 * rng.normal(size=(1, 16)))
    far = _unit(-ref[:1])  # anti-correlated with the first row, ~unrelated to the rest
    votes = knn_votes(np.vstack([near, far]), ref, y, 3, k=5)
    np.testing.assert_allclose(votes.sum(axis=1), 1.0)
    assert votes[0].argmax() == y[0] and votes[0].max() > 0.8
    assert votes[1].max() < 0.6  # loose matches only: close to uniform


def test_knn_blend_is_convex_and_zero_weight_is_identity():
    p = np.array([[0.7, 0.3]])
    v = np.array([[0.0, 1.0]])
    assert mix(p, v, 0.0, None, 0.0) is p
    np.testing.assert_allclose(mix(p, v, 0.5, None, 0.0), [[0.35, 0.65]])


def test_mix_gives_the_linear_model_what_the_others_leave():
    lin, votes, sem = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]])
    np.testing.assert_allclose(mix(lin, votes, 0.2, sem, 0.4), [[0.6, 0.4]])
    np.testing.assert_allclose(mix(lin, None, 0.2, sem, 1.0), sem)  # missing part: weight 0
    assert mix(lin, votes, 0.0, None, 0.5) is lin
    assert blend_grid((0.0, 0.5), (0.0, 0.5, 1.0)) == [
        (0.0, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 1.0, 0.0), (0.5, 0.0, 0.0), (0.5, 0.5, 0.0)]
    # a third part (the finer-label model) shares what is left
    assert blend_grid((0.0, 0.5), (0.5,), (0.0, 0.5, 1.0)) == [
        (0.0, 0.5, 0.0), (0.0, 0.5, 0.5), (0.5, 0.5, 0.0)]
    fine = np.array([[0.0, 1.0]])
    np.testing.assert_allclose(mix(lin, votes, 0.2, sem, 0.4, fine, 0.4), [[0.2, 0.8]])


# The same requests as the training tickets, in words the training tickets never use.
PARAPHRASES = [
    ("remote tunnel into the corporate lan drops", "network"),
    ("the internet link at our site is unreachable", "network"),
    ("I forgot my login credentials", "access"),
    ("please give me permission to open the payroll directory", "access"),
    ("display shows strange lines and goes black", "hardware"),
    ("the copier is out of toner and smudges", "hardware"),
    ("my inbox stopped getting messages", "email"),
    ("meeting invites vanish from my agenda", "email"),
]


def test_semantic_model_carries_paraphrases_the_ngrams_miss(tickets, embed):
    texts, emb, labels = tickets
    queries = [q for q, _ in PARAPHRASES]
    q_emb = embed(queries)
    truth = np.array([lab for _, lab in PARAPHRASES])

    def accuracy(model: TextClassifier) -> float:
        return float(np.mean(np.array([p.top_label for p in model.predict(queries, q_emb)])
                             == truth))

    ngrams_only = TextClassifier("team", cv=4, embedding_weight=0.0, knn_blend=(0.0,),
                                 semantic_blend=(0.0,), search_below=0).fit(texts, emb, labels)
    semantic = TextClassifier("team", cv=4, knn_blend=(0.0,), semantic_blend=(1.0,),
                              search_below=0).fit(texts, emb, labels)
    assert semantic.semantic_weight_ == 1.0 and semantic.semantic_estimator_ is not None
    assert accuracy(semantic) >= 0.75
    assert accuracy(semantic) > accuracy(ngrams_only)


def test_fit_records_out_of_fold_choices(tickets, embed):
    texts, emb, labels = tickets
    model = TextClassifier("team", cv=4).fit(texts, emb, labels)
    chosen = model.oof_metrics_
    assert chosen["class_weight_power"] in (0.5, 1.0)
    assert chosen["embedding_weight"] == 1.0  # 40 rows: too few to search, defaults kept
    assert chosen["knn_weight"] in model.knn_blend
    assert model.knn_weight_ == chosen["knn_weight"]
    assert set(model.timings_) == {"vectorize", "out_of_fold", "final_fit"}

    assert chosen["semantic_weight"] in model.semantic_blend
    assert chosen["knn_weight"] + chosen["semantic_weight"] <= 1.0

    plain = TextClassifier("team", cv=4, knn_blend=(0.0,), semantic_blend=(0.0,),
                           search_below=0).fit(texts, emb, labels)
    assert plain.knn_weight_ == 0.0 and plain.class_weight_power_ == 0.5
    np.testing.assert_allclose(plain.predict_proba(texts, emb),
                               softmax(plain.decision_scores(texts, emb), plain.temperature_))


def test_forced_knn_share_changes_probabilities(tickets):
    texts, emb, labels = tickets
    lin = TextClassifier("team", cv=4, knn_blend=(0.0,), search_below=0).fit(texts, emb, labels)
    mix = TextClassifier("team", cv=4, knn_blend=(0.5,), search_below=0).fit(texts, emb, labels)
    assert mix.knn_weight_ == 0.5
    p_lin, p_mix = lin.predict_proba(texts, emb), mix.predict_proba(texts, emb)
    np.testing.assert_allclose(p_mix.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(p_lin, p_mix)


def test_duplicates_are_merged_with_damped_weight_and_held_out_split(tickets):
    texts, emb, labels = tickets
    many = list(texts) * 3 + [texts[0]] * 50
    e = np.vstack([emb] * 3 + [emb[:1]] * 50)
    y = list(labels) * 3 + [labels[0]] * 50
    model = TextClassifier("team", holdout_above=10, holdout_fraction=0.25).fit(many, e, y)
    assert model.n_train_ == len(many)
    assert model.oof_metrics_["oof_n"] > 0  # one held-out split, counted with duplicates
    assert len(model.example_labels_) == len(texts)  # one stored example per distinct pair


@pytest.mark.parametrize("kwargs, match", [
    ({"duplicate_weighting": "square"}, "duplicate_weighting"),
    ({"knn_blend": (1.0,)}, "knn_blend"),
    ({"knn_blend": ()}, "knn_blend"),
    ({"knn_k": 0}, "knn_k"),
    ({"semantic_blend": (1.5,)}, "semantic_blend"),
    ({"knn_blend": (0.5,), "semantic_blend": (0.8,)}, "no share"),
    ({"semantic_C": 0}, "semantic_C"),
    ({"n_candidates": 0}, "n_candidates"),
    ({"min_df": 0}, "min_df"),
    ({"max_examples": 0}, "max_examples"),
    ({"holdout_fraction": 0.0}, "holdout_fraction"),
    ({"n_jobs": 0}, "n_jobs"),
])
def test_bad_blend_params_raise(tickets, kwargs, match):
    texts, emb, labels = tickets
    with pytest.raises(ClassifierError, match=match):
        TextClassifier("t", **kwargs).fit(texts, emb, labels)


def test_recalibrate_keeps_rankings_and_sharpens_below_one():
    p = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25]])
    sharp = recalibrate(p, 0.5)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0)
    assert (sharp.argsort(axis=1) == p.argsort(axis=1)).all()
    assert (sharp.max(axis=1) > p.max(axis=1)).all()
    assert recalibrate(p, 1.0) is p


def test_the_blend_is_recalibrated_out_of_fold(tickets):
    """Mixing a sharp linear model with a flat kNN vote gives underconfident probabilities;
    the blend temperature (fitted out of fold) brings confidence back in line with accuracy."""
    texts, emb, labels = tickets
    model = TextClassifier("team", cv=4, knn_blend=(0.5,), semantic_blend=(0.4,)).fit(
        texts, emb, labels)
    m = model.oof_metrics_
    assert model.blend_temperature_ != 1.0
    assert m["oof_calibration_error"] < m["oof_calibration_error_before_blend_temperature"]
    # predictions use the same recalibrated blend the threshold was chosen on
    proba = model.predict_proba(texts[:3], emb[:3])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    raw = mix(softmax(model.decision_scores(texts[:3], emb[:3]), model.temperature_),
              knn_votes(emb[:3], model.example_embeddings_, model.example_labels_,
                        len(model.classes_), model.knn_k), 0.5,
              softmax(model._semantic_log_proba(model.semantic_estimator_, emb[:3],
                                                len(model.classes_)),
                      model.semantic_temperature_), 0.4)
    np.testing.assert_allclose(proba, recalibrate(raw, model.blend_temperature_), rtol=1e-6)
