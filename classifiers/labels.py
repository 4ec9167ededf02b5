"""Label spellings: one label written several ways ("Network", "network ", "NETWORK") is one
class, for training in the product and for ``triagebot eval classify`` alike."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence


def label_spellings(labels: Sequence[str]) -> dict[str, str]:
    """``{spelling: label}`` for labels that differ only in case or spacing ("Network",
    "network ", "NETWORK"): each is counted as its most frequent spelling (the first in
    sorted order on a tie). A label written one way only is not in the result."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for lab in labels:
        counts[" ".join(lab.split()).casefold()][lab] += 1
    canon: dict[str, str] = {}
    for spellings in counts.values():
        if len(spellings) > 1:
            best = min(spellings, key=lambda s: (-spellings[s], s))
            canon.update((s, best) for s in spellings if s != best)
    return canon
