"""On-disk cache of text embeddings keyed by sha256(text); storage only.

Files in ``directory``: ``vectors.npy`` (float32, n x dim) and ``index.txt`` (one sha256 hex
digest per line, row i of the matrix). The caller supplies the embedding function.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifiers.errors import ClassifierError

EmbedFn = Callable[[list[str]], np.ndarray]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Append-only embedding store; :meth:`save` writes both files atomically."""

    def __init__(self, directory: str | Path, dim: int = 384) -> None:
        self.directory = Path(directory)
        self.dim = dim
        self._keys: list[str] = []
        self._row: dict[str, int] = {}
        self._base = np.empty((0, dim), dtype=np.float32)
        self._new: list[np.ndarray] = []
        self._n_new = 0
        self.hits = 0
        self.misses = 0
        self._load()

    @property
    def vectors_path(self) -> Path:
        return self.directory / "vectors.npy"

    @property
    def index_path(self) -> Path:
        return self.directory / "index.txt"

    def _load(self) -> None:
        if not self.vectors_path.exists() or not self.index_path.exists():
            return
        keys = self.index_path.read_text(encoding="ascii").split()
        vecs = np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)
        if vecs.ndim != 2 or vecs.shape != (len(keys), self.dim):
            raise ClassifierError(
                f"embedding cache {self.directory} is inconsistent: {len(keys)} keys, "
                f"vectors {vecs.shape}, expected dim {self.dim}")
        self._keys = keys
        self._row = {k: i for i, k in enumerate(keys)}
        self._base = vecs

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._row

    def _matrix(self) -> np.ndarray:
        if self._new:
            self._base = np.concatenate([np.asarray(self._base), *self._new])
            self._new = []
        return self._base

    def get_or_compute(self, texts: Sequence[str], embed: EmbedFn,
                       batch_size: int = 256) -> np.ndarray:
        """Embeddings for ``texts`` (n x dim float32), computing only the unseen ones."""
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self._row and k not in missing:
                missing[k] = t
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        todo = list(missing.items())
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            vecs = np.asarray(embed([t for _, t in chunk]), dtype=np.float32)
            if vecs.shape != (len(chunk), self.dim):
                raise ClassifierError(
                    f"embed function returned shape {vecs.shape}, expected ({len(chunk)}, "
                    f"{self.dim})")
            base = len(self._keys)
            for j, (k, _) in enumerate(chunk):
                self._row[k] = base + j
                self._keys.append(k)
            self._new.append(vecs)
            self._n_new += len(chunk)
        matrix = self._matrix()
        rows = np.fromiter((self._row[k] for k in keys), dtype=np.int64, count=len(keys))
        return np.asarray(matrix[rows], dtype=np.float32)

    def save(self) -> None:
        """Persist new entries (no-op when nothing was added)."""
        if self._n_new == 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        matrix = np.ascontiguousarray(self._matrix(), dtype=np.float32)
        # unique temporary names: two processes (CLI and server) may save at the same time
        suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
        tmp_v = self.vectors_path.with_name(self.vectors_path.name + suffix)
        tmp_i = self.index_path.with_name(self.index_path.name + suffix)
        with tmp_v.open("wb") as f:
            np.save(f, matrix, allow_pickle=False)
        tmp_i.write_text("\n".join(self._keys) + "\n", encoding="ascii")
        os.replace(tmp_v, self.vectors_path)
        os.replace(tmp_i, self.index_path)
        self._base = np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)
        self._n_new = 0
