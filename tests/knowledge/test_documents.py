from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.documents import (
    DocumentError,
    document_names,
    html_to_markdown,
    parse_document,
    scan_folder,
    title_from_stem,
)

RUNBOOK = """---
title: Disk Almost Full
alerts: [NodeDiskFull, node_disk_full]
service: storage
---

# NodeDiskFull

Intro text about the disk that is long enough to stand on its own as a section here.

## Diagnosis

Check usage with the commands below, they show the biggest directories first.

```shell
# this is a comment, not a heading
du -sh /var/* | sort -h

df -h
```

## Mitigation

1. Delete old logs.
2. Grow the volume.

### Tiny

ok
"""


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data, encoding="utf-8")
    return p


def test_markdown_front_matter_headings_and_code(tmp_path: Path) -> None:
    doc = parse_document(write(tmp_path, "infra/NodeDiskFull.md", RUNBOOK), tmp_path)
    assert doc.path == "infra/NodeDiskFull.md"
    assert doc.title == "Disk Almost Full"
    assert doc.metadata["service"] == "storage"
    assert doc.metadata["format"] == "markdown"
    paths = [s.heading_path for s in doc.sections]
    assert paths[0] == ("Disk Almost Full", "NodeDiskFull")
    assert ("Disk Almost Full", "NodeDiskFull", "Diagnosis") in paths
    diag = next(s for s in doc.sections if s.heading_path[-1] == "Diagnosis")
    # the code block (with its '#' comment and blank line) stays whole inside one section
    assert "# this is a comment, not a heading" in diag.text
    assert "du -sh" in diag.text and "df -h" in diag.text
    mitigation = next(s for s in doc.sections if s.heading_path[-1] == "Mitigation")
    # the tiny H3 is merged into the section before it
    assert "Tiny: ok" in mitigation.text
    assert [s.ordinal for s in doc.sections] == list(range(len(doc.sections)))
    assert len(doc.content_hash) == 64
    assert document_names(doc)[:2] == ("NodeDiskFull", "node_disk_full")


def test_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    doc = parse_document(write(tmp_path, "a.md", "# Real Title\n\n" + "x " * 50), tmp_path)
    assert doc.title == "Real Title"
    doc = parse_document(write(tmp_path, "KubePodCrashLooping.md", "body " * 30), tmp_path)
    assert doc.title == "Kube Pod Crash Looping"
    assert title_from_stem("disk_full-alert") == "disk full alert"
    assert title_from_stem("etcdGRPCRequestsSlow") == "etcd GRPC Requests Slow"


def test_invalid_front_matter_is_a_note_not_a_crash(tmp_path: Path) -> None:
    doc = parse_document(write(tmp_path, "x.md", "---\ntitle: [oops\n---\n# T\n\n" + "y " * 40),
                         tmp_path)
    assert doc.title == "T"
    assert any("front matter" in n for n in doc.metadata["notes"])


def test_setext_headings(tmp_path: Path) -> None:
    text = "Main\n====\n\nintro " * 1 + "w " * 40 + "\n\nPart\n----\n\n" + "z " * 40
    doc = parse_document(write(tmp_path, "s.md", text), tmp_path)
    assert doc.title == "Main"
    assert doc.sections[-1].heading_path == ("Main", "Part")


def test_html(tmp_path: Path) -> None:
    html = """<html><head><title>VPN Guide</title><style>p{}</style></head><body>
    <h1>VPN Guide</h1><p>How to fix the VPN when it does not connect at all for users.</p>
    <h2>Steps</h2><ol><li>Restart the client</li><li>Run <code>vpn reset</code></li></ol>
    <pre>vpnctl status
vpnctl restart</pre><script>alert(1)</script></body></html>"""
    doc = parse_document(write(tmp_path, "vpn.html", html), tmp_path)
    assert doc.title == "VPN Guide"
    assert doc.metadata["format"] == "html"
    text = "\n".join(s.text for s in doc.sections)
    assert "- Restart the client" in text
    assert "vpnctl status\nvpnctl restart" in text
    assert "alert(1)" not in text and "p{}" not in text
    assert any(s.heading_path[-1] == "Steps" for s in doc.sections)
    md, title = html_to_markdown("<h2>A</h2><p>b</p>")
    assert "## A" in md and title == ""


def test_bad_encoding_falls_back_to_latin1(tmp_path: Path) -> None:
    data = ("# Caf\xe9\n\n" + "r\xe9sum\xe9 du probl\xe8me " * 10).encode("latin-1")
    doc = parse_document(write(tmp_path, "cafe.md", data), tmp_path)
    assert doc.title == "Café"
    assert any("latin-1" in n for n in doc.metadata["notes"])


def test_scan_folder_reports_skipped(tmp_path: Path) -> None:
    write(tmp_path, "good.md", "# Good\n\n" + "text " * 30)
    write(tmp_path, "notes.txt", "plain text runbook " * 10)
    write(tmp_path, "empty.md", "   \n\n")
    write(tmp_path, "image.png", b"\x89PNG\r\n")
    write(tmp_path, "binary.txt", b"abc\x00def")
    write(tmp_path, "big.md", "x" * 5000)
    write(tmp_path, ".hidden/secret.md", "# hidden\n\n" + "text " * 30)
    result = scan_folder(tmp_path, max_bytes=4000)
    assert [d.path for d in result.documents] == ["good.md", "notes.txt"]
    reasons = dict(result.skipped)
    assert reasons["empty.md"] == "empty"
    assert reasons["image.png"].startswith("unsupported type")
    assert "encoding" in reasons["binary.txt"]
    assert reasons["big.md"].startswith("too large")
    assert not any("hidden" in p for p, _ in result.skipped)
    txt = result.documents[1]
    assert txt.title == "notes" and txt.sections[0].heading_path == ("notes",)


def test_parse_document_raises_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="empty"):
        parse_document(write(tmp_path, "e.md", ""), tmp_path)
    assert scan_folder(tmp_path / "missing").skipped[0][1] == "not a directory"


def test_long_sections_are_cut_outside_code(tmp_path: Path) -> None:
    code = "```\n" + "\n\n".join(f"line {i}" for i in range(200)) + "\n```"
    paras = "\n\n".join("word " * 100 for _ in range(10))
    doc = parse_document(write(tmp_path, "long.md", f"# L\n\n{paras}\n\n{code}"), tmp_path)
    assert len(doc.sections) > 1
    assert all(s.heading_path == ("L",) for s in doc.sections)
    assert sum(s.text.count("```") for s in doc.sections) == 2
    assert any(s.text.startswith("```") and s.text.endswith("```") for s in doc.sections)
