"""`triagebot eval ...` output: with --json, stdout is one JSON object even when the run has
warnings; the warnings go to stderr, one line each."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bot.test_cli import run


def test_eval_json_stays_valid_when_the_run_has_warnings(tmp_path: Path) -> None:
    corpus = tmp_path / "runbooks"
    (corpus / "node").mkdir(parents=True)
    (corpus / "node" / "DiskFull.md").write_text("# Disk full\n\nFree space on the node.\n")
    (corpus / "node" / "CpuHigh.md").write_text("# CPU high\n\nFind the busy process.\n")
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join([
        json.dumps({"query": "the disk is full", "expected": "DiskFull.md"}),
        json.dumps({"query": "cpu is at 100%", "expected": "node/CpuHigh.md"}),
        json.dumps({"query": "memory leak", "expected": "node/Memory.md"}),
        "{broken",
    ]))
    env = {"TRIAGEBOT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    result = run("eval", "retrieval", "--corpus", str(corpus), "--queries", str(queries),
                 "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["gold_not_in_corpus"] == 1 and report["rows_skipped"] == 1
    assert "Traceback" not in result.stderr
    assert "1 unreadable rows skipped" in result.stderr
    assert "node/Memory.md" in result.stderr and "left out of the figures" in result.stderr
