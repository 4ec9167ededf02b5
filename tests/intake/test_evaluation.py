from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from bot.intake.evaluation import drain3_baseline, evaluate_grouping, grouping_accuracy
from bot.intake.grouping import group_lines

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
LOGHUB = SHARED / "logs" / "loghub-2k.jsonl"


def test_grouping_accuracy_hand_example() -> None:
    truth = ["a", "a", "b", "b", "c"]
    # {0,1} exact -> 2 correct; {2} and {3} split b -> 0; {4} exact -> 1
    assert grouping_accuracy(truth, [1, 1, 2, 3, 4]) == pytest.approx(3 / 5)
    # merging b and c: only a is right
    assert grouping_accuracy(truth, [1, 1, 2, 2, 2]) == pytest.approx(2 / 5)
    assert grouping_accuracy(truth, [9, 9, 8, 8, 7]) == 1.0
    assert grouping_accuracy([], []) == 1.0


def test_evaluate_grouping_report() -> None:
    texts = ["x"] * 5
    report = evaluate_grouping(texts, ["a", "a", "b", "b", "c"], [1, 1, 2, 3, 4])
    assert (report.n, report.groups_true, report.groups_pred) == (5, 3, 4)
    assert report.grouping_accuracy == pytest.approx(0.6)
    assert 0.0 < report.ari < 1.0
    perfect = evaluate_grouping(texts, ["a", "a", "b", "b", "c"], [5, 5, 6, 6, 0])
    assert perfect.ari == pytest.approx(1.0)
    with pytest.raises(ValueError):
        evaluate_grouping(texts, ["a"], [1])


def test_drain3_baseline_runs() -> None:
    ids = drain3_baseline(["open file a", "open file b", "disk full"])
    assert len(ids) == 3 and ids[0] == ids[1] != ids[2]


@pytest.mark.shared_data
@pytest.mark.skipif(not LOGHUB.exists(), reason="needs ../shared/data/logs/loghub-2k.jsonl")
def test_group_lines_not_worse_than_drain3_on_loghub() -> None:
    by_system: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    with LOGHUB.open() as fh:
        for line in fh:
            rec = json.loads(line)
            by_system[rec["system"]][0].append(rec["text"])
            by_system[rec["system"]][1].append(rec["group"])
    ours, base = [], []
    for texts, truth in by_system.values():
        ours.append(evaluate_grouping(texts, truth, group_lines(texts)).grouping_accuracy)
        base.append(evaluate_grouping(texts, truth, drain3_baseline(texts)).grouping_accuracy)
    assert sum(ours) / len(ours) >= sum(base) / len(base)
    assert sum(o >= b for o, b in zip(ours, base, strict=True)) > len(ours) / 2
