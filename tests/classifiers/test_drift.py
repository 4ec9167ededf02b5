from __future__ import annotations

import numpy as np
import pytest

from classifiers.drift import (
    drift_report,
    embedding_shift,
    embedding_shift_test,
    label_mix_shift,
    rolling_feedback_accuracy,
)
from classifiers.errors import ClassifierError

NETWORK = ["vpn is down for {}", "cannot reach {} over the network", "dns fails for {}",
           "packet loss to {}", "wifi disconnects near {}"]
DATABASE = ["postgres replication lag on {}", "mysql deadlocks on {}",
            "slow queries on the {} database", "connection pool exhausted on {}"]
PLACES = ["berlin", "the main office", "server-12", "the lab", "building 4", "paris", "api-7",
          "the warehouse", "db-3", "tokyo"]


def _texts(templates, seed):
    rng = np.random.default_rng(seed)
    return [templates[rng.integers(len(templates))].format(PLACES[rng.integers(len(PLACES))])
            for _ in range(60)]


@pytest.fixture(scope="module")
def samples(embed):
    return (embed(_texts(NETWORK, 1)), embed(_texts(NETWORK, 2)),
            embed(_texts(DATABASE, 3)))


def test_detects_real_shift_not_same_distribution(samples):
    ref, same, shifted = samples
    stat_same, p_same = embedding_shift_test(ref, same, n_permutations=200)
    stat_shift, p_shift = embedding_shift_test(ref, shifted, n_permutations=200)
    assert p_shift < 0.01 and p_same > 0.05
    assert stat_shift > 5 * max(stat_same, 1e-3)
    assert embedding_shift(ref, shifted) == pytest.approx(stat_shift)
    assert drift_report(ref, shifted).should_retrain
    r = drift_report(ref, same)
    assert not r.should_retrain and r.reason.startswith("no drift")


def test_label_mix_shift():
    assert label_mix_shift(["a", "b"] * 50, ["b", "a"] * 30) == pytest.approx(0.0)
    assert label_mix_shift(["a"] * 10, ["b"] * 10) == pytest.approx(1.0)
    mid = label_mix_shift(["a"] * 80 + ["b"] * 20, ["a"] * 40 + ["b"] * 60)
    assert 0.05 < mid < 0.5


def test_feedback_accuracy_and_report(samples):
    acc = rolling_feedback_accuracy([True] * 50 + [False] * 50, window=50)
    assert acc[49] == 1.0 and acc[-1] == 0.0 and acc[74] == pytest.approx(0.5)
    ref, same, _ = samples
    r = drift_report(ref, same, feedback_correct=[True] * 20 + [False] * 30,
                     baseline_accuracy=0.8, reference_labels=["a"] * 10,
                     recent_labels=["a"] * 10)
    assert r.should_retrain and "feedback accuracy" in r.reason
    assert r.to_dict()["label_js"] == 0.0


def test_bad_input():
    with pytest.raises(ClassifierError):
        embedding_shift(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ClassifierError):
        label_mix_shift([], ["a"])
