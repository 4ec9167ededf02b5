"""Index files: corrupt or missing -> rebuilt from the database at start; a crash while
indexing -> the previous index stays in use (in memory and on disk) and the database is
rolled back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.events import Event, EventKind, EventSource
from bot.knowledge_base import INCIDENTS, RUNBOOKS, KnowledgeBase
from bot.store import repository as repo
from bot.store.db import session_scope
from knowledge.search import HybridIndex
from tests.conftest import copy_data_dir
from tests.faults.helpers import sql

QUERY = "disk full on db-01, /var/lib/postgresql at 100%"


def search_ids(services, name: str, text: str = QUERY) -> list[int]:
    vector = services.embedder.encode([text])[0]
    return [hit.best.id for hit in services.knowledge.search(name, text, vector, k=5)]


def fresh_load(services) -> dict[str, str]:
    """What a restarted process would do with the index files on disk."""
    kb = KnowledgeBase(
        session_factory=services.sessions,
        embedder=services.embedder,
        index_dir=services.settings.index_dir,
    )
    return kb.load()


def test_corrupt_and_missing_index_files_are_rebuilt_at_start(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    from bot.app import build_services
    from tests.faults.conftest import make_settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    runbooks = data_dir / "indexes" / RUNBOOKS
    data_files = [p for p in runbooks.rglob("*") if p.is_file() and p.name != "index.json"]
    assert data_files
    for path in data_files:  # index.json still names a generation whose files are garbage
        path.write_bytes(b"\x00garbage\xff" * 37)
    shutil.rmtree(data_dir / "indexes" / INCIDENTS)
    with pytest.raises(Exception):  # noqa: B017 - any load error: the files are garbage
        HybridIndex.load(runbooks)

    services = build_services(make_settings(data_dir, "http://127.0.0.1:9/api/"))
    try:
        counts = {
            RUNBOOKS: sql(data_dir, "SELECT count(*) FROM runbook_chunks")[0][0],
            INCIDENTS: sql(data_dir, "SELECT count(*) FROM incidents")[0][0],
        }
        assert services.knowledge.sizes() == counts
        assert HybridIndex.load(runbooks).size == counts[RUNBOOKS]
        assert HybridIndex.load(data_dir / "indexes" / INCIDENTS).size == counts[INCIDENTS]
        assert search_ids(services, RUNBOOKS) and search_ids(services, INCIDENTS)
        triage = services.assistant.triage(
            Event(source=EventSource.CLI, kind=EventKind.MESSAGE, text=QUERY)
        )
        assert triage.runbooks and triage.similar
        assert fresh_load(services) == {RUNBOOKS: "loaded", INCIDENTS: "loaded"}
    finally:
        services.close()


def write_runbooks(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"zorp-{i}.md").write_text(
            f"# Zorp service {i} runbook\n\n## Symptoms\n\nzorp-{i} queue stalls.\n\n"
            f"## Fix\n\nRestart zorp-{i} workers.\n",
            encoding="utf-8",
        )
    return folder


def runbook_docs(services, source: str) -> int:
    with session_scope(services.sessions) as session:
        return len(repo.get_runbook_documents(session=session, source=source))


def test_crash_while_embedding_keeps_the_previous_index_and_rolls_back(
    app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = app.services
    knowledge = services.knowledge
    sizes, version = knowledge.sizes(), knowledge.version
    before = search_ids(services, RUNBOOKS)
    calls = {"n": 0}
    real_encode = services.embedder.encode

    def crashing_encode(texts, *args, **kwargs):
        calls["n"] += 1
        if len(texts) > 1:  # the indexing batch, not a query
            raise RuntimeError("embedder crashed mid-indexing (fault injected)")
        return real_encode(texts, *args, **kwargs)

    monkeypatch.setattr(services.embedder, "encode", crashing_encode)
    with pytest.raises(RuntimeError, match="fault injected"):
        knowledge.index_runbooks(write_runbooks(tmp_path / "rb", 3), source="crash-test")
    monkeypatch.undo()

    assert calls["n"] >= 1
    assert runbook_docs(services, "crash-test") == 0  # rolled back
    assert (knowledge.sizes(), knowledge.version) == (sizes, version)
    assert search_ids(services, RUNBOOKS) == before
    assert fresh_load(services) == {RUNBOOKS: "loaded", INCIDENTS: "loaded"}


def test_crash_while_saving_leaves_the_previous_files_loadable(
    app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import knowledge.storage as storage

    services = app.services
    directory = services.settings.index_dir / RUNBOOKS
    old_size = HybridIndex.load(directory).size
    real_fsync = storage.fsync_path
    seen = {"n": 0}

    def crashing_fsync(path):
        seen["n"] += 1
        if seen["n"] == 2:  # after the first file of the new generation was written
            raise OSError("disk went away mid-save (fault injected)")
        return real_fsync(path)

    monkeypatch.setattr(storage, "fsync_path", crashing_fsync)
    with pytest.raises(OSError, match="fault injected"):
        services.knowledge.index_runbooks(write_runbooks(tmp_path / "rb", 2), source="save-crash")
    monkeypatch.undo()

    assert HybridIndex.load(directory).size == old_size  # the previous generation is intact
    assert len(list(directory.glob("gen-*"))) == 1
    # The rows were committed before the save failed: a restart sees the index is out of
    # step with the database and catches up, embedding only the sections it lacks.
    outcome = fresh_load(services)
    missing = sql(services.settings.data_dir, "SELECT count(*) FROM runbook_chunks")[0][0] \
        - old_size
    assert outcome[RUNBOOKS] == f"caught up: {missing} embedded, 0 removed"
    chunks = sql(services.settings.data_dir, "SELECT count(*) FROM runbook_chunks")[0][0]
    assert HybridIndex.load(directory).size == chunks > old_size
