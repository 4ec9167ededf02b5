from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import copy_data_dir


@pytest.fixture
def services(sample_data_dir: Path, tmp_path: Path):
    """Services over a private copy of the sample data folder (models trained once)."""
    from bot.app import build_services
    from bot.config import Settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    svc = build_services(Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False))
    yield svc
    svc.close()
