"""Shared fixtures: database URLs for SQLite (always) and PostgreSQL (when configured)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import leak_guard
from tests.postgres import fresh_database

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set"),
            ],
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: SQLite in a temp folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        with fresh_database(POSTGRES_URL) as url:
            yield url


# --- background threads and root log handlers must not outlive their test (tests/leak_guard.py)


def pytest_configure(config: pytest.Config) -> None:
    # a plugin, not hooks of this conftest: those would miss the session-scoped fixtures
    config.pluginmanager.register(leak_guard.LeakGuard(), "leak_guard")


# --- services on the bundled samples (built once per session, copied per user) ------------


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the samples indexed and first models trained (built once)."""
    from bot.app import build_services
    from bot.config import Settings
    from bot.samples import load_samples

    data_dir = tmp_path_factory.mktemp("samples") / "data"
    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False)
    services = build_services(settings)
    load_samples(services)
    services.close()
    return data_dir


def counter_value(counter: Any, **labels: str) -> float:
    """Current value of one labelled prometheus counter, read through its public collect()."""
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == labels:
                return sample.value
    return 0.0


def copy_data_dir(source: Path, dest: Path) -> Path:
    """A private copy of a prepared data folder (SQLite database, indexes, models)."""
    import shutil

    shutil.copytree(source, dest)
    return dest
