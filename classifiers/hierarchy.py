"""Finer labels: a field whose values refine the target (alert ``service`` -> ``category``).

Records are often labelled on several fields at once, and some fields nest: every alert rule
of the Thanos exporter is an "Observability" rule, every service belongs to one owning team.
A model trained on the finer field separates what the coarse label lumps together (Thanos,
Loki and Prometheus rules read nothing alike, but share one category); its probabilities,
summed over the fine values of each coarse label, are a fourth opinion in the classifier's
blend. This module only finds such a field and maps labels; the model lives in
:mod:`classifiers.model`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

MIN_AGREEMENT = 0.98  # share of rows whose coarse label is their fine value's usual one
MIN_COVERAGE = 0.5  # share of the target's labelled rows that also carry the finer label


def agreement(coarse: Sequence[str], fine: Sequence[str]) -> tuple[float, int, int]:
    """How well ``fine`` determines ``coarse`` on the rows where both are set.

    Returns (share of those rows whose coarse label is the most common one of their fine
    value, number of such rows, number of distinct fine values). A value seen on one row
    agrees with itself whatever it means (an id would "refine" anything), so only values
    seen on two rows or more count.
    """
    by_fine: dict[str, Counter[str]] = defaultdict(Counter)
    for c, f in zip(coarse, fine, strict=True):
        if c and f:
            by_fine[f][c] += 1
    by_fine = {f: counts for f, counts in by_fine.items() if sum(counts.values()) >= 2}
    n = sum(sum(counts.values()) for counts in by_fine.values())
    if n == 0:
        return 0.0, 0, 0
    usual = sum(counts.most_common(1)[0][1] for counts in by_fine.values())
    return usual / n, n, len(by_fine)


def finer_field(coarse: Sequence[str],
                candidates: Mapping[str, Sequence[str]]) -> str | None:
    """The field of ``candidates`` (one label list per field, aligned with ``coarse``, the
    target's labels) that refines the target, or ``None``.

    A field qualifies when it labels at least half of the target's rows, has more distinct
    values there than the target, and its value decides the target's label on at least 98%
    of them. Among several, the one with the highest agreement, then the fewest values.
    """
    n_target = sum(1 for c in coarse if c)
    n_classes = len({c for c in coarse if c})
    best: tuple[float, int, str] | None = None
    for field, fine in candidates.items():
        share, n, n_values = agreement(coarse, fine)
        if n < MIN_COVERAGE * n_target or n_values <= n_classes or share < MIN_AGREEMENT:
            continue
        key = (share, -n_values, field)
        if best is None or key > best:
            best = key
    return best[2] if best else None


def fine_classes(y: np.ndarray, fine: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fine class ids for rows with coarse class ids ``y``, and each fine class's coarse id.

    A fine class is a (coarse class, fine value) pair, so it maps to exactly one coarse class
    even where the fine field disagrees with the target now and then; rows without a fine
    value form one more class per coarse class.
    """
    ids: dict[tuple[int, str], int] = {}
    fine_y = np.empty(len(y), dtype=np.int64)
    for i, (c, f) in enumerate(zip(y.tolist(), fine, strict=True)):
        fine_y[i] = ids.setdefault((int(c), f or ""), len(ids))
    to_coarse = np.empty(len(ids), dtype=np.int64)
    for (c, _), j in ids.items():
        to_coarse[j] = c
    return fine_y, to_coarse


def to_coarse(proba_fine: np.ndarray, fine_to_coarse: np.ndarray, n_classes: int) -> np.ndarray:
    """Sum the fine classes' probabilities into their coarse classes."""
    out = np.zeros((proba_fine.shape[0], n_classes), dtype=np.float64)
    np.add.at(out.T, fine_to_coarse, proba_fine.T)
    return out
