from __future__ import annotations

import numpy as np
import pytest

from classifiers.errors import ClassifierError, ModelNotFittedError
from classifiers.model import (
    MIN_ANSWERED,
    NEVER,
    Prediction,
    TextClassifier,
    assign_folds,
    choose_threshold,
    seen_in_fold,
    softmax,
    wilson_lower_bound,
)


def test_fit_predict_on_real_texts(tickets, embed):
    texts, emb, labels = tickets
    model = TextClassifier("team", min_precision=0.8, cv=4).fit(texts, emb, labels)
    assert set(model.classes_) == {"network", "access", "hardware", "email"}
    new = ["my vpn connection drops", "reset password please, account is locked",
           "the printer is jammed again", "outlook cannot send emails"]
    preds = model.predict(new, embed(new))
    assert [p.top_label for p in preds] == ["network", "access", "hardware", "email"]
    for p in preds:
        assert isinstance(p, Prediction)
        assert len(p.candidates) == 3
        assert 0.0 <= p.confidence <= 1.0
        assert p.confidence == p.candidates[0][1]
        assert (p.label is None) == (p.confidence < model.threshold_)
    proba = model.predict_proba(new, embed(new))
    assert proba.shape == (4, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_top_terms_and_nearest_examples(tickets, embed):
    texts, emb, labels = tickets
    model = TextClassifier("team", cv=4).fit(texts, emb, labels)
    q = ["printer is jammed on the third floor"]
    (pred,) = model.predict(q, embed(q))
    assert pred.top_label == "hardware"
    assert any("printer" in t or "jammed" in t for t in pred.top_terms)
    # whole words of the query, never a character n-gram such as "rint" or "hird"
    assert pred.top_terms and all(tok in q[0].split() for t in pred.top_terms for tok in t.split())
    (quiet,) = model.predict(q, embed(q), explain=False)  # figures and drift skip the terms
    assert quiet.top_terms == () and quiet.candidates == pred.candidates
    near = model.nearest_examples(embed(q)[0], k=3)
    assert len(near) == 3
    assert near[0].label == "hardware"
    assert texts[near[0].index].startswith("printer on the third floor")
    assert near[0].similarity >= near[1].similarity >= near[2].similarity
    assert near[0].ref == ""  # fitted without refs


def test_nearest_examples_say_what_they_are(tickets, embed):
    texts, emb, labels = tickets
    refs = [f"T-{i}:\n {text}" for i, text in enumerate(texts)]
    model = TextClassifier("team", cv=4).fit(texts, emb, labels, refs=refs)
    q = ["printer is jammed on the third floor"]
    near = model.nearest_examples(embed(q)[0], k=3)
    for n in near:
        assert n.ref == refs[n.index]  # as given
    assert near[0].ref.startswith(f"T-{near[0].index}:\n printer on the third floor")
    with pytest.raises(ClassifierError, match="refs"):
        TextClassifier("team").fit(texts, emb, labels, refs=refs[:-1])


def test_threshold_reaches_precision_on_out_of_fold():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 2000)
    correct = (rng.uniform(0, 1, 2000) < conf).astype(float)  # calibrated by construction
    thr = choose_threshold(conf, correct, 0.9)
    answered = conf >= thr
    assert correct[answered].mean() >= 0.9
    assert 0.1 < answered.mean() < 0.35  # precision 0.9 needs conf above ~0.8
    assert choose_threshold(conf, np.zeros(2000), 0.9) == NEVER


def test_wilson_bound_is_below_the_ratio_and_tightens_with_more_items():
    ratio = wilson_lower_bound(np.array([9, 90, 900]), np.array([10, 100, 1000]), 0.0)
    np.testing.assert_allclose(ratio, 0.9)
    lower = wilson_lower_bound(np.array([9, 90, 900]), np.array([10, 100, 1000]), 1.0)
    assert np.all(lower < 0.9) and lower[0] < lower[1] < lower[2]
    assert 0.9 - lower[2] < 0.02  # a thousand items: the margin is small


