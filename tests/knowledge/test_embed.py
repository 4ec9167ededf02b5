from __future__ import annotations

import numpy as np
import pytest


def test_encode_shapes_and_norms(embedder) -> None:
    v = embedder.encode(["disk is full", "x" * 50_000, ""])
    assert v.shape == (3, embedder.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:2], axis=1), 1.0, atol=1e-4)
    assert embedder.encode([]).shape == (0, embedder.dim)
    one = embedder.encode_one("disk is full")
    assert one.shape == (embedder.dim,) and float(one @ v[0]) > 0.999
    assert embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(TypeError):
        embedder.encode("a string, not a list")


def test_semantics(embedder) -> None:
    a, b, c = embedder.encode(
        ["the disk is full", "no space left on device", "user forgot password"])
    assert float(a @ b) > float(a @ c)


def test_loading_the_model_draws_no_progress_bar_and_keeps_warnings(capfd) -> None:
    from transformers.utils import logging as transformers_logging

    from knowledge.embed import Embedder

    transformers_logging.enable_progress_bar()  # as in a fresh process
    verbosity = transformers_logging.get_verbosity()
    Embedder()
    assert "Loading weights" not in capfd.readouterr().err
    assert transformers_logging.get_verbosity() == verbosity  # warnings are not silenced
