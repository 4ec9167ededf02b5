from __future__ import annotations

import numpy as np
import pytest

from knowledge.documents import Section
from knowledge.suggest import extract_steps, find_section, jaccard, key_terms, merge_similar_causes


def test_extract_steps_keeps_code_and_nesting() -> None:
    text = """Try these:

1. Check the pod:
   ```shell
   kubectl get pod

   kubectl describe pod x
   ```
2. Restart it
   - first drain
   - then restart
3) Verify

Afterwards, tell the team.
"""
    steps = extract_steps(text)
    assert len(steps) == 3
    assert steps[0] == ("Check the pod:\n```shell\nkubectl get pod\n\nkubectl describe pod x\n"
                        "```")
    assert steps[1] == "Restart it\n- first drain\n- then restart"
    assert steps[2] == "Verify"


def test_extract_steps_bullets_and_code_fallback() -> None:
    assert extract_steps("- a\n- b\n* c") == ["a", "b", "c"]
    assert extract_steps("Run this:\n\n```\nfoo --bar\n```\n") == ["Run this:\n```\nfoo --bar\n```"]
    assert extract_steps("Just prose, no steps.") == []


def test_find_section() -> None:
    sections = [
        Section(0, ("T", "Meaning"), "m"),
        Section(1, ("T", "Diagnosis"), "d"),
        Section(2, ("T", "Possible Remediation steps"), "r"),
    ]
    assert find_section(sections).ordinal == 2
    assert find_section(sections, names=("diagnosis",)).ordinal == 1
    assert find_section(sections, names=("rollback",)) is None
    assert find_section([("Fix", "do it")]) == ("Fix", "do it")


def test_merge_similar_causes() -> None:
    causes = [
        ("database host disk is full", 0.7, "INC-2"),
        ("disk full on the db host", 0.9, "INC-1"),
        ("bad deploy of checkout", 0.8, "INC-3"),
        ("", 0.99, "INC-4"),
    ]
    merged = merge_similar_causes(causes, threshold=0.3)
    assert [m.text for m in merged] == ["disk full on the db host", "bad deploy of checkout"]
    assert merged[0].refs == ("INC-1", "INC-2") and merged[0].count == 2
    assert merged[0].variants == ("database host disk is full",)
    vecs = np.eye(4, dtype=np.float32)
    assert len(merge_similar_causes(causes, 0.5, vectors=vecs)) == 3
    with pytest.raises(ValueError):
        merge_similar_causes(causes, 0.5, vectors=vecs[:2])
    assert jaccard("disks full", "disk full") == 1.0


def test_key_terms() -> None:
    assert key_terms("Pods crash-looping in payments namespace", "KubePodCrashLooping namespaces") \
        == ["pods", "crash", "looping", "namespace"]