def test_a_short_lucky_streak_does_not_open_the_gate():
    conf = np.linspace(1.0, 0.5, 20)
    correct = np.r_[np.ones(5), np.zeros(15)]  # the five surest answers happen to be right
    assert choose_threshold(conf, correct, 0.9) == conf[4]  # the plain ratio trusts them
    assert choose_threshold(conf, correct, 0.9, z=1.0) == NEVER  # 5/5 is not proof of 0.9
    many = np.linspace(1.0, 0.5, 400)
    right = np.r_[np.ones(100), np.zeros(300)]
    thr = choose_threshold(many, right, 0.9, z=1.0)  # 100/100 is
    assert thr <= many[99] and right[many >= thr].mean() >= 0.9
    # the product's z=0.5 lets 5/5 pass (lower bound 0.96), so it also wants 20 answers
    assert choose_threshold(conf, correct, 0.9, z=0.5) == conf[4]
    assert choose_threshold(conf, correct, 0.9, z=0.5, min_answered=MIN_ANSWERED) == NEVER
    thr = choose_threshold(many, right, 0.9, z=0.5, min_answered=MIN_ANSWERED)
    assert thr != NEVER and right[many >= thr].mean() >= 0.9  # 100 right answers still open it


def test_a_threshold_needs_twenty_held_out_answers(embed, monkeypatch):
    """Fifteen easy texts are all right out of fold, which passes the Wilson bound: without
    the 20-answer floor the model would answer; with thirty it may."""
    disk = [f"disk /dev/sd{c} on db-{i} is {90 + i}% full" for i, c in enumerate("abcdefghijklmno")]
    dns = [f"dns lookups of api-{i}.internal time out from zone {c}"
           for i, c in enumerate("abcdefghijklmno")]

    def threshold(n: int) -> float:
        texts = [t for pair in zip(disk[:n], dns[:n], strict=True) for t in pair]
        labels = ["storage", "network"] * n
        model = TextClassifier("category", cv=3).fit(texts, embed(texts), labels)
        assert model.oof_metrics_["oof_accuracy"] == 1.0  # every held-out answer right
        return model.threshold_

    assert threshold(7) == NEVER  # 14 held-out answers, all right: not enough
    assert threshold(15) != NEVER  # 30 of them: it answers
    monkeypatch.setattr("classifiers.model.MIN_ANSWERED", 1)
    assert threshold(7) != NEVER  # the floor, not the bound, kept the 14 shut


def test_abstention_on_held_out_reaches_precision(tickets, embed):
    """Ambiguous texts come back unsure; answered held-out items are right."""
    texts, emb, labels = tickets
    model = TextClassifier("team", min_precision=0.9, cv=4).fit(texts, emb, labels)
    held_out = ["vpn certificate error on the wifi", "printer toner is empty",
                "laptop will not turn on", "please give me access to the sales folder",
                "emails bounce back"]
    truth = ["network", "hardware", "hardware", "access", "email"]
    preds = model.predict(held_out, embed(held_out))
    answered = [(p.label, t) for p, t in zip(preds, truth, strict=True) if p.label is not None]
    assert len(answered) >= 3
    assert all(lab == t for lab, t in answered)
    ambiguous = ["hello", "it does not work"]
    for p in model.predict(ambiguous, embed(ambiguous)):
        assert p.label is None and len(p.candidates) == 3


def test_imbalance_and_singleton_classes_do_not_crash(tickets, embed):
    texts, emb, labels = tickets
    # heavy imbalance: 30 network-ish copies, plus two singleton classes
    t2 = [*list(texts), "database backup failed tonight", "badge reader at the door is broken"]
    y2 = [*list(labels), "dba", "facilities"]
    e2 = np.vstack([emb, embed(t2[-2:])])
    model = TextClassifier("team", cv=5).fit(t2, e2, y2)
    assert {"dba", "facilities"} <= set(model.classes_)
    assert model.oof_metrics_["oof_n"] == len(t2)
    merged = TextClassifier("team", cv=5, min_class_count=2).fit(t2, e2, y2)
    assert "other" in merged.classes_ and "dba" not in merged.classes_


