from __future__ import annotations

import numpy as np
import pytest

from knowledge.documents import Section
from knowledge.suggest import (
    extract_steps,
    find_section,
    jaccard,
    key_terms,
    merge_similar_causes,
    without_html,
)


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
    assert extract_steps("[1](https://example.org/a)") == []  # a bare reference
    assert extract_steps("TODO") == [] and extract_steps("- TBD.") == []  # placeholders


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


def test_a_mitigation_written_as_prose_gives_its_paragraphs_as_steps() -> None:
    """Most prometheus-operator runbooks write their Mitigation as prose: no steps at all
    came out of them (94 of 112 answers with the right runbook had none)."""
    text = (
        "The mitigation depends on what is causing the Kubelets to become\n"
        "unresponsive. Check for wide-spread networking issues.\n\n"
        "<details>\n\n"
        "See [Kubernetes Docs - kubelet](https://kubernetes.io/docs/kubelet/)\n"
    )
    assert extract_steps(text) == [
        "The mitigation depends on what is causing the Kubelets to become unresponsive. "
        "Check for wide-spread networking issues.",
        "See [Kubernetes Docs - kubelet](https://kubernetes.io/docs/kubelet/)",
    ]


def test_link_references_are_not_steps() -> None:
    refs = "- [fsync](https://man7.org/fsync.2.html)\n- [1](https://etcd.io/docs/)\n"
    assert extract_steps(refs) == []
    intro = "Services that rebalance by themselves:\n\n- [1](https://ceph.io)\n"
    assert extract_steps(intro) == []  # nor is the introduction of a list
    mixed = "- Spread services to other nodes.\n- [Increase TX queue length](https://x.org/tx)\n"
    assert extract_steps(mixed) == [
        "Spread services to other nodes.", "[Increase TX queue length](https://x.org/tx)"]


def test_without_html_drops_tags_and_the_summary_label_but_not_placeholders() -> None:
    text = ("Fires when fsync is slow.\n<details>\n<summary>Full context</summary>\n\n"
            "Every write is fsync'd.<br>\n</details>\nRun `oc debug node/<node-name>`.")
    out = without_html(text)
    assert "<details>" not in out and "</details>" not in out and "<br>" not in out
    assert "Full context" not in out and "<summary>" not in out
    assert "Every write is fsync'd." in out and "<node-name>" in out
