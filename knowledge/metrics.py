"""Pure evaluation helpers: hit@k, mean reciprocal rank, percentiles."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def hit_at_k(ranked: Sequence[Sequence[Hashable]], gold: Sequence[Hashable], k: int) -> float:
    """Share of queries whose gold item is among the first ``k`` ranked items."""
    if len(ranked) != len(gold):
        raise ValueError("ranked and gold must have the same length")
    if not gold:
        return 0.0
    return sum(g in list(r)[:k] for r, g in zip(ranked, gold, strict=True)) / len(gold)


def mrr(
    ranked: Sequence[Sequence[Hashable]], gold: Sequence[Hashable], k: int | None = None
) -> float:
    """Mean reciprocal rank of the gold item (0 when absent or beyond ``k``)."""
    if len(ranked) != len(gold):
        raise ValueError("ranked and gold must have the same length")
    if not gold:
        return 0.0
    total = 0.0
    for r, g in zip(ranked, gold, strict=True):
        items = list(r) if k is None else list(r)[:k]
        if g in items:
            total += 1.0 / (items.index(g) + 1)
    return total / len(gold)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100), like numpy's default; nan when empty."""
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    xs = sorted(float(v) for v in values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