def test_two_classes_binary(embed):
    texts = ["disk full on db01", "disk usage 95% on web3", "volume out of space",
             "cpu at 100% for 10 minutes", "high cpu load on api", "processor saturated"]
    labels = ["disk", "disk", "disk", "cpu", "cpu", "cpu"]
    model = TextClassifier("kind", cv=3).fit(texts, embed(texts), labels)
    q = ["no space left on device"]
    (p,) = model.predict(q, embed(q))
    assert p.top_label == "disk"
    assert len(p.candidates) == 2


def test_bad_input_raises_clear_errors(tickets):
    texts, emb, labels = tickets
    with pytest.raises(ClassifierError, match="embeddings"):
        TextClassifier("t").fit(texts, emb[:-1], labels)
    with pytest.raises(ClassifierError, match="2 distinct"):
        TextClassifier("t").fit(texts[:3], emb[:3], ["a", "a", "a"])
    with pytest.raises(ClassifierError, match="labels"):
        TextClassifier("t").fit(texts[:2], emb[:2], ["a", None])
    with pytest.raises(ClassifierError, match="estimator"):
        TextClassifier("t", estimator="forest").fit(texts, emb, labels)
    with pytest.raises(ModelNotFittedError):
        TextClassifier("t").predict(texts, emb)
    model = TextClassifier("t", cv=3).fit(texts, emb, labels)
    with pytest.raises(ClassifierError, match="dim"):
        model.predict(texts[:1], np.zeros((1, 10), dtype=np.float32))
    bad = emb[:1].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ClassifierError, match="NaN"):
        model.predict(texts[:1], bad)
    assert model.predict([], np.zeros((0, emb.shape[1]), dtype=np.float32)) == []


def test_folds_tolerate_singletons():
    y = np.array([0] * 10 + [1] * 3 + [2])
    folds = assign_folds(y, 5, seed=0)
    assert set(folds[:10]) == set(range(5))
    assert len(set(folds[10:13])) == 3


def test_softmax_temperature():
    s = np.array([[2.0, 1.0, 0.0]])
    sharp, flat = softmax(s, 0.1), softmax(s, 10.0)
    assert sharp[0, 0] > 0.99 and flat[0, 0] < 0.4


def test_seen_in_fold_marks_rows_whose_class_the_fold_never_trained_on():
    y = np.array([0, 0, 1, 1, 2])
    cnt = np.array([1, 2, 1, 1, 3])  # out-of-fold rows repeat a merged row `cnt` times
    first = np.array([True, False, True, False, False])
    splits = [(first, ~first), (~first, first)]
    seen = seen_in_fold(y, cnt, splits)
    # fold 1 tests rows 1, 3, 4 (class 2 absent from its training rows), fold 2 rows 0, 2
    assert seen.tolist() == [True, True, True, False, False, False, True, True]


def test_singleton_classes_do_not_flatten_the_confidence(tickets, embed):
    """Rows of a class seen once cannot be predicted out of fold; fitting the temperature on
    them made every answer look unsure (0.2 where the model was right 85% of the time)."""
    texts, emb, labels = tickets
    rare = [f"one-off request number {i} about badge {i}" for i in range(12)]
    all_texts = [*texts, *rare]
    all_labels = [*labels, *[f"rare-{i}" for i in range(12)]]
    model = TextClassifier("team", cv=4).fit(all_texts, np.vstack([emb, embed(rare)]), all_labels)
    m = model.oof_metrics_
    assert m["oof_calibration_error"] < 0.15
    assert m["oof_coverage"] > 0.3  # the common classes are still answered
