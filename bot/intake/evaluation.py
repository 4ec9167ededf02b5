"""Grouping quality metrics (Loghub "grouping accuracy" and ARI) and a drain3 baseline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupingReport:
    n: int
    groups_true: int
    groups_pred: int
    ari: float
    grouping_accuracy: float


def grouping_accuracy(true_groups: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Share of lines whose predicted group holds exactly the lines of their true group.

    Zhu et al., "Tools and Benchmarks for Automated Log Parsing" (ICSE-SEIP 2019).
    """
    if len(true_groups) != len(predicted):
        raise ValueError("true_groups and predicted differ in length")
    if not true_groups:
        return 1.0
    true_members: dict[Hashable, set[int]] = defaultdict(set)
    pred_members: dict[Hashable, set[int]] = defaultdict(set)
    for i, (t, p) in enumerate(zip(true_groups, predicted, strict=True)):
        true_members[t].add(i)
        pred_members[p].add(i)
    correct = 0
    for members in pred_members.values():
        first = next(iter(members))
        if true_members[true_groups[first]] == members:
            correct += len(members)
    return correct / len(true_groups)


def evaluate_grouping(
    texts: Sequence[str], true_groups: Sequence[Hashable], predicted: Sequence[Hashable]
) -> GroupingReport:
    """Compare a predicted clustering of ``texts`` with the true one."""
    from sklearn.metrics import adjusted_rand_score

    if not len(texts) == len(true_groups) == len(predicted):
        raise ValueError("texts, true_groups and predicted must have the same length")
    t = [str(g) for g in true_groups]
    p = [str(g) for g in predicted]
    return GroupingReport(
        n=len(texts),
        groups_true=len(set(t)),
        groups_pred=len(set(p)),
        ari=float(adjusted_rand_score(t, p)) if t else 1.0,
        grouping_accuracy=grouping_accuracy(t, p),
    )


def drain3_baseline(texts: Sequence[str]) -> list[int]:
    """Cluster ids from drain3's ``TemplateMiner`` with its default settings (no masking)."""
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    miner = TemplateMiner(config=TemplateMinerConfig())
    return [int(miner.add_log_message(text)["cluster_id"]) for text in texts]
