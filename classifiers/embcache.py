"""On-disk cache of text embeddings keyed by sha256(text); storage only.

Each save writes one *generation*: ``vectors.<gen>.npy`` (float32, n x dim) and
``index.<gen>.txt`` (one sha256 hex digest per line, row i of the matrix); the file
``current`` names the generation to read and is replaced atomically last. Several processes
(replicas sharing the models volume, a CLI beside the server) may save at once: the last
pointer wins, and a reader always gets a vectors file and an index written together (two
fixed-name files replaced one after the other could pair one save's vectors with another's
index, with the same shape). Generations not current are removed once they are
``STALE_SECONDS`` old. The caller supplies the embedding function.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifiers.errors import ClassifierError

EmbedFn = Callable[[list[str]], np.ndarray]
STALE_SECONDS = 600.0
_GENERATION = re.compile(r"[0-9]{1,24}-[0-9]{1,10}-[0-9]{1,24}")
# the files of a generation, the pointer's temporary file, and the fixed names of before
_GENERATION_FILE = re.compile(
    r"(?:vectors|index|current)(?:\.(?P<gen>[0-9]{1,24}-[0-9]{1,10}-[0-9]{1,24}))?"
    r"(?:\.npy|\.txt)?(?:\.[0-9]{1,10}\.[0-9]{1,24})?(?:\.tmp)?")


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
    def pointer_path(self) -> Path:
        return self.directory / "current"

    def _pair(self, generation: str) -> tuple[Path, Path]:
        if not generation:  # before generations: fixed names
            return self.directory / "vectors.npy", self.directory / "index.txt"
        return (self.directory / f"vectors.{generation}.npy",
                self.directory / f"index.{generation}.txt")

    def _current_generation(self) -> str | None:
        """The generation to read: "" for the fixed-name files of older versions, None for an
        empty cache."""
        try:
            generation = self.pointer_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            vectors, index = self._pair("")
            return "" if vectors.exists() and index.exists() else None
        if not _GENERATION.fullmatch(generation):
            raise ClassifierError(f"embedding cache {self.directory}: bad pointer {generation!r}")
        return generation

    def _load(self) -> None:
        for _ in range(3):  # the generation read may be removed by then: read the pointer again
            generation = self._current_generation()
            if generation is None:
                return
            vectors_path, index_path = self._pair(generation)
            try:
                keys = index_path.read_text(encoding="ascii").split()
                vecs = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                continue
            if vecs.ndim != 2 or vecs.shape != (len(keys), self.dim):
                raise ClassifierError(
                    f"embedding cache {self.directory} is inconsistent: {len(keys)} keys, "
                    f"vectors {vecs.shape}, expected dim {self.dim}")
            self._keys = keys
            self._row = {k: i for i, k in enumerate(keys)}
            self._base = vecs
            return
        raise ClassifierError(f"embedding cache {self.directory}: its files keep disappearing")

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
        """Persist the cache as a new generation (no-op when nothing was added)."""
        if self._n_new == 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        matrix = np.ascontiguousarray(self._matrix(), dtype=np.float32)
        generation = f"{time.time_ns()}-{os.getpid()}-{threading.get_ident()}"
        vectors_path, index_path = self._pair(generation)
        with vectors_path.open("wb") as f:
            np.save(f, matrix, allow_pickle=False)
        index_path.write_text("\n".join(self._keys) + "\n", encoding="ascii")
        pointer_tmp = self.pointer_path.with_name(f"current.{generation}.tmp")
        pointer_tmp.write_text(generation + "\n", encoding="ascii")
        os.replace(pointer_tmp, self.pointer_path)
        # this generation pairs with self._keys, whatever another process made current since
        self._base = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
        self._n_new = 0
        self._remove_stale(keep=generation)

    def _remove_stale(self, keep: str) -> None:
        """Remove generations (and fixed-name files) that are neither current nor recent: a
        recent one may be another process's save that is about to become current."""
        current = self._current_generation()
        cutoff = time.time() - STALE_SECONDS
        for path in self.directory.iterdir():
            match = _GENERATION_FILE.fullmatch(path.name)
            if match is None or path == self.pointer_path:
                continue
            if (match.group("gen") or "") in (keep, current):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:  # another process removed it first
                pass
