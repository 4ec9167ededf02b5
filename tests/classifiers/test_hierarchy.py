"""Finer labels (a field that refines the target, like an alert's service for its category)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifiers.errors import ClassifierError
from classifiers.evaluate import evaluate
from classifiers.hierarchy import agreement, fine_classes, finer_field, to_coarse
from classifiers.model import TextClassifier
from classifiers.persist import load_model, save_model

ALERTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "alerts" \
    / "awesome-prometheus-alerts.jsonl"


def test_a_field_that_decides_the_target_and_has_more_values_refines_it():
    category = ["db"] * 4 + ["net"] * 4
    service = ["postgres", "mysql"] * 2 + ["nginx", "haproxy"] * 2
    team = ["dba"] * 5 + ["web"] * 3  # disagrees with category
    assert agreement(category, service) == (1.0, 8, 4)
    assert finer_field(category, {"service": service, "team": team}) == "service"
    # coarser, not finer: category does not refine service
    assert finer_field(service, {"category": category}) is None
    # one row in 50 against its service's usual category is still a refinement; 2 in 20 not
    big_cat = ["db"] * 49 + ["net"] + ["net"] * 50
    big_svc = ["pg", "my"] * 25 + ["nginx", "lb"] * 25
    assert finer_field(big_cat, {"service": big_svc}) == "service"
    noisy = ["db"] * 18 + ["net"] * 2 + ["net"] * 20
    assert finer_field(noisy, {"service": ["pg", "my"] * 10 + ["nginx", "lb"] * 10}) is None


def test_a_field_that_labels_too_few_rows_or_names_every_row_apart_is_not_used():
    category = ["db", "net"] * 10
    service = ["pg", "nginx", "my", "lb"] * 2 + [""] * 12
    assert finer_field(category, {"service": service}) is None
    # an id agrees with any label: values seen once are no evidence
    ids = [f"row-{i}" for i in range(20)]
    assert finer_field(category, {"id": ids}) is None


def test_fine_classes_map_to_one_coarse_class_each_and_probabilities_add_up():
    y = np.array([0, 0, 1, 1, 0])
    fine_y, to_c = fine_classes(y, ["pg", "my", "nginx", "", "pg"])
    assert fine_y.tolist() == [0, 1, 2, 3, 0]
    assert to_c.tolist() == [0, 0, 1, 1]
    # a fine value seen under two coarse labels becomes two fine classes
    fine_y, to_c = fine_classes(np.array([0, 1]), ["pg", "pg"])
    assert fine_y.tolist() == [0, 1] and to_c.tolist() == [0, 1]
    proba = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(to_coarse(proba, np.array([0, 0, 1, 1]), 2),
                               [[0.3, 0.7], [0.8, 0.2]])


def test_a_model_with_a_finer_part_survives_save_and_load(tickets, tmp_path):
    texts, emb, labels = tickets
    fine = [f"{lab}-{i % 3}" for i, lab in enumerate(labels)]
    model = TextClassifier("team", cv=4, fine_blend=(0.5,)).fit(
        texts, emb, labels, fine_labels=fine, fine_field="queue")
    assert model.fine_weight_ == 0.5 and model.fine_field_ == "queue"
    assert len(model.fine_to_coarse_) == len(set(fine))
    save_model(model, tmp_path / "team.skops")
    loaded, _ = load_model(tmp_path / "team.skops")
    assert loaded.fine_field_ == "queue"
    np.testing.assert_array_equal(loaded.predict_proba(texts, emb),
                                  model.predict_proba(texts, emb))
    # without fine labels, or with none finer than the target, there is no fourth part
    plain = TextClassifier("team", cv=4, fine_blend=(0.5,)).fit(
        texts, emb, labels, fine_labels=labels, fine_field="team again")
    assert plain.fine_weight_ == 0.0 and plain.fine_estimator_ is None
    assert plain.chosen()["finer_field"] is None
    with pytest.raises(ClassifierError, match="3 fine labels for 40 texts"):
        TextClassifier("team").fit(texts, emb, labels, fine_labels=fine[:3])


@pytest.mark.skipif(not ALERTS.exists(), reason="shared evaluation data (../shared/data) absent")
def test_the_alert_service_lifts_the_category_on_real_rules(embed):
    """Every exporter's rules share one category; a model of the 93 services separates what
    13 categories lump together. Before the finer part: 7 mistakes in 231 (0.970)."""
    rows = [json.loads(line) for line in ALERTS.read_text().splitlines()]
    tr = [r for r in rows if r["split"] == "train"]
    te = [r for r in rows if r["split"] == "test"]

    def text(r: dict) -> str:
        return f"{r['title']}\n{r['description']}"

    xtr, xte = [text(r) for r in tr], [text(r) for r in te]
    etr, ete = embed(xtr), embed(xte)
    category = [r["category"] for r in tr]
    service = [r["service"] for r in tr]
    assert finer_field(category, {"service": service,
                                  "severity": [r["severity"] for r in tr]}) == "service"
    plain = TextClassifier("category").fit(xtr, etr, category)
    finer = TextClassifier("category").fit(xtr, etr, category, fine_labels=service,
                                           fine_field="service")
    truth = [r["category"] for r in te]
    before, after = evaluate(plain, xte, ete, truth), evaluate(finer, xte, ete, truth)
    assert finer.fine_weight_ > 0.0
    assert after.accuracy >= before.accuracy + 0.01
    assert after.macro_f1 > before.macro_f1
