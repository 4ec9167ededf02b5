from __future__ import annotations

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
    assert all(p.label is not None for p in preds)
    assert all(len(p.candidates) == 3 for p in preds)


def test_abstains_on_unrelated_text(zs, embed):
    texts = ["the coffee machine in the kitchen tastes odd"]
    (p,) = zs.predict(texts, embed(texts))
    assert p.label is None


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
