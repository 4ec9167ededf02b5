"""One set of services for the whole module: samples indexed, models trained (real model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.records import Record

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

# Extra incidents about a made-up system, far from every sample topic, for ranking tests.
EXTRA = [
    # Two recurrences of one problem: near-duplicates (same title once digits go, same cause).
    Record(id="DUP-1", source="incident", title="Quasar ledger export stuck on node 7",
           description="The quasar ledger nightly export hangs at 99% on node 7.",
           root_cause="Export lock file left behind by a killed run.",
           resolution="Removed the stale export lock and re-ran the export.",
           created_at="2025-03-01T10:00:00Z"),
    Record(id="DUP-2", source="incident", title="Quasar ledger export stuck on node 9",
           description="The quasar ledger nightly export hangs at 99% on node 9.",
           root_cause="Export lock file left behind by a killed run.",
           resolution="Removed the stale export lock and re-ran the export.",
           created_at="2025-04-01T10:00:00Z"),
    # Same text, different causes: equal relevance, so the tie-breakers decide.
    Record(id="TIE-OLD-FIX", source="incident", title="Zephyr billing reconciler mismatch",
           description="Zephyr billing reconciler reports totals mismatch for tenant batch.",
           root_cause="Currency table not refreshed.", resolution="Refreshed the currency table.",
           created_at="2024-01-01T10:00:00Z"),
    Record(id="TIE-NEW-FIX", source="incident", title="Zephyr billing reconciler mismatch",
           description="Zephyr billing reconciler reports totals mismatch for tenant batch.",
           root_cause="Rounding mode changed in a release.", resolution="Rolled back the release.",
           created_at="2025-01-01T10:00:00Z"),
    Record(id="TIE-NEW-NOFIX", source="incident", title="Zephyr billing reconciler mismatch",
           description="Zephyr billing reconciler reports totals mismatch for tenant batch.",
           root_cause="Unknown upstream feed delay.", resolution="",
           created_at="2025-06-01T10:00:00Z"),
]
PRIVATE = [
    Record(id="SEC-1", source="incident", title="Quasar ledger export leaked to a public bucket",
           description="The quasar ledger export was written to a public bucket by mistake.",
           root_cause="Bucket policy copied from a public site.",
           resolution="Made the bucket private and rotated the exported credentials."),
]


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from bot.app import build_services
    from bot.config import Settings
    from bot.samples import load_samples

    data_dir = tmp_path_factory.mktemp("assistant") / "data"
    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False)
    svc = build_services(settings)
    load_samples(svc)
    svc.knowledge.import_records(EXTRA, kind="incident", source_name="tests")
    svc.knowledge.import_records(
        PRIVATE, kind="incident", source_name="tests", visibility="private"
    )
    svc.assistant.warm_up()
    yield svc
    svc.close()
