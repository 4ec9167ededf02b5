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

# Approximate configuration (measured with bench/index_scale.py, see docs/benchmarks.md).
DEFAULT_NLIST_FACTOR = 4.0  # nlist ~ factor * sqrt(n) ...
DEFAULT_MAX_NLIST = 4096  # ... capped here
PROBE_SHARE = 1 / 48  # default nprobe: this share of the lists (1M: 84 of 4000) ...
MIN_NPROBE = 16  # ... but at least this many
BY_RESIDUAL = True  # SQ codes store the residual to the list centroid
MIN_PER_LIST = 39  # k-means wants at least this many training vectors per list
TRAIN_PER_LIST = 50  # training sample: this many vectors per list (or all)
SEED = 1234
ADD_CHUNK = 65_536
RECONSTRUCT_CHUNK = 65_536


def _as_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError("ids must be a 1-D sequence of integers")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("ids must be integers")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _member(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` occur in the sorted array ``sorted_ids``."""
    if not len(sorted_ids) or not len(ids):
        return np.zeros(len(ids), dtype=bool)
    pos = np.searchsorted(sorted_ids, ids)
    pos[pos == len(sorted_ids)] = 0
    return sorted_ids[pos] == ids


class VectorIndex:
    """Inner-product index over normalized vectors with int64 ids.

    Exact (``IndexIDMap2(IndexFlatIP)``) up to ``exact_max`` vectors. Beyond that an
    ``IVF<nlist>,SQ<codec>`` index trained on (a sample of) the data, with nlist ~ ``nlist_factor``
    sqrt(n) capped at ``max_nlist`` and ``nprobe`` lists probed per query (default nlist / 48, at
    least 16: 84 of 4000 lists at 1M); retrained when it has grown 8-fold since training.
    Defaults measured with bench/index_scale.py (docs/benchmarks.md: 1M vectors, recall@10
    ~0.998 against exact, ~3 ms CPU per query, ~0.9 GB resident).
    Adding an id that exists replaces its vector. Ids are kept as a sorted int64 array (8 bytes
    each), not a Python set.
    """

    def __init__(
        self,
        model_name: str,
        dim: int,
        *,
        exact_max: int = 50_000,
        nprobe: int | None = None,
        max_nlist: int = DEFAULT_MAX_NLIST,
        codec: str = "fp16",
        nlist_factor: float = DEFAULT_NLIST_FACTOR,
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}")
        if exact_max < 0 or max_nlist < 1 or nlist_factor <= 0:
            raise ValueError("exact_max must be >= 0, max_nlist >= 1 and nlist_factor > 0")
        if nprobe is not None and int(nprobe) < 1:
            raise ValueError("nprobe must be positive")
        self.codec = codec
        self.model_name = model_name
        self.dim = int(dim)
        self.exact_max = int(exact_max)
        self.max_nlist = int(max_nlist)
        self.nlist_factor = float(nlist_factor)
        self._nprobe_override = None if nprobe is None else int(nprobe)
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.kind = "flat"
        self._trained_on = 0
        self._ids = np.zeros(0, dtype=np.int64)  # sorted
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

    @property
    def nlist(self) -> int:
        if self.kind != "ivf":
            return 0
        return int(faiss.extract_index_ivf(self._index).nlist)

    def describe(self) -> str:
        """Short description of the current structure, e.g. ``IVF4096,SQfp16 nprobe=86``."""
        if self.kind != "ivf":
            return "Flat (exact)"
        return f"IVF{self.nlist},SQ{self.codec} nprobe={self.nprobe}"

    def ids(self) -> np.ndarray:
        """All ids currently stored (sorted)."""
        with self._lock:
            return self._ids.copy()

    def __contains__(self, item: object) -> bool:
        try:
            key = np.asarray([item], dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            return False
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            return False
        with self._lock:
            return bool(_member(self._ids, key)[0])

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
        return np.ascontiguousarray(arr)  # no copy when already C-contiguous float32

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
            existing = id_arr[_member(self._ids, id_arr)]
            if len(existing):
                self._remove(existing)
            if self.kind == "flat" and self.size + len(id_arr) > self.exact_max:
                self._build_ivf([self._all_vectors(), (id_arr, vecs)])
                return
            self._index.add_with_ids(vecs, id_arr)
            new = np.sort(id_arr)  # none present any more: a sorted insert keeps ids sorted
            self._ids = np.insert(self._ids, np.searchsorted(self._ids, new), new)
            if self.kind == "ivf" and self.size > 8 * max(self._trained_on, 1):
                self._build_ivf([(self._ids, None)])  # trained on far fewer: retrain

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove ``ids`` (unknown ids are ignored); returns how many were removed."""
        id_arr = np.unique(_as_ids(ids))
        with self._lock:
            present = id_arr[_member(self._ids, id_arr)]
            if not len(present):
                return 0
            return self._remove(present)

    def _remove(self, present: np.ndarray) -> int:
        sel = (faiss.IDSelectorArray(present) if self.kind == "ivf"  # hashtable direct map
               else faiss.IDSelectorBatch(present))
        n = int(self._index.remove_ids(sel))
        self._ids = self._ids[~_member(np.sort(present), self._ids)]
        return n

    def _reconstruct(self, ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), RECONSTRUCT_CHUNK):
            chunk = ids[start:start + RECONSTRUCT_CHUNK]
            out[start:start + len(chunk)] = self._index.reconstruct_batch(chunk)
        return out

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return self._ids.copy(), self._reconstruct(self._ids)

    def _build_ivf(self, parts: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
        """Replace the index by a new IVF one holding ``parts`` = (ids, vectors), vectors None
        meaning "read them from the current index", chunk by chunk (no full float32 copy)."""
        n = sum(len(p[0]) for p in parts)
        nlist, default_nprobe = ivf_params(n, self.max_nlist, self.nlist_factor)
        sample = _training_sample(parts, nlist, self._reconstruct)
        index = new_ivf(self.dim, nlist, self.codec)
        faiss.extract_index_ivf(index).cp.seed = SEED
        index.train(sample)
        del sample
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct/remove by any id
        for part_ids, vecs in parts:
            for start in range(0, len(part_ids), ADD_CHUNK):
                chunk = part_ids[start:start + ADD_CHUNK]
                block = (vecs[start:start + ADD_CHUNK] if vecs is not None
                         else self._index.reconstruct_batch(chunk))
                index.add_with_ids(np.ascontiguousarray(block), chunk)
        index.nprobe = int(self._nprobe_override or default_nprobe)
        self._index = index
        self.kind = "ivf"
        self._trained_on = n
        self._ids = np.unique(np.concatenate([p[0] for p in parts]))

    def set_nprobe(self, nprobe: int) -> None:
        """Lists probed per query by the approximate index (speed/recall trade-off)."""
        if int(nprobe) < 1:
            raise ValueError("nprobe must be positive")
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
        """Top-``k`` (id, inner product) per query row; ``allowed_ids`` restricts the candidates.

        With the approximate index a filter is served exactly (scan of the allowed vectors) when
        it allows at most ``exact_max`` ids; a larger one probes proportionally more lists, and
        rows that still come back short are answered exactly.
        """
        q = self._as_vectors(vectors, model_name)
        if k <= 0 or self.size == 0:
            return [[] for _ in range(len(q))]
        with self._lock:
            k_eff = min(int(k), self.size)
            if allowed_ids is None:
                scores, labels = self._index.search(q, k_eff)
                return _rows(scores, labels)
            allowed = np.unique(_as_ids(allowed_ids))
            allowed = allowed[_member(self._ids, allowed)]
            if not len(allowed):
                return [[] for _ in range(len(q))]
            k_eff = min(k_eff, len(allowed))
            if self.kind == "flat":
                params: Any = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
                scores, labels = self._index.search(q, k_eff, params=params)
                return _rows(scores, labels)
            if len(allowed) <= self.exact_max:
                # IVF probes few lists and would miss most of a small allowed set
                return self._exact_subset(q, allowed, k_eff)
            share = len(allowed) / self.size
            nprobe = min(self.nlist, math.ceil(self.nprobe / share))
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed), nprobe=nprobe)
            scores, labels = self._index.search(q, k_eff, params=params)
            out = _rows(scores, labels)
            short = [r for r, row in enumerate(out) if len(row) < k_eff]
            if short:
                exact = self._exact_subset(q[short], allowed, k_eff)
                for r, row in zip(short, exact, strict=True):
                    out[r] = row
            return out

    def _exact_subset(
        self, q: np.ndarray, allowed: np.ndarray, k: int
    ) -> list[list[tuple[int, float]]]:
        """Exact top-``k`` over the stored vectors of ``allowed`` (read chunk by chunk)."""
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for start in range(0, len(allowed), RECONSTRUCT_CHUNK):
            chunk = allowed[start:start + RECONSTRUCT_CHUNK]
            sims = q @ self._index.reconstruct_batch(chunk).T
            cand_s = np.concatenate([best_s, sims], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(chunk, sims.shape)], axis=1)
            kk = min(k, cand_s.shape[1])
            top = np.argpartition(-cand_s, kk - 1, axis=1)[:, :kk]
            best_s = np.take_along_axis(cand_s, top, axis=1)
            best_i = np.take_along_axis(cand_i, top, axis=1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        return _rows(np.take_along_axis(best_s, order, axis=1),
                     np.take_along_axis(best_i, order, axis=1))

    def reconstruct(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Stored vectors of ``ids`` (approximate after fp16/SQ8 compression)."""
        id_arr = _as_ids(ids)
        with self._lock:
            missing = id_arr[~_member(self._ids, id_arr)]
            if len(missing):
                raise KeyError(f"ids not in index: {missing[:5].tolist()}")
            if not len(id_arr):
                return np.zeros((0, self.dim), np.float32)
            return self._reconstruct(id_arr)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        """Save atomically into ``directory`` (see knowledge.storage)."""
        commit(Path(directory), VECTOR_KIND, self.write_files)

    def write_files(self, folder: Path) -> dict[str, Any]:
        """Write the index files into ``folder`` and return their metadata (no atomicity)."""
        with self._lock:
            faiss.write_index(self._index, str(folder / "vectors.faiss"))
            np.save(folder / "ids.npy", self._ids)
            return {
                "model_name": self.model_name,
                "dim": self.dim,
                "count": int(self.size),
                "index_kind": self.kind,
                "version": VERSION,
                "exact_max": self.exact_max,
                "max_nlist": self.max_nlist,
                "nlist_factor": self.nlist_factor,
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
            nprobe = meta.get("nprobe")
            index = cls(
                str(meta["model_name"]),
                int(meta["dim"]),
                exact_max=int(meta.get("exact_max", 50_000)),
                nprobe=None if nprobe is None else int(nprobe),
                max_nlist=int(meta.get("max_nlist", 4096)),  # 4096: files from before the key
                codec=str(meta.get("codec", "fp16")),
                nlist_factor=float(meta.get("nlist_factor", 4.0)),
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
        ids = np.unique(ids.astype(np.int64, copy=False))
        if len(ids) != raw.ntotal:
            raise IndexCorruptError(f"vector index in {folder} has duplicate ids")
        index._index = raw
        index.kind = str(meta.get("index_kind", "flat"))
        index._trained_on = int(meta.get("trained_on", 0))
        index._ids = ids
        if index.kind == "ivf":
            ivf = faiss.extract_index_ivf(raw)
            if ivf.direct_map.type != faiss.DirectMap.Hashtable:
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            if index._nprobe_override is not None:
                ivf.nprobe = index._nprobe_override
        return index


def _rows(scores: np.ndarray, labels: np.ndarray) -> list[list[tuple[int, float]]]:
    return [
        [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i != -1]
        for row_ids, row_scores in zip(labels, scores, strict=True)
    ]


def ivf_params(
    n: int, max_nlist: int = DEFAULT_MAX_NLIST, nlist_factor: float = DEFAULT_NLIST_FACTOR
) -> tuple[int, int]:
    """(nlist, default nprobe) for ``n`` vectors: nlist ~ ``nlist_factor`` sqrt(n), capped at
    ``max_nlist`` and at one list per ``MIN_PER_LIST`` vectors (k-means needs that many)."""
    nlist = int(min(max_nlist, max(16, nlist_factor * math.sqrt(n))))
    nlist = max(1, min(nlist, n // MIN_PER_LIST))
    nprobe = max(MIN_NPROBE, min(nlist, math.ceil(nlist * PROBE_SHARE)))
    return nlist, nprobe


def new_ivf(dim: int, nlist: int, codec: str) -> Any:
    """Untrained ``IVF<nlist>,SQ<codec>`` inner-product index (owns its flat quantizer)."""
    index = faiss.index_factory(dim, f"IVF{nlist},SQ{codec}", faiss.METRIC_INNER_PRODUCT)
    index.by_residual = BY_RESIDUAL
    return index


def _training_sample(parts: list[tuple[np.ndarray, np.ndarray | None]], nlist: int,
                     read: Any) -> np.ndarray:
    """A uniform sample of ``TRAIN_PER_LIST`` x nlist vectors (or all) across ``parts``;
    vectors given as None are read with ``read(ids)``."""
    n = sum(len(p[0]) for p in parts)
    m = min(n, TRAIN_PER_LIST * nlist)
    rows = np.sort(np.random.default_rng(SEED).choice(n, m, replace=False))
    blocks, offset = [], 0
    for part_ids, vecs in parts:
        mine = rows[(rows >= offset) & (rows < offset + len(part_ids))] - offset
        if len(mine):
            blocks.append(vecs[mine] if vecs is not None else read(part_ids[mine]))
        offset += len(part_ids)
    return np.ascontiguousarray(np.vstack(blocks), dtype=np.float32)


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
