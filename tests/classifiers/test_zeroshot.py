from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifiers.errors import ClassifierError
from classifiers.zeroshot import ZeroShotClassifier

LABELS = {
    "database": "database problems: queries, replication, connections to postgres or mysql",
    "network": "network connectivity: dns, packet loss, vpn, firewall, latency",
    "storage": "disk and storage: disk full, volume out of space, filesystem errors",
}


@pytest.fixture(scope="module")
def zs(embed):
    return ZeroShotClassifier("category", LABELS, embed(list(LABELS.values())))


def test_picks_the_obvious_label(zs, embed):
    texts = ["postgres replication lag is above 30 seconds",
             "disk /var is 98% full on node-3",
             "packet loss between the two data centers"]
    preds = zs.predict(texts, embed(texts))
    assert [p.top_label for p in preds] == ["database", "storage", "network"]
    # with no labelled data it cannot know its precision: unsure, with its candidates
    assert all(p.label is None for p in preds)
    assert all(len(p.candidates) == 3 for p in preds)


CALIBRATION = [
    ("postgres replication lag is above 30 seconds", "database"),
    ("too many connections to the mysql primary", "database"),
    ("slow queries pile up on the orders database", "database"),
    ("disk /var is 98% full on node-3", "storage"),
    ("the volume for the kafka logs is out of space", "storage"),
    ("filesystem errors on /data after the reboot", "storage"),
    ("packet loss between the two data centers", "network"),
    ("dns lookups for internal names time out", "network"),
    ("the vpn tunnel to the office keeps dropping", "network"),
] * 3


def test_calibrated_on_labels_it_answers_where_it_reaches_the_precision(embed) -> None:
    zs = ZeroShotClassifier("category", LABELS, embed(list(LABELS.values())),
                            min_precision=0.8)
    texts, labels = [t for t, _ in CALIBRATION], [lab for _, lab in CALIBRATION]
    zs.calibrate(texts, embed(texts), labels)
    assert zs.calibration_["n"] == 27 and zs.calibration_["covered_accuracy"] >= 0.8
    assert zs.temperature_ != zs.temperature == 0.05  # fitted on the 27 labels
    assert zs.threshold_ <= 1.0
    new = ["replication to the standby postgres is broken", "the coffee machine is broken"]
    answered = zs.predict(new, embed(new))
    assert answered[0].label == "database"
    assert answered[1].label is None  # far from every description, whatever the threshold


def test_calibrated_on_labels_it_gets_wrong_it_stays_unsure(embed) -> None:
    zs = ZeroShotClassifier("category", LABELS, embed(list(LABELS.values())))
    texts = [t for t, _ in CALIBRATION]
    wrong = {"database": "network", "storage": "database", "network": "storage"}
    zs.calibrate(texts, embed(texts), [wrong[lab] for _, lab in CALIBRATION])
    assert zs.calibration_["accuracy"] == 0.0 and zs.calibration_["coverage"] == 0.0
    assert all(p.label is None for p in zs.predict(texts, embed(texts)))
    zs.calibrate([], np.zeros((0, 384), dtype=np.float32), [])  # no labels: unsure again
    assert zs.calibration_ == {"n": 0} and zs.threshold_ > 1.0


def test_bad_input(embed):
    with pytest.raises(ClassifierError):
        ZeroShotClassifier("c", {"a": "x"}, np.ones((1, 384), dtype=np.float32))
    with pytest.raises(ClassifierError):
        ZeroShotClassifier("c", LABELS, np.ones((2, 384), dtype=np.float32))


def test_taxonomy_file_keeps_targets_with_two_labels_or_more(tmp_path) -> None:
    from classifiers.zeroshot import load_taxonomy

    path = tmp_path / "taxonomy.yaml"
    path.write_text("category:\n  disk: Disks full.\n  dns: Names do not resolve.\n"
                    "severity:\n  only: one label\nteam: [a, b]\npriority:\n  P1:\n  P2: ''\n",
                    encoding="utf-8")
    taxonomy = load_taxonomy(path)
    assert taxonomy == {"category": {"disk": "Disks full.", "dns": "Names do not resolve."},
                        "priority": {"P1": "", "P2": ""}}


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read taxonomy"),
    ("category: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_an_unusable_taxonomy_file_says_why(tmp_path, content, message) -> None:
    from classifiers.zeroshot import load_taxonomy

    path = tmp_path / "taxonomy.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ClassifierError, match=message):
        load_taxonomy(path)


def test_a_label_without_description_is_embedded_by_its_name(embed) -> None:
    from classifiers.zeroshot import zero_shot_model

    model = zero_shot_model("priority", {"database": "", "printer": ""}, embed)
    assert model.label_descriptions == {"database": "database", "printer": "printer"}
    texts = ["the sql database rejects new connections", "the printer on floor 2 is out of paper"]
    assert [p.top_label for p in model.predict(texts, embed(texts))] == ["database", "printer"]


ALERTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "alerts" \
    / "awesome-prometheus-alerts.jsonl"


@pytest.mark.skipif(not ALERTS.exists(), reason="shared evaluation data (../shared/data) absent")
def test_a_temperature_fitted_on_labels_makes_the_confidence_mean_what_it_says(embed) -> None:
    """Real alert rules, the bundled severity descriptions: fitted on the training rows, the
    zero-shot confidence is far closer to how often it is right on the test rows."""
    from classifiers.evaluate import evaluate
    from classifiers.zeroshot import load_taxonomy, zero_shot_model

    rows = [json.loads(line) for line in ALERTS.read_text().splitlines()]
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "test")}
    texts = {s: [f"{r['title']}\n{r['description']}" for r in split[s]] for s in split}
    labels = {s: [r["severity"] for r in split[s]] for s in split}
    taxonomy = load_taxonomy(Path(__file__).resolve().parents[2] / "knowledge" / "samples"
                             / "taxonomy.yaml")
    zs = zero_shot_model("severity", taxonomy["severity"], embed)
    test_emb = embed(texts["test"])
    before = evaluate(zs, texts["test"], test_emb, labels["test"]).calibration_error
    zs.calibrate(texts["train"], embed(texts["train"]), labels["train"])
    after = evaluate(zs, texts["test"], test_emb, labels["test"]).calibration_error
    assert after < before / 2  # measured: 0.258 -> 0.087
