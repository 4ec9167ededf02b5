"""Hybrid retrieval: dense (FAISS) + lexical (BM25) over sections and whole documents.

Every document (``doc_key``) gets five signals, each in [0, 1]:

* ``dense_sec``: best cosine between the query and one of its passages,
* ``dense_doc``: cosine between the query and the mean of its passage vectors,
* ``lex_sec`` / ``lex_doc``: BM25 of its best passage / of all its text, divided by the best
  BM25 score of this query,
* ``name``: 1 when a query token (or an explicit ``names`` value) equals one of the document's
  names or its title once case and punctuation are ignored (``KubePodCrashLooping`` ==
  ``Kube Pod Crash Looping``).

The score is their weighted sum (:class:`FusionWeights`, chosen by measurement; see
docs/evaluation.md), or reciprocal-rank fusion when ``fusion="rrf"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.index import LexicalIndex, VectorIndex
from knowledge.storage import IndexCorruptError, IndexMismatchError, commit, open_current
from knowledge.suggest import key_terms
from knowledge.text import name_candidates, name_key, normalize_name, tokenize

__all__ = [
    "DocumentHit", "FusionWeights", "HybridIndex", "IndexCorruptError", "IndexMismatchError",
    "Passage", "passage_text_for_embedding", "passage_text_for_lexical",
]

HYBRID_KIND = "hybrid-index"
EMBED_TEXT_CHARS = 2000


@dataclass(frozen=True)
class Passage:
    id: int
    doc_key: str
    kind: str  # e.g. "runbook", "incident", "ticket"
    title: str  # document title
    section: str  # heading path below the title, e.g. "Diagnosis > Logs" ("" for the whole text)
    text: str
    service: str = ""
    source: str = ""
    visibility: str = "public"
    names: tuple[str, ...] = ()  # exact identifiers the document is about (alert names, ...)


@dataclass(frozen=True)
class DocumentHit:
    doc_key: str
    score: float
    best: Passage
    dense: float  # best passage cosine
    lexical: float  # normalized BM25 (best of passage and document level)
    reasons: tuple[str, ...]
    named: bool = False  # one of its names (or its title) is named by the query or caller


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the six signals. Defaults measured with reciprocal-rank fusion on the
    prometheus-operator runbook set (see docs/evaluation.md): document-level BM25 carries most,
    best-section cosine adds meaning, exact names and title coverage add on top of the ranks."""

    dense_sec: float = 0.2
    dense_doc: float = 0.0
    lex_sec: float = 0.0
    lex_doc: float = 0.5
    name: float = 0.6
    title: float = 0.1
    # The title bonus counts only when at least this share of the title's (idf-weighted) words
    # is in the query: a title that merely shares one word ("VPN cannot *connect*" for an
    # alert about TLS clients "connecting") must not outrank the right runbook.
    title_min_coverage: float = 0.6


FEATURES = ("dense_sec", "dense_doc", "lex_sec", "lex_doc", "name", "title")

_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")


