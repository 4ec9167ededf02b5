"""A long import does not lock the SQLite database while it embeds, and alerts that meet a
locked database are spooled in time (202), not refused after they were stored anyway."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.knowledge_base import IMPORT_BATCH, INCIDENTS
from knowledge.records import Record
from tests.conftest import copy_data_dir


def _records(n: int, tag: str = "") -> list[Record]:
    return [Record(id=f"LOCK-{i}", title=f"widget queue {i} stalls{tag}",
                   description=f"consumer {i} of the widget queue stops acknowledging{tag}",
                   team="platform") for i in range(n)]


def _write_now(db: Path) -> str:
    """Try one write from another connection without waiting; "" when it went through."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("CREATE TABLE IF NOT EXISTS other_writer (n INTEGER)")
        con.execute("INSERT INTO other_writer VALUES (1)")
        con.execute("COMMIT")
        return ""
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        con.close()


def test_other_writers_get_through_while_an_import_embeds(sample_data_dir: Path,
                                                          tmp_path: Path) -> None:
    from bot.app import build_services
    from bot.config import Settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    services = build_services(Settings(_env_file=None, data_dir=data_dir,
                                       scheduler_enabled=False))
    db = data_dir / "triagebot.db"
    embedder = services.knowledge.embedder
    real_encode = embedder.encode
    blocked: list[str] = []

    def encode_and_probe(texts, *args, **kwargs):  # the real model, plus a concurrent write
        blocked.append(_write_now(db))
        return real_encode(texts, *args, **kwargs)

    embedder.encode = encode_and_probe
    try:
        size = services.knowledge.sizes()[INCIDENTS]
        records = _records(IMPORT_BATCH + 10)  # two batches
        steps: list[tuple[int, int]] = []
        report = services.knowledge.import_records(
            records, kind="incident", source_name="t", progress=lambda *s: steps.append(s))
        assert report.added == len(records)
        assert steps == [(IMPORT_BATCH, len(records)), (len(records), len(records))]
        assert len(blocked) >= 2 and all(not b for b in blocked), blocked
        assert services.knowledge.sizes()[INCIDENTS] == size + len(records)
        query = "widget queue 3 stalls"
        hits = services.knowledge.search(INCIDENTS, query, real_encode([query])[0], k=3)
        assert any(h.best.title == query for h in hits)

        # again, unchanged: nothing is embedded; one record changed: only its text is
        blocked.clear()
        report = services.knowledge.import_records(records, kind="incident", source_name="t")
        assert (report.added, report.updated, report.unchanged) == (0, 0, len(records))
        assert blocked == []
        changed = [*records[:5], *_records(1, tag=" again")]
        report = services.knowledge.import_records(changed, kind="incident", source_name="t")
        assert (report.updated, report.unchanged) == (1, 5)
        assert len(blocked) == 1
    finally:
        embedder.encode = real_encode
        services.close()
