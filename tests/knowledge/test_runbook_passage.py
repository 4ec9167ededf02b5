"""bot.knowledge_base.runbook_passage: alert names from any shape of front matter."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge_base import runbook_passage
from bot.store.models import RunbookChunk, RunbookDocument
from knowledge.documents import parse_document

BODY = "# Disk Full\n\n## Mitigation\n\n" + "Remove old log files. " * 10 + "\n"


def passage_for(tmp_path: Path, rel: str, front_matter: str):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front_matter}\n---\n{BODY}", encoding="utf-8")
    doc = parse_document(path, tmp_path)
    row = RunbookDocument(id=1, source="ops", path=doc.path, title=doc.title,
                          content_hash=doc.content_hash, meta=doc.metadata, visibility="public")
    chunk = RunbookChunk(id=7, document_id=1, ordinal=0,
                         heading_path=list(doc.sections[0].heading_path),
                         text=doc.sections[0].text)
    return runbook_passage(chunk, row)


@pytest.mark.parametrize(("front_matter", "expected"), [
    ("alerts: DiskFull", ("DiskFull", "disk")),  # a string, not iterated char by char
    ("alerts: 5", ("5", "disk")),  # an int: used to raise TypeError
    ("alerts: [NodeDiskFull, DiskFull]", ("NodeDiskFull", "DiskFull", "disk")),
    ("alerts: NodeDiskFull\naliases: [disk_full]", ("NodeDiskFull", "disk_full", "disk")),
    ("service: storage", ("disk",)),
])
def test_alert_names_from_front_matter(tmp_path: Path, front_matter: str, expected) -> None:
    p = passage_for(tmp_path, "infra/disk.md", front_matter)
    assert p.names == expected
    assert p.id == 7 and p.doc_key == "ops:infra/disk.md" and p.kind == "runbook"


def test_stem_is_not_repeated_when_it_is_an_alert_name(tmp_path: Path) -> None:
    p = passage_for(tmp_path, "infra/DiskFull.md", "alerts: DiskFull\nservice: storage")
    assert p.names == ("DiskFull",)
    assert p.service == "storage"