def _clean(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _heading(p: Passage) -> str:
    head = p.title
    if p.section and normalize_name(p.section) != normalize_name(p.title):
        head = f"{head} > {p.section}" if head else p.section
    extra = [n for n in p.names if normalize_name(n) != normalize_name(p.title)]
    if extra:
        head = f"{head} ({', '.join(extra)})"
    return head


def passage_text_for_embedding(p: Passage) -> str:
    """What the caller embeds for ``p``: title, heading path and names, then the cleaned text."""
    body = _clean(p.text)
    text = f"{_heading(p)}\n{body}" if body else _heading(p)
    return text[:EMBED_TEXT_CHARS]


def passage_text_for_lexical(p: Passage) -> str:
    """What BM25 indexes for ``p`` (headings and names included, code kept)."""
    return f"{_heading(p)}\n{p.text}"


def _digest(p: Passage, vector: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps(asdict(p), sort_keys=True, default=list).encode())
    h.update(np.asarray(vector, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


@dataclass
class _Derived:
    """Structures rebuilt after a change (lazily, on the next search)."""

    order: np.ndarray  # passage ids, aligned with the arrays below
    row: dict[int, int]
    doc_of: np.ndarray  # doc index per passage row
    doc_keys: list[str]
    doc_rows: list[np.ndarray]  # passage rows per doc
    doc_names: list[set[str]]
    doc_title_terms: list[dict[str, float]]  # title token -> idf
    kinds: np.ndarray
    services: np.ndarray
    sources: np.ndarray
    visibilities: np.ndarray
    lex_sec: LexicalIndex
    lex_doc: LexicalIndex
    vis_values: list[str] = field(default_factory=list)
    doc_index: dict[str, int] = field(default_factory=dict)
    doc_freq: dict[str, int] = field(default_factory=dict)  # stemmed token -> documents
    name_docs: dict[str, list[int]] = field(default_factory=dict)  # normalized name -> docs


class HybridIndex:
    """Passages with their vectors; search returns one :class:`DocumentHit` per document."""

    def __init__(
        self,
        model_name: str,
        dim: int,
        *,
        exact_max: int = 50_000,
        weights: FusionWeights | None = None,
        fusion: str = "rrf",
        dense_candidates: int = 100,
        rrf_k: int = 60,
    ) -> None:
        if fusion not in ("linear", "rrf"):
            raise ValueError("fusion must be 'linear' or 'rrf'")
        self.model_name = model_name
        self.dim = int(dim)
        self.weights = weights or FusionWeights()
        self.fusion = fusion
        self.dense_candidates = int(dense_candidates)
        self.rrf_k = int(rrf_k)
        self._vectors = VectorIndex(model_name, dim, exact_max=exact_max)
        self._passages: dict[int, Passage] = {}
        self._digests: dict[int, str] = {}
        self._derived: _Derived | None = None
        self._version: str | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ state
    @property
    def size(self) -> int:
        return len(self._passages)

    @property
    def version(self) -> str:
        """Changes whenever passages or vectors change (hash of their content)."""
        with self._lock:
            if self._version is None:
                h = hashlib.sha256(self.model_name.encode())
                for pid in sorted(self._digests):
                    h.update(f"{pid}:{self._digests[pid]};".encode())
                self._version = h.hexdigest()[:16]
            return self._version

    def passages(self) -> list[Passage]:
        with self._lock:
            return [self._passages[i] for i in sorted(self._passages)]

    def get(self, passage_id: int) -> Passage | None:
        return self._passages.get(int(passage_id))

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of passages ``ids`` (one row each, in order)."""
        with self._lock:
            return self._vectors.reconstruct(list(ids))

    def doc_keys(self) -> set[str]:
        with self._lock:
            return {p.doc_key for p in self._passages.values()}

    # ------------------------------------------------------------------ mutation
    def upsert(
        self, passages: Sequence[Passage], vectors: np.ndarray, *, model_name: str | None = None
    ) -> None:
        """Add or replace passages (by id) with their vectors (one row each)."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(passages):
            raise ValueError(f"{len(passages)} passages need a ({len(passages)}, dim) vector array")
        for p in passages:
            if not isinstance(p, Passage):
                raise TypeError("passages must be Passage instances")
        with self._lock:
            self._vectors.add([p.id for p in passages], vecs, model_name=model_name)
            for p, v in zip(passages, vecs, strict=True):
                self._passages[int(p.id)] = p
                self._digests[int(p.id)] = _digest(p, v)
            self._changed()

    def remove(self, ids: Iterable[int]) -> int:
        """Remove passages by id; returns how many existed."""
        with self._lock:
            present = [int(i) for i in ids if int(i) in self._passages]
            if not present:
                return 0
            self._vectors.remove(present)
            for i in present:
                del self._passages[i]
                del self._digests[i]
            self._changed()
            return len(present)

    def remove_documents(self, doc_keys: Iterable[str]) -> int:
        """Remove every passage of the given documents."""
        keys = set(doc_keys)
        with self._lock:
            return self.remove([i for i, p in self._passages.items() if p.doc_key in keys])

    def _changed(self) -> None:
        self._derived = None
        self._version = None

    def _derive(self) -> _Derived:
        if self._derived is not None:
            return self._derived
        order = np.array(sorted(self._passages), dtype=np.int64)
        ps = [self._passages[int(i)] for i in order]
        doc_index: dict[str, int] = {}
        doc_of = np.empty(len(ps), dtype=np.int64)
        for r, p in enumerate(ps):
            doc_of[r] = doc_index.setdefault(p.doc_key, len(doc_index))
        doc_keys = list(doc_index)
        doc_rows = [np.flatnonzero(doc_of == d) for d in range(len(doc_keys))] if ps else []
        doc_names: list[set[str]] = [set() for _ in doc_keys]
        doc_texts: list[list[str]] = [[] for _ in doc_keys]
        for r, p in enumerate(ps):
            d = int(doc_of[r])
            # a title names its document only when it is distinctive (see name_key)
            keys = {name_key(n) for n in p.names if n} | {name_key(p.title, declared=False)}
            doc_names[d].update(keys - {""})
            if not doc_texts[d]:
                doc_texts[d].append(" ".join([p.title, *p.names]))
            if p.section:
                doc_texts[d].append(p.section)
            doc_texts[d].append(p.text)
        name_docs: dict[str, list[int]] = {}
        for d, names in enumerate(doc_names):
            names.discard("")
            for name in names:
                name_docs.setdefault(name, []).append(d)
        df: dict[str, int] = {}
        for texts in doc_texts:
            for t in set(tokenize("\n".join(texts))):
                df[t] = df.get(t, 0) + 1
        n = max(len(doc_keys), 1)
        title_terms = []
        for texts in doc_texts:
            first = texts[0] if texts else ""
            title = first.split(" ")  # "title names..." -> tokenize the whole first line
            terms = {t for t in tokenize(" ".join(title)) if "-" not in t and "_" not in t}
            title_terms.append({t: math.log(1 + n / df.get(t, 1)) for t in terms})
        lex_sec = LexicalIndex().build(order, [passage_text_for_lexical(p) for p in ps])
        lex_doc = LexicalIndex().build(
            np.arange(len(doc_keys)), ["\n".join(t) for t in doc_texts])
        self._derived = _Derived(
            order=order,
            row={int(i): r for r, i in enumerate(order)},
            doc_of=doc_of,
            doc_keys=doc_keys,
            doc_rows=doc_rows,
            doc_names=doc_names,
            doc_title_terms=title_terms,
            kinds=np.array([p.kind for p in ps], dtype=object),
            services=np.array([p.service for p in ps], dtype=object),
            sources=np.array([p.source for p in ps], dtype=object),
            visibilities=np.array([p.visibility for p in ps], dtype=object),
            lex_sec=lex_sec,
            lex_doc=lex_doc,
            vis_values=sorted({p.visibility for p in ps}),
            doc_index=doc_index,
            doc_freq=df,
            name_docs=name_docs,
        )
        return self._derived

    # ------------------------------------------------------------------ search
    def search(
        self,
        query_text: str,
        query_vector: np.ndarray,
        *,
        k: int = 5,
        kinds: Iterable[str] | None = None,
        services: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
        visibility: Callable[[str], bool] | set[str] | None = None,
        names: Sequence[str] = (),
        exclude: Iterable[str] | None = None,
        explain: bool = True,
    ) -> list[DocumentHit]:
        """Best ``k`` documents for the query (text for BM25/names, vector for dense).

        ``exclude`` names documents (``doc_key``) to leave out as if they were not indexed,
        e.g. the query itself in a leave-one-out evaluation. ``explain=False`` leaves out the
        "keywords: ..." reason (costly: it tokenizes each hit's passage); ids and scores are
        the same."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise IndexMismatchError(f"index has dimension {self.dim}, query has {q.shape[0]}")
        with self._lock:
            if not self._passages or k <= 0:
                return []
            d = self._derive()
            mask = self._filter_mask(d, kinds, services, sources, visibility)
            if mask is not None and not mask.any():
                return []
            excluded = self._excluded_rows(d, exclude)
            return self._search(d, query_text or "", q, k, mask, names, excluded, explain)

    @staticmethod
    def _excluded_rows(d: _Derived, exclude: Iterable[str] | None) -> np.ndarray | None:
        if not exclude:
            return None
        wanted = set(exclude)
        rows = [d.doc_rows[i] for i, key in enumerate(d.doc_keys) if key in wanted] \
            if len(wanted) > 8 else [d.doc_rows[d.doc_index[key]] for key in wanted
                                     if key in d.doc_index]
        return np.concatenate(rows) if rows else None

    def _filter_mask(
        self,
        d: _Derived,
        kinds: Iterable[str] | None,
        services: Iterable[str] | None,
        sources: Iterable[str] | None,
        visibility: Callable[[str], bool] | set[str] | None,
    ) -> np.ndarray | None:
        mask: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal mask
            mask = m if mask is None else (mask & m)

        for values, column in ((kinds, d.kinds), (services, d.services), (sources, d.sources)):
            if values is not None:
                both(np.isin(column, list(values)))
        if visibility is not None:
            allowed = (
                [v for v in d.vis_values if visibility(v)] if callable(visibility)
                else [v for v in d.vis_values if v in visibility]
            )
            both(np.isin(d.visibilities, allowed))
        if mask is not None and mask.all():
            return None  # nothing filtered out: skip the (slower) restricted search
        return mask

    def candidate_features(
        self, query_text: str, query_vector: np.ndarray, *, k: int = 10, names: Sequence[str] = (),
        exclude: Iterable[str] | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Candidate documents and their signals (columns as in :data:`FEATURES`), unfiltered
        (but for ``exclude``): for evaluations that measure fusion weights without re-running
        retrieval."""
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        with self._lock:
            if not self._passages:
                return [], np.zeros((0, len(FEATURES)), np.float32)
            d = self._derive()
            excluded = self._excluded_rows(d, exclude)
            cands, feats, _, _ = self._features(d, query_text or "", q, k, None, names, excluded)
            return [d.doc_keys[c] for c in cands], feats

    def document_frequency(self, terms: Iterable[str]) -> dict[str, float]:
        """Share of indexed documents whose text holds each (stemmed) token of ``terms``; lets
        callers tell distinctive shared words from ones found everywhere."""
        with self._lock:
            if not self._passages:
                return {t: 0.0 for t in terms}
            d = self._derive()
            n = max(len(d.doc_keys), 1)
            return {t: d.doc_freq.get(t, 0) / n for t in terms}

    def warm_up(self) -> None:
        """Build the derived structures (BM25, filters) now rather than on the next search."""
        with self._lock:
            if self._passages:
                self._derive()

    def fuse(self, feats: np.ndarray) -> np.ndarray:
        """Scores of candidate rows (columns as in :data:`FEATURES`) under this index's fusion."""
        return self._fuse(np.asarray(feats, dtype=np.float32))

    def _search(
        self, d: _Derived, text: str, q: np.ndarray, k: int, mask: np.ndarray | None,
        names: Sequence[str], excluded: np.ndarray | None = None, explain: bool = True,
    ) -> list[DocumentHit]:
        cand_list, feats, best_rows, matched = self._features(
            d, text, q, k, mask, names, excluded, doc_dense=self.weights.dense_doc != 0)
        if not cand_list:
            return []
        scores = self._fuse(feats)
        order = np.argsort(-scores, kind="stable")[:k]
        out = []
        for j in order:
            c = cand_list[j]
            best = self._passages[int(d.order[best_rows[j]])]
            out.append(DocumentHit(
                doc_key=d.doc_keys[c],
                score=float(scores[j]),
                best=best,
                dense=float(feats[j, 0]),
                lexical=float(max(feats[j, 2], feats[j, 3])),
                reasons=self._reasons(text, best, feats[j], matched[j], explain),
                named=bool(feats[j, 4] > 0),
            ))
        return out

    def _features(
        self, d: _Derived, text: str, q: np.ndarray, k: int, mask: np.ndarray | None,
        names: Sequence[str], excluded: np.ndarray | None = None, doc_dense: bool = True,
    ) -> tuple[list[int], np.ndarray, list[int], list[str]]:
        n_docs = len(d.doc_keys)
        allowed_ids = None if mask is None else d.order[mask]
        # dense over passages
        n_dense = min(len(d.order), max(self.dense_candidates, 10 * k))
        n_extra = 0 if excluded is None else len(excluded)
        dense_hits = self._vectors.search(
            q[None, :], n_dense + n_extra, allowed_ids=allowed_ids)[0]
        if excluded is not None:
            gone = {int(i) for i in d.order[excluded]}
            dense_hits = [(pid, s) for pid, s in dense_hits if pid not in gone][:n_dense]
        dense_p = np.full(len(d.order), np.nan, dtype=np.float32)
        for pid, s in dense_hits:
            dense_p[d.row[pid]] = s
        floor = min((s for _, s in dense_hits), default=0.0)
        # lexical over passages and documents
        lex_p = d.lex_sec.scores(text)
        if mask is not None:
            lex_p = np.where(mask, lex_p, 0.0)
        doc_allowed = np.ones(n_docs, dtype=bool)
        if mask is not None:
            doc_allowed = np.bincount(d.doc_of[mask], minlength=n_docs) > 0
        if excluded is not None:
            lex_p = lex_p.copy()
            lex_p[excluded] = 0.0
            doc_allowed[d.doc_of[excluded]] = False
        lex_d = np.where(doc_allowed, d.lex_doc.scores(text), 0.0)
        lex_p_n = lex_p / lex_p.max() if lex_p.size and lex_p.max() > 0 else lex_p * 0
        lex_d_n = lex_d / lex_d.max() if lex_d.size and lex_d.max() > 0 else lex_d * 0

        # candidate documents: best by any signal
        cand: set[int] = {int(d.doc_of[d.row[pid]]) for pid, _ in dense_hits}
        top = max(self.dense_candidates, 10 * k)
        for arr, to_doc in ((lex_p, True), (lex_d, False)):
            nz = np.flatnonzero(arr > 0)
            best = nz[np.argsort(-arr[nz], kind="stable")[:top]]
            cand.update(int(d.doc_of[r]) if to_doc else int(r) for r in best)
        explicit = {normalize_name(n) for n in names if n}
        for name in explicit:  # a document the caller names is a candidate whatever it scores
            cand.update(d.name_docs.get(name, ()))
        query_names = explicit | name_candidates(text)
        query_terms = set(tokenize(text))
        cand_list = [c for c in sorted(cand) if doc_allowed[c]]
        if not cand_list:
            return [], np.zeros((0, len(FEATURES)), np.float32), [], []

        feats = np.zeros((len(cand_list), len(FEATURES)), dtype=np.float32)
        best_rows: list[int] = []
        matched: list[str] = []
        for j, c in enumerate(cand_list):
            rows = d.doc_rows[c]
            if mask is not None:
                rows = rows[mask[rows]]
            dp = np.nan_to_num(dense_p[rows], nan=floor)
            feats[j, 0] = dp.max()
            feats[j, 2] = lex_p_n[rows].max()
            feats[j, 3] = lex_d_n[c]
            hit = query_names & d.doc_names[c]
            feats[j, 4] = 1.0 if hit else 0.0
            matched.append(next(iter(sorted(hit)), ""))
            terms = d.doc_title_terms[c]
            total = sum(terms.values())
            if total > 0:  # idf-weighted share of the title's words found in the query
                feats[j, 5] = sum(v for t, v in terms.items() if t in query_terms) / total
            w = self.weights  # best passage: by its own dense + lexical evidence
            local = w.dense_sec * dp + w.lex_sec * lex_p_n[rows]
            best_rows.append(int(rows[int(np.argmax(local))]))
        if doc_dense:  # skipped when its weight is zero (it cannot change the order then)
            feats[:, 1] = self._doc_dense(d, cand_list, q, mask)
        return cand_list, feats, best_rows, matched

    def _doc_dense(
        self, d: _Derived, cand: list[int], q: np.ndarray, mask: np.ndarray | None
    ) -> np.ndarray:
        """Cosine between the query and each candidate document's mean passage vector."""
        rows_per = [d.doc_rows[c] if mask is None else d.doc_rows[c][mask[d.doc_rows[c]]]
                    for c in cand]
        flat = np.concatenate(rows_per) if rows_per else np.zeros(0, np.int64)
        vecs = self._vectors.reconstruct(d.order[flat])
        out = np.zeros(len(cand), dtype=np.float32)
        start = 0
        for j, rows in enumerate(rows_per):
            m = vecs[start:start + len(rows)].mean(axis=0)
            start += len(rows)
            norm = float(np.linalg.norm(m))
            out[j] = float(m @ q) / norm if norm > 0 else 0.0
        return out

    def _fuse(self, feats: np.ndarray) -> np.ndarray:
        w = self.weights
        wv = np.array([w.dense_sec, w.dense_doc, w.lex_sec, w.lex_doc, w.name, w.title],
                      dtype=np.float32)
        title = feats[:, 5] * (feats[:, 5] >= w.title_min_coverage)
        if self.fusion == "linear":
            return feats[:, :5] @ wv[:5] + wv[5] * title
        ranks = np.zeros_like(feats)
        for col in range(4):
            order = np.argsort(-feats[:, col], kind="stable")
            ranks[order, col] = np.arange(1, len(order) + 1)
        rrf = (wv[:4] / (self.rrf_k + ranks[:, :4])).sum(axis=1) * self.rrf_k
        return rrf + wv[4] * feats[:, 4] + wv[5] * title

    @staticmethod
    def _reasons(
        text: str, best: Passage, f: np.ndarray, name: str, explain: bool = True
    ) -> tuple[str, ...]:
        reasons = []
        if f[4] > 0:  # show the name as the document writes it, not its normalized key
            written = next((n for n in (*best.names, best.title) if normalize_name(n) == name),
                           name)
            reasons.append(f"exact name match ({written})")
        where = best.section or best.title
        reasons.append(f"semantic similarity {f[0]:.2f}" + (f" ({where})" if where else ""))
        shared = key_terms(text, passage_text_for_lexical(best), limit=5) if explain else []
        if shared:
            reasons.append("keywords: " + ", ".join(shared))
        return tuple(reasons)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        """Save atomically (a crash keeps the previous save loadable)."""
        with self._lock:
            commit(Path(directory), HYBRID_KIND, self._write_files)

    def _write_files(self, folder: Path) -> dict[str, Any]:
        (folder / "vectors").mkdir()
        vmeta = self._vectors.write_files(folder / "vectors")
        with open(folder / "passages.jsonl", "w", encoding="utf-8") as fh:
            for pid in sorted(self._passages):
                row = asdict(self._passages[pid])
                row["digest"] = self._digests[pid]
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return {
            "model_name": self.model_name,
            "dim": self.dim,
            "count": self.size,
            "version": self.version,
            "vectors": vmeta,
            "weights": asdict(self.weights),
            "fusion": self.fusion,
            "dense_candidates": self.dense_candidates,
            "rrf_k": self.rrf_k,
        }

    @classmethod
    def load(
        cls, directory: Path, *, model_name: str | None = None, dim: int | None = None
    ) -> HybridIndex:
        """Load a saved index; IndexCorruptError if unusable (rebuild), IndexMismatchError if the
        expected ``model_name``/``dim`` differ."""
        folder, meta = open_current(Path(directory), HYBRID_KIND)
        try:
            index = cls(
                str(meta["model_name"]), int(meta["dim"]),
                exact_max=int(meta["vectors"].get("exact_max", 50_000)),
                weights=FusionWeights(**meta["weights"]),
                fusion=str(meta["fusion"]),
                dense_candidates=int(meta["dense_candidates"]),
                rrf_k=int(meta["rrf_k"]),
            )
            vectors = VectorIndex.read_files(folder / "vectors", meta["vectors"])
            passages: dict[int, Passage] = {}
            digests: dict[int, str] = {}
            with open(folder / "passages.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    digests[int(row["id"])] = str(row.pop("digest"))
                    row["names"] = tuple(row.get("names") or ())
                    p = Passage(**row)
                    passages[int(p.id)] = p
        except IndexCorruptError:
            raise
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise IndexCorruptError(f"cannot read hybrid index in {folder}: {exc}") from exc
        if set(passages) != {int(i) for i in vectors.ids()} or len(passages) != meta["count"]:
            raise IndexCorruptError(f"hybrid index in {folder}: passages and vectors disagree")
        index._vectors = vectors
        index._passages = passages
        index._digests = digests
        if index.version != meta.get("version"):
            raise IndexCorruptError(f"hybrid index in {folder}: content does not match its version")
        if model_name is not None and model_name != index.model_name:
            raise IndexMismatchError(
                f"index built with model {index.model_name!r}, expected {model_name!r}")
        if dim is not None and int(dim) != index.dim:
            raise IndexMismatchError(f"index has dimension {index.dim}, expected {dim}")
        return index


def passages_from_document(
    doc: Any,
    first_id: int,
    *,
    doc_key: str | None = None,
    kind: str = "runbook",
    service: str = "",
    source: str = "",
    visibility: str = "public",
) -> list[Passage]:
    """One passage per section of a :class:`knowledge.documents.Document`, ids from ``first_id``.

    ``service`` / ``visibility`` default to the document's front matter when present.
    """
    from knowledge.documents import document_names

    meta = doc.metadata or {}
    names = document_names(doc)
    return [
        Passage(
            id=first_id + i,
            doc_key=doc_key or doc.path,
            kind=kind,
            title=doc.title,
            section=" > ".join(s.heading_path[1:]),
            text=s.text,
            service=service or str(meta.get("service") or ""),
            source=source,
            visibility=str(meta.get("visibility") or visibility),
            names=names,
        )
        for i, s in enumerate(doc.sections)
    ]
