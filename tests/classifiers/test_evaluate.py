from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifiers.errors import ClassifierError
from classifiers.evaluate import (
    Answers,
    baseline_tfidf_svc,
    build_report,
    champion_challenger,
    evaluate,
    expected_calibration_error,
    fingerprint,
    stratified_folds,
    stratified_split,
)
from classifiers.model import TextClassifier

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
ALERTS = SHARED / "alerts" / "awesome-prometheus-alerts.jsonl"


def _report(acc_items: list[bool], target: str = "team"):
    y = ["a", "b"] * (len(acc_items) // 2)
    pred = [t if ok else ("b" if t == "a" else "a") for t, ok in zip(y, acc_items, strict=True)]
    return build_report(target, 10, y, pred, [[p] for p in pred], [True] * len(y))


def test_report_figures():
    r = build_report("t", 5, ["a", "a", "b", "c"], ["a", "b", "b", "c"],
                     [["a"], ["b", "a"], ["b"], ["c"]], [True, False, True, True])
    assert r.accuracy == 0.75 and r.top3_accuracy == 1.0 and r.coverage == 0.75
    assert r.covered_accuracy == 1.0
    assert r.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 1.0) / 3)
    d = r.to_dict()
    json.dumps(d)
    assert d["confusion"]["labels"] == ["a", "b", "c"]
    assert d["confusion"]["matrix"][0] == [1, 1, 0]


def test_calibration_error_is_zero_when_confidence_matches_accuracy():
    # 10 answers at 0.8 confidence, 8 right: calibrated; the same answers at 1.0: off by 0.2
    right = [True] * 8 + [False] * 2
    assert expected_calibration_error([0.8] * 10, right) == pytest.approx(0.0)
    assert expected_calibration_error([1.0] * 10, right) == pytest.approx(0.2)
    # bins are weighted by size: 5 calibrated at 0.6 (3 right) + 5 overconfident at 0.95 (3)
    mixed = expected_calibration_error([0.6] * 5 + [0.95] * 5, [1, 1, 1, 0, 0] * 2)
    assert mixed == pytest.approx(0.5 * 0.0 + 0.5 * 0.35)
    y = ["a", "b", "a", "b"]
    r = build_report("t", 4, y, y, [[v] for v in y], [True] * 4, [1.0, 1.0, 1.0, 1.0])
    assert r.calibration_error == 0.0
    assert r.summary()["calibration_error"] == 0.0
    assert "calibration_error" not in build_report("t", 4, y, y, [[v] for v in y],
                                                   [True] * 4).summary()


def test_champion_challenger():
    worse, better = _report([True] * 6 + [False] * 4), _report([True] * 8 + [False] * 2)
    assert champion_challenger(None, worse).promote
    d = champion_challenger(worse, better)
    assert d.promote and d.accuracy_gain == pytest.approx(0.2)
    # both figures, and that they come from the same rows (the active model's own figures
    # in `models list` were measured on another split)
    assert d.reason == ("promote: accuracy 0.800 vs 0.600, macro-F1 "
                        f"{better.macro_f1:.3f} vs {worse.macro_f1:.3f} for the active model "
                        "on the same 10 held-out rows")
    d = champion_challenger(better, worse)
    assert not d.promote and d.reason.startswith("keep champion: accuracy gain -0.200")
    assert "accuracy 0.600 vs 0.800" in d.reason
    assert not champion_challenger(worse, better, min_accuracy_gain=0.3).promote
    with pytest.raises(ClassifierError, match="targets"):
        champion_challenger(worse, _report([True] * 10, target="other"))
    with pytest.raises(ClassifierError, match="test sets"):
        champion_challenger(worse, _report([True] * 4))


def test_a_challenger_that_would_stop_answering_is_not_promoted():
    y = ["a", "b"] * 5
    answering = build_report("team", 10, y, y, [[v] for v in y], [True] * 9 + [False])
    mute = build_report("team", 10, y, y, [[v] for v in y], [False] * 10)  # same labels
    d = champion_challenger(answering, mute)
    assert not d.promote and d.coverage_gain == pytest.approx(-0.9)
    assert "it would answer 0% of the rows instead of 90%" in d.reason
    assert champion_challenger(answering, mute, max_coverage_loss=1.0).promote
    assert champion_challenger(mute, answering).promote  # answering more is never held back
    # a champion whose answers are mostly wrong is not defended for answering often
    wrong = [("b" if v == "a" else "a") for v in y[:6]] + y[6:]
    reckless = build_report("team", 10, y, wrong, [[v] for v in wrong], [True] * 10)
    careful = build_report("team", 10, y, wrong, [[v] for v in wrong], [False] * 10)
    assert champion_challenger(reckless, careful).promote
    # one row fewer answered of ten is noise, not a model that stopped answering
    fewer = build_report("team", 10, y, y, [[v] for v in y], [True] * 8 + [False] * 2)
    assert champion_challenger(answering, fewer).promote


