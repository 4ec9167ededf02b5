from __future__ import annotations

import numpy as np
import pytest

from classifiers.embcache import EmbeddingCache
from classifiers.errors import ClassifierError


def test_computes_only_unseen_and_persists(tmp_path, embed):
    calls: list[list[str]] = []

    def counted(texts):
        calls.append(list(texts))
        return embed(texts)

    cache = EmbeddingCache(tmp_path / "c")
    v1 = cache.get_or_compute(["disk full", "vpn down", "disk full"], counted)
    assert calls == [["disk full", "vpn down"]]
    np.testing.assert_array_equal(v1[0], v1[2])
    cache.save()
    again = EmbeddingCache(tmp_path / "c")
    assert len(again) == 2 and "vpn down" in again
    v2 = again.get_or_compute(["vpn down", "printer jam"], counted)
    assert calls[-1] == ["printer jam"]
    np.testing.assert_array_equal(v2[0], v1[1])
    again.save()
    assert len(EmbeddingCache(tmp_path / "c")) == 3


def test_wrong_shape_from_embed_fn(tmp_path):
    cache = EmbeddingCache(tmp_path, dim=4)
    with pytest.raises(ClassifierError, match="shape"):
        cache.get_or_compute(["a"], lambda t: np.zeros((len(t), 3)))
