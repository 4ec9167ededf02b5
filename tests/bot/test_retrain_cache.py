"""Retraining embeds only texts it has not embedded before (the on-disk embedding cache)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_data_dir


def test_second_retrain_embeds_nothing_and_a_broken_cache_is_bypassed(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    from bot.app import build_services
    from bot.config import Settings

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    services = build_services(Settings(_env_file=None, data_dir=data_dir,
                                       scheduler_enabled=False))
    try:
        clf = services.classifiers
        embedded: list[int] = []
        real_encode = clf.embedder.encode

        def counting(texts):
            embedded.append(len(texts))
            return real_encode(texts)

        clf.embedder.encode = counting  # type: ignore[method-assign]
        shutil.rmtree(clf.models_dir / "embcache", ignore_errors=True)  # start cold
        first = clf.train("category", actor="test", force=True)
        assert sum(embedded) > 0
        embedded.clear()
        second = clf.train("category", actor="test", force=True)
        assert embedded == []  # same training texts: all from the cache
        # same vectors, same model, same figures (the calibration error, computed from
        # probabilities, may differ around the 6th digit: float32 summation order across fits)
        assert second.challenger == pytest.approx(first.challenger, abs=1e-4)

        folders = list((clf.models_dir / "embcache").iterdir())
        assert len(folders) == 1 and clf.embedder.model_name.split("/")[-1][:20] in folders[0].name
        (folders[0] / "index.txt").write_text("not-a-key\n", encoding="ascii")  # inconsistent
        embedded.clear()
        third = clf.train("category", actor="test", force=True)
        assert sum(embedded) > 0  # embedded afresh
        assert third.challenger == pytest.approx(first.challenger, abs=1e-4)
    finally:
        services.close()