def test_fingerprint_is_order_independent():
    a = fingerprint(["x", "y"], ["1", "2"])
    assert a == fingerprint(["y", "x"], ["2", "1"])
    assert a != fingerprint(["x", "y"], ["2", "1"])
    assert len(a) == 64


def test_stratified_split_survives_singletons():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2 + ["d"]
    tr, te = stratified_split(labels, 0.2, seed=1)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == len(labels)
    test_labels = [labels[i] for i in te]
    assert test_labels.count("a") == 10 and test_labels.count("b") == 2
    assert "d" not in test_labels and "d" in [labels[i] for i in tr]
    assert np.array_equal(te, stratified_split(labels, 0.2, seed=1)[1])


def test_stratified_folds_test_every_row_once_except_singletons():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2 + ["d"]
    folds = stratified_folds(labels, 5, seed=3)
    assert set(folds) == {-1, 0, 1, 2, 3, 4}
    assert [labels[i] for i in np.flatnonzero(folds == -1)] == ["d"]  # trained on, never tested
    for k in range(5):
        test = [labels[i] for i in np.flatnonzero(folds == k)]
        assert test.count("a") == 10 and test.count("b") == 2  # each label dealt evenly
    # a 2-row label is tested twice, each time with its other row in training
    assert len({folds[i] for i, lab in enumerate(labels) if lab == "c"}) == 2
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))
    with pytest.raises(ClassifierError, match="at least 2 folds"):
        stratified_folds(labels, 1)


def test_answers_of_folds_pool_into_one_report():
    first = Answers(["a", "b"], ["a", None], [["a"], ["a", "b"]], [True, False], [0.9, 0.4])
    second = Answers(["b"], ["b"], [["b"]], [True], [0.8])
    first.extend(second)
    report = first.report("team", 10)
    assert (report.n_test, report.accuracy, report.coverage) == (3, 2 / 3, 2 / 3)
    assert report.top3_accuracy == 1.0 and report.calibration_error is not None
    first.extend(Answers(["a"], ["a"], [["a"]], [True], None))  # a model without probabilities
    assert first.report("team", 10).calibration_error is None


def test_evaluate_and_baseline_on_own_texts(tickets, embed):
    texts, emb, labels = tickets
    tr, te = stratified_split(labels, 0.25, seed=0)
    model = TextClassifier("team", cv=3).fit([texts[i] for i in tr], emb[tr],
                                             [labels[i] for i in tr])
    r = evaluate(model, [texts[i] for i in te], emb[te], [labels[i] for i in te])
    assert r.n_test == len(te) and r.n_train == len(tr)
    assert r.accuracy >= 0.6 and r.top3_accuracy >= r.accuracy
    b = baseline_tfidf_svc([texts[i] for i in tr], [labels[i] for i in tr],
                           [texts[i] for i in te], [labels[i] for i in te], target="team")
    assert b.coverage == 1.0 and 0.0 <= b.accuracy <= 1.0


@pytest.mark.skipif(not ALERTS.exists(), reason="shared evaluation data (../shared/data) absent")
def test_beats_baseline_on_alert_service(embed):
    rows = [json.loads(line) for line in ALERTS.read_text().splitlines()]
    tr = [r for r in rows if r["split"] == "train"]
    te = [r for r in rows if r["split"] == "test"]

    def text(r):
        return f"{r.get('title', '')}\n{r.get('description', '')}"

    xtr, xte = [text(r) for r in tr], [text(r) for r in te]
    model = TextClassifier("service").fit(xtr, embed(xtr), [r["service"] for r in tr])
    ours = evaluate(model, xte, embed(xte), [r["service"] for r in te])
    base = baseline_tfidf_svc(xtr, [r["service"] for r in tr], xte, [r["service"] for r in te],
                              target="service")
    assert ours.accuracy >= base.accuracy
