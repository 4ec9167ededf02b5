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
