from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.exists():  # the tree may sit beside ../shared (work/main + work/shared)
    SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2, loaded once per test session."""
    from knowledge.embed import Embedder

    return Embedder(threads=2)
