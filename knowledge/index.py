"""Vector (FAISS) and lexical (BM25) indexes keyed by the caller's int64 ids."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from knowledge.storage import IndexCorruptError, IndexMismatchError, commit, open_current
from knowledge.text import tokenize

__all__ = ["IndexCorruptError", "IndexMismatchError", "LexicalIndex", "VectorIndex"]

VECTOR_KIND = "vector-index"
LEXICAL_KIND = "lexical-index"
VERSION = 1
CODECS = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}


def _as_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError("ids must be a 1-D sequence of integers")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("ids must be integers")
    return np.ascontiguousarray(arr, dtype=np.int64)


class VectorIndex:
    """Inner-product index over normalized vectors with int64 ids.

    Exact (``IndexIDMap2(IndexFlatIP)``) up to ``exact_max`` vectors; beyond that an
    ``IVF<nlist>,SQ8`` index trained on the data (nlist ~ 4 sqrt(n), capped at 4096) searched with
    ``nprobe`` lists. Adding an id that exists replaces its vector.
    """

    def __init__(
        self,
        model_name: str,
        dim: int,
        *,
        exact_max: int = 50_000,
        nprobe: int | None = None,
        max_nlist: int = 4096,
        codec: str = "fp16",
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}")
        self.codec = codec
        self.model_name = model_name
        self.dim = int(dim)
        self.exact_max = int(exact_max)
        self.max_nlist = int(max_nlist)
        self._nprobe_override = nprobe
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.kind = "flat"
        self._trained_on = 0
        self._ids: set[int] = set()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def nprobe(self) -> int:
        if self.kind != "ivf":
            return 0
        return int(faiss.extract_index_ivf(self._index).nprobe)

    def ids(self) -> np.ndarray:
        """All ids currently stored (sorted)."""
        with self._lock:
            return np.array(sorted(self._ids), dtype=np.int64)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    # ------------------------------------------------------------------ checks
    def check_compatible(self, *, model_name: str | None = None, dim: int | None = None) -> None:
        """Raise IndexMismatchError when ``model_name`` / ``dim`` differ from this index's."""
        if model_name is not None and model_name != self.model_name:
            raise IndexMismatchError(
                f"index built with model {self.model_name!r}, got vectors from {model_name!r}"
            )
        if dim is not None and int(dim) != self.dim:
            raise IndexMismatchError(f"index has dimension {self.dim}, got vectors of {dim}")

    def _as_vectors(self, vectors: np.ndarray, model_name: str | None) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ValueError("vectors must be a 2-D array (n, dim)")
        self.check_compatible(model_name=model_name, dim=arr.shape[1])
        if not np.isfinite(arr).all():
            raise ValueError("vectors contain NaN or infinite values")
        return np.ascontiguousarray(arr)

    # ------------------------------------------------------------------ mutation
    def add(
        self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, *, model_name: str | None = None
    ) -> None:
        """Add (or replace) vectors under ``ids``."""
        id_arr = _as_ids(ids)
        vecs = self._as_vectors(vectors, model_name)
        if len(id_arr) != len(vecs):
            raise ValueError(f"{len(id_arr)} ids but {len(vecs)} vectors")
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("ids contain duplicates")
        if not len(id_arr):
            return
        with self._lock:
            existing = [int(i) for i in id_arr if int(i) in self._ids]
            if existing:
                self._remove(np.asarray(existing, dtype=np.int64))
            if self.kind == "flat" and self.size + len(id_arr) > self.exact_max:
                old_ids, old_vecs = self._all_vectors()
                self._build_ivf(np.concatenate([old_ids, id_arr]), np.vstack([old_vecs, vecs]))
                return
            self._index.add_with_ids(vecs, id_arr)
            self._ids.update(int(i) for i in id_arr)
            if self.kind == "ivf" and self.size > 8 * max(self._trained_on, 1):
                self._build_ivf(*self._all_vectors())  # trained on far fewer vectors: retrain

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove ``ids`` (unknown ids are ignored); returns how many were removed."""
        id_arr = _as_ids(ids)
        with self._lock:
            present = np.asarray([int(i) for i in id_arr if int(i) in self._ids], dtype=np.int64)
            if not len(present):
                return 0
            return self._remove(present)

    def _remove(self, present: np.ndarray) -> int:
        sel = (faiss.IDSelectorArray(present) if self.kind == "ivf"  # hashtable direct map
               else faiss.IDSelectorBatch(present))
        n = int(self._index.remove_ids(sel))
        self._ids.difference_update(int(i) for i in present)
        return n

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array(sorted(self._ids), dtype=np.int64)
        vecs = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), 65536):
            chunk = ids[start:start + 65536]
            vecs[start:start + len(chunk)] = self._index.reconstruct_batch(chunk)
        return ids, vecs

    def _build_ivf(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        self._index = build_ivf(
            vecs, ids, codec=self.codec, max_nlist=self.max_nlist, nprobe=self._nprobe_override)
        self.kind = "ivf"
        self._trained_on = len(ids)
        self._ids = {int(i) for i in ids}

    def set_nprobe(self, nprobe: int) -> None:
        """Lists probed per query by the approximate index (speed/recall trade-off)."""
        self._nprobe_override = int(nprobe)
        if self.kind == "ivf":
            faiss.extract_index_ivf(self._index).nprobe = int(nprobe)

    # ------------------------------------------------------------------ search
    def search(
        self,
        vectors: np.ndarray,
        k: int,
        *,
        model_name: str | None = None,
        allowed_ids: Sequence[int] | np.ndarray | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top-``k`` (id, inner product) per query row; ``allowed_ids`` restricts the candidates."""
        q = self._as_vectors(vectors, model_name)
        if k <= 0 or self.size == 0:
            return [[] for _ in range(len(q))]
        kwargs: dict[str, Any] = {}
        with self._lock:
            k_eff = min(int(k), self.size)
            if allowed_ids is not None:
                allowed = np.asarray(
                    [int(i) for i in _as_ids(allowed_ids) if int(i) in self._ids], dtype=np.int64)
                if not len(allowed):
                    return [[] for _ in range(len(q))]
                if self.kind == "ivf" and len(allowed) <= self.exact_max:
                    # IVF probes few lists and would miss most of a small allowed set
                    return _brute_force(q, allowed, self._index.reconstruct_batch(allowed), k)
                sel = faiss.IDSelectorBatch(allowed)
                if self.kind == "ivf":
                    params: Any = faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
                else:
                    params = faiss.SearchParameters(sel=sel)
                kwargs["params"] = params
                k_eff = min(k_eff, len(allowed))
            scores, labels = self._index.search(q, k_eff, **kwargs)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i != -1]
            for row_ids, row_scores in zip(labels, scores, strict=True)
        ]

    def reconstruct(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (approximate after SQ8 compression)."""
        id_arr = _as_ids(ids)
        missing = [int(i) for i in id_arr if int(i) not in self._ids]
        if missing:
            raise KeyError(f"ids not in index: {missing[:5]}")
        with self._lock:
            return self._index.reconstruct_batch(id_arr) if len(id_arr) else np.zeros(
                (0, self.dim), np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        """Save atomically into ``directory`` (see knowledge.storage)."""
        commit(Path(directory), VECTOR_KIND, self.write_files)

    def write_files(self, folder: Path) -> dict[str, Any]:
        """Write the index files into ``folder`` and return their metadata (no atomicity)."""
        with self._lock:
            faiss.write_index(self._index, str(folder / "vectors.faiss"))
            ids = np.array(sorted(self._ids), dtype=np.int64)
            np.save(folder / "ids.npy", ids)
            return {
                "model_name": self.model_name,
                "dim": self.dim,
                "count": int(self.size),
                "index_kind": self.kind,
                "version": VERSION,
                "exact_max": self.exact_max,
                "max_nlist": self.max_nlist,
                "codec": self.codec,
                "nprobe": self._nprobe_override,
                "trained_on": self._trained_on,
                "faiss_bytes": (folder / "vectors.faiss").stat().st_size,
                "faiss_version": faiss.__version__,
            }

    @classmethod
    def load(
        cls, directory: Path, *, model_name: str | None = None, dim: int | None = None
    ) -> VectorIndex:
        """Load a saved index; IndexCorruptError when unusable, IndexMismatchError when foreign."""
        folder, meta = open_current(Path(directory), VECTOR_KIND)
        index = cls.read_files(folder, meta)
        index.check_compatible(model_name=model_name, dim=dim)
        return index

    @classmethod
    def read_files(cls, folder: Path, meta: dict[str, Any]) -> VectorIndex:
        try:
            index = cls(
                str(meta["model_name"]),
                int(meta["dim"]),
                exact_max=int(meta.get("exact_max", 50_000)),
                nprobe=meta.get("nprobe"),
                max_nlist=int(meta.get("max_nlist", 4096)),
                codec=str(meta.get("codec", "fp16")),
            )
            path = folder / "vectors.faiss"
            if path.stat().st_size != int(meta["faiss_bytes"]):
                raise IndexCorruptError(f"{path} has the wrong size (truncated?)")
            raw = faiss.read_index(str(path))
            ids = np.load(folder / "ids.npy", allow_pickle=False)
        except IndexCorruptError:
            raise
        except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
            raise IndexCorruptError(f"cannot read vector index in {folder}: {exc}") from exc
        if raw.d != index.dim or raw.ntotal != int(meta["count"]) or len(ids) != raw.ntotal:
            raise IndexCorruptError(f"vector index in {folder} is inconsistent with its metadata")
        index._index = raw
        index.kind = str(meta.get("index_kind", "flat"))
        index._trained_on = int(meta.get("trained_on", 0))
        index._ids = {int(i) for i in ids}
        if index.kind == "ivf":
            ivf = faiss.extract_index_ivf(raw)
            if ivf.direct_map.type != faiss.DirectMap.Hashtable:
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return index


def _brute_force(
    q: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int
) -> list[list[tuple[int, float]]]:
    sims = q @ vecs.T
    k = min(k, len(ids))
    out = []
    for row in sims:
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        out.append([(int(ids[t]), float(row[t])) for t in top])
    return out


def ivf_params(n: int, max_nlist: int = 4096) -> tuple[int, int]:
    """(nlist, nprobe) for ``n`` vectors: nlist ~ 4 sqrt(n), at least 39 training points each."""
    nlist = int(min(max_nlist, max(16, 4 * math.sqrt(n))))
    nlist = max(1, min(nlist, n // 39))
    nprobe = max(8, min(nlist, round(nlist / 20)))  # 1M: 205 of 4096 lists (bench/index_scale.py)
    return nlist, nprobe


def build_ivf(
    vectors: np.ndarray,
    ids: np.ndarray,
    *,
    codec: str = "fp16",
    max_nlist: int = 4096,
    nprobe: int | None = None,
    train_max: int = 200_000,
    seed: int = 1234,
) -> Any:
    """Train an ``IVF<nlist>,SQ`` inner-product index on (a sample of) ``vectors``; fill it."""
    n, dim = vectors.shape
    nlist, default_nprobe = ivf_params(n, max_nlist)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, CODECS[codec], faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    sample = vectors if n <= train_max else vectors[rng.choice(n, train_max, replace=False)]
    index.cp.seed = seed
    index.train(np.ascontiguousarray(sample))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct/remove by arbitrary id
    for start in range(0, n, 100_000):
        index.add_with_ids(vectors[start:start + 100_000], ids[start:start + 100_000])
    index.nprobe = int(nprobe or default_nprobe)
    return index


class LexicalIndex:
    """BM25 (bm25s) over tokenized texts with int64 ids; rebuilt as a whole by :meth:`build`."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, stemming: bool = True) -> None:
        self.k1, self.b, self.stemming = k1, b, stemming
        self._ids = np.zeros(0, dtype=np.int64)
        self._retriever: Any = None
        self._row: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, stemming=self.stemming)

    def build(self, ids: Sequence[int] | np.ndarray, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        id_arr = _as_ids(ids)
        if len(id_arr) != len(texts):
            raise ValueError(f"{len(id_arr)} ids but {len(texts)} texts")
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("ids contain duplicates")
        self._ids = id_arr
        self._row = {int(i): r for r, i in enumerate(id_arr)}
        if not len(id_arr):
            self._retriever = None
            return self
        corpus = [self.tokenize(t) or [""] for t in texts]
        retriever = bm25s.BM25(k1=self.k1, b=self.b)
        retriever.index(corpus, show_progress=False)
        self._retriever = retriever
        return self

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every stored text (aligned with :attr:`ids`)."""
        out = np.zeros(len(self._ids), dtype=np.float32)
        if self._retriever is None:
            return out
        vocab = self._retriever.vocab_dict
        tokens = [t for t in self.tokenize(text) if t in vocab]
        if not tokens:
            return out
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)

    def search(self, text: str, k: int) -> list[tuple[int, float]]:
        """Top-``k`` (id, score) with a positive score."""
        s = self.scores(text)
        if k <= 0 or not len(s):
            return []
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [(int(self._ids[r]), float(s[r])) for r in top if s[r] > 0]

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        commit(Path(directory), LEXICAL_KIND, self.write_files)

    def write_files(self, folder: Path) -> dict[str, Any]:
        np.save(folder / "lexical_ids.npy", self._ids)
        if self._retriever is not None:
            self._retriever.save(str(folder / "bm25"))
        return {"count": self.size, "k1": self.k1, "b": self.b, "stemming": self.stemming,
                "version": VERSION}

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        folder, meta = open_current(Path(directory), LEXICAL_KIND)
        return cls.read_files(folder, meta)

    @classmethod
    def read_files(cls, folder: Path, meta: dict[str, Any]) -> LexicalIndex:
        import bm25s

        try:
            index = cls(k1=float(meta["k1"]), b=float(meta["b"]), stemming=bool(meta["stemming"]))
            ids = np.load(folder / "lexical_ids.npy", allow_pickle=False)
            retriever = bm25s.BM25.load(str(folder / "bm25")) if len(ids) else None
        except (KeyError, TypeError, ValueError, OSError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"cannot read lexical index in {folder}: {exc}") from exc
        if len(ids) != int(meta["count"]) or (
            retriever is not None and int(retriever.scores["num_docs"]) != len(ids)
        ):
            raise IndexCorruptError(f"lexical index in {folder} is inconsistent with its metadata")
        index._ids = ids.astype(np.int64)
        index._row = {int(i): r for r, i in enumerate(index._ids)}
        index._retriever = retriever
        return index
