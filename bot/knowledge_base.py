"""Keeps the database (source of truth) and the search indexes under the data folder in step.

Two hybrid indexes live side by side: ``runbooks`` (one passage per runbook section, ids are
``runbook_chunks.id``) and ``incidents`` (one passage per incident or ticket, ids are
``incidents.id``). Both are rebuilt from the database when their files are missing, corrupt
or built by another embedding model; an index that is only out of step with the database (rows
added, changed or deleted by another process) is caught up: only the passages that differ are
embedded again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.sanitize import clean_record
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.store.models import Incident, RunbookChunk, RunbookDocument
from bot.timeparse import parse_time
from knowledge.documents import Document, document_names, scan_folder
from knowledge.embed import Embedder
from knowledge.records import Record
from knowledge.runbook_urls import check_template, runbook_url
from knowledge.search import (
    DocumentHit,
    FusionWeights,
    HybridIndex,
    Passage,
    passage_text_for_embedding,
)

log = logging.getLogger(__name__)

RUNBOOKS = "runbooks"
INCIDENTS = "incidents"

Progress = Callable[[int, int], None]
IMPORT_BATCH = 256  # records embedded, then written in one transaction, at a time
SAVE_EVERY_SECONDS = 10.0  # a long import saves the index at most this often
RERANK_EXTRA = 10
NOVELTY_SAMPLE = 500
NOVELTY_POOL = 20_000
# Used only while fewer than 10 items are indexed: the data cannot set a threshold yet.
FALLBACK_NOVELTY = 0.3

# Incidents are short single-passage texts: a linear blend of cosine, normalized document BM25
# and title coverage (plus exact alert names) ranks them best. Measured leave-one-out on four
# unrelated sets (postmortems, alert rules, tickets, our samples; see docs/evaluation.md):
# the runbook defaults (RRF, BM25-heavy) let generic words decide; this blend beat BM25
# neighbours on every set, where the runbook fusion did not.
INCIDENT_FUSION = "linear"
INCIDENT_WEIGHTS = FusionWeights(
    dense_sec=0.6, dense_doc=0.0, lex_sec=0.0, lex_doc=0.2, name=0.3, title=0.1,
    title_min_coverage=0.0,  # measured without the gate (docs/evaluation.md)
)


@dataclass
class IndexReport:
    """What ``index runbooks`` did, for the summary printed at the end."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def runbook_passage(chunk: RunbookChunk, doc: RunbookDocument) -> Passage:
    heading = list(chunk.heading_path or [])
    # Front matter values may be a list, a single string or a number (``alerts: DiskFull``,
    # ``alerts: 5``); document_names() reads them all, plus the names/aliases keys.
    front = Document(path=doc.path, title=doc.title or "", content_hash=doc.content_hash or "",
                     metadata=dict(doc.meta or {}), sections=())
    names = list(document_names(front))
    stem = Path(doc.path).stem
    if stem and stem.lower() not in {n.lower() for n in names}:
        names.append(stem)  # always, even a plain word (document_names keeps only identifiers)
    return Passage(
        id=chunk.id,
        doc_key=f"{doc.source}:{doc.path}",
        kind="runbook",
        title=doc.title,
        section=" > ".join(heading[1:]) if len(heading) > 1 else "",
        text=chunk.text,
        service=str((doc.meta or {}).get("service", "")),
        source=doc.source,
        visibility=doc.visibility,
        names=tuple(names),
    )


def with_url(doc: Document, template: str | None, stored: RunbookDocument | None) -> Document:
    """``doc`` with its web address as ``metadata["url"]`` (none: no ``url`` key): its front
    matter's, else the template's; with no template (None), the address ``stored`` had."""
    metadata = {k: v for k, v in doc.metadata.items() if k != "url"}
    kept = str(((stored.meta if stored else None) or {}).get("url") or "")
    url = runbook_url(doc.path, doc.metadata, template or "") or (
        kept if template is None else "")
    return replace(doc, metadata={**metadata, "url": url} if url else metadata)


def incident_passage(row: Incident) -> Passage:
    names = (row.labels or {}).get("alertname", "")
    return Passage(
        id=row.id,
        doc_key=f"{row.kind}:{row.external_id}",
        kind=row.kind,
        title=row.title,
        section="",
        text=row.description,
        service=row.service,
        source=row.source_name,
        visibility=row.visibility,
        names=(names,) if names else (),
    )


class KnowledgeBase:
    """Indexing and search over runbooks and past incidents."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        embedder: Embedder,
        index_dir: Path,
        exact_max: int = 50_000,
    ) -> None:
        self._sessions = session_factory
        self.embedder = embedder
        self.index_dir = index_dir
        self.exact_max = exact_max
        self._write_lock = threading.RLock()
        self.indexes: dict[str, HybridIndex] = {}
        self._novelty: tuple[str, float] | None = None
        self._runbook_links: tuple[str, dict[str, str]] | None = None  # (index version, links)
        self._links_lock = threading.Lock()
        self._stamps: dict[str, int] = {}  # index.json mtimes as last loaded or saved here
        # database signature (count, max id, last update) when each index was last in step
        self._signatures: dict[str, tuple[Any, ...]] = {}
        # Set by the composition root: re-ranks results from relevance feedback.
        self.relevance: Any = None

    # --- lifecycle --------------------------------------------------------------------

    def load(self) -> dict[str, str]:
        """Load both indexes; rebuild from the database what cannot be trusted.

        Returns per index "loaded" or the reason it was rebuilt.
        """
        outcome: dict[str, str] = {}
        with self._write_lock:
            for name in (RUNBOOKS, INCIDENTS):
                signature = self._db_signature(name)
                outcome[name] = self._load_one(name)
                self._stamp(name)
                self._signatures[name] = signature
        return outcome

    def _load_one(self, name: str) -> str:
        directory = self.index_dir / name
        expected = self._row_count(name)
        try:
            if not (directory / "index.json").exists():
                raise FileNotFoundError(directory)
            index = HybridIndex.load(directory)
        except FileNotFoundError:
            reason = "missing"
        except Exception as exc:  # noqa: BLE001 - any unreadable index is rebuilt
            reason = f"unreadable ({exc.__class__.__name__}: {exc})"
        else:
            if index.model_name != self.embedder.model_name or index.dim != self.embedder.dim:
                reason = f"built with {index.model_name}"
            else:
                _configure(name, index)  # fusion is configuration, not data: always current
                # rows may have changed since it was saved: embed only those
                return self._catch_up(name, index) or "loaded"
        if expected or reason != "missing":
            log.warning("index %s %s: rebuilding from the database", name, reason)
        self._rebuild_one(name)
        return f"rebuilt: {reason}"

    def rebuild(self) -> None:
        """Re-embed everything (after a model change, or on request)."""
        with self._write_lock:
            for name in (RUNBOOKS, INCIDENTS):
                self._rebuild_one(name)

    def _rebuild_one(self, name: str) -> None:
        index = self._new_index(name)
        with session_scope(self._sessions) as session:
            passages = self._all_passages(session, name)
        self._upsert(index, passages)
        self._save(name, index)

    def _catch_up(self, name: str, index: HybridIndex) -> str:
        """Bring ``index`` in step with the database: passages that are new or differ are
        embedded and upserted, those whose row is gone are removed; the rest keep their
        vectors. Serves the result (and saves it when it changed). Returns what it did, or
        "" when the index was already in step."""
        with session_scope(self._sessions) as session:
            wanted = {p.id: p for p in self._all_passages(session, name)}
        changed = [p for p in wanted.values() if index.get(p.id) != p]
        gone = [p.id for p in index.passages() if p.id not in wanted]
        if gone:
            index.remove(gone)
        self._upsert(index, changed)
        if not (changed or gone):
            self.indexes[name] = index
            return ""
        self._save(name, index)
        log.info("index %s caught up with the database: %d embedded, %d removed",
                 name, len(changed), len(gone))
        return f"caught up: {len(changed)} embedded, {len(gone)} removed"

    def _db_signature(self, name: str) -> tuple[Any, ...]:
        with session_scope(self._sessions) as session:
            if name == RUNBOOKS:
                return repo.runbooks_signature(session=session)
            return repo.incidents_signature(session=session)

    def _row_count(self, name: str) -> int:
        with session_scope(self._sessions) as session:
            if name == RUNBOOKS:
                return repo.count_runbook_chunks(session=session)
            return repo.count_incidents(session=session)

    def _all_passages(self, session: Session, name: str) -> list[Passage]:
        if name == RUNBOOKS:
            docs = {d.id: d for d in repo.list_runbook_documents(session=session)}
            return [
                runbook_passage(c, docs[c.document_id])
                for c in repo.list_runbook_chunks(session=session)
            ]
        return [incident_passage(r) for r in repo.list_incidents(session=session)]

    def _new_index(self, name: str = RUNBOOKS) -> HybridIndex:
        index = HybridIndex(self.embedder.model_name, self.embedder.dim, exact_max=self.exact_max)
        _configure(name, index)
        return index

    def _upsert(self, index: HybridIndex, passages: Sequence[Passage], progress=None) -> None:
        if not passages:
            return
        vectors = self.embed_passages(passages, progress=progress)
        index.upsert(list(passages), vectors)

    def embed_passages(self, passages: Sequence[Passage], progress: Progress | None = None):
        texts = [passage_text_for_embedding(p) for p in passages]
        batch = 256
        parts = []
        for start in range(0, len(texts), batch):
            parts.append(self.embedder.encode(texts[start : start + batch]))
            if progress:
                progress(min(start + batch, len(texts)), len(texts))
        return np.vstack(parts)

    def _save(self, name: str, index: HybridIndex) -> None:
        index.save(self.index_dir / name)
        self.indexes[name] = index
        self._stamp(name)

    def index(self, name: str) -> HybridIndex:
        if name not in self.indexes:
            self.indexes[name] = self._new_index(name)
        return self.indexes[name]

    # --- runbooks ---------------------------------------------------------------------

    def index_runbooks(
        self,
        root: Path,
        *,
        source: str,
        visibility: str = "public",
        progress: Progress | None = None,
        url_template: str | None = None,
    ) -> IndexReport:
        """Index a folder of runbooks incrementally (by content hash); drop vanished files.

        ``url_template``: how a file's path becomes its web address (see
        :mod:`knowledge.runbook_urls`), kept as the document's ``url``; None keeps the
        addresses stored before (a re-index that does not say must not drop the links),
        "" removes them."""
        if not root.is_dir():
            raise FileNotFoundError(f"runbook folder not found: {root}")
        template = None if url_template is None else check_template(url_template)
        scan = scan_folder(root)
        report = IndexReport(skipped=list(scan.skipped))
        with self._write_lock:
            index = self.index(RUNBOOKS)
            changed: list[Document] = []
            with session_scope(self._sessions) as session:
                existing = repo.get_runbook_documents(session=session, source=source)
                documents = [with_url(doc, template, existing.get(doc.path))
                             for doc in scan.documents]
                seen = set()
                for doc in documents:
                    seen.add(doc.path)
                    old = existing.get(doc.path)
                    if (old is not None and old.content_hash == doc.content_hash
                            and (old.meta or {}).get("url") == doc.metadata.get("url")):
                        report.unchanged.append(doc.path)
                        continue
                    (report.updated if old is not None else report.added).append(doc.path)
                    changed.append(doc)
                gone = [d for path, d in existing.items() if path not in seen]
                report.removed = [d.path for d in gone]
                removed_chunks = repo.delete_runbook_documents(
                    session=session, ids=[d.id for d in gone]
                )
                stale_chunks: list[int] = list(removed_chunks)
                new_passages: list[Passage] = []
                for doc in changed:
                    old = existing.get(doc.path)
                    if old is not None:
                        stale_chunks.extend(c.id for c in old.chunks)
                    row = repo.save_runbook_document(
                        session=session,
                        source=source,
                        path=doc.path,
                        title=doc.title,
                        content_hash=doc.content_hash,
                        meta=doc.metadata,
                        sections=[(s.heading_path, s.text) for s in doc.sections],
                        visibility=visibility,
                    )
                    new_passages.extend(runbook_passage(c, row) for c in row.chunks)
                # Embed before commit: if embedding fails, the database is rolled back too.
                vectors = (
                    self.embed_passages(new_passages, progress=progress) if new_passages else None
                )
            if stale_chunks:
                index.remove(stale_chunks)
            if vectors is not None:
                index.upsert(new_passages, vectors)
            self._save(RUNBOOKS, index)
            index.warm_up()  # rebuild BM25 here rather than in the next user search
        return report

    # --- incidents and tickets --------------------------------------------------------

    def import_records(
        self,
        records: Iterable[Record],
        *,
        kind: str,
        source_name: str,
        visibility: str = "public",
        progress: Progress | None = None,
    ) -> ImportReport:
        """Store records as incidents/tickets and index the new or changed ones.

        Batch by batch, the slow part (embedding) runs with no transaction open and each
        batch is written in one short transaction: on SQLite a long import used to hold the
        write lock for minutes, so a server beside it could not store alerts or renew its
        leases. An interrupted import leaves whole batches stored; running it again is safe
        (rows are matched by id) and the index catches up with the database on the next load
        or sync. The index is saved at most every ``SAVE_EVERY_SECONDS`` (and no more often
        than ten times its saving time) and at the end, so that another process loads the
        vectors instead of computing them again.
        """
        report = ImportReport()
        rows = [clean_record(r) for r in records]
        with self._write_lock:
            index = self.index(INCIDENTS)
            unsaved, next_save = False, time.monotonic() + SAVE_EVERY_SECONDS
            for start in range(0, len(rows), IMPORT_BATCH):
                unsaved |= self._import_batch(rows[start:start + IMPORT_BATCH], index, report,
                                              kind=kind, source_name=source_name,
                                              visibility=visibility)
                if unsaved and time.monotonic() >= next_save:
                    # often enough that a server beside it rarely embeds the same rows,
                    # seldom enough that saving a large index takes under a tenth of the time
                    began = time.monotonic()
                    self._save(INCIDENTS, index)
                    unsaved, done = False, time.monotonic()
                    next_save = done + max(SAVE_EVERY_SECONDS, 10 * (done - began))
                if progress:
                    progress(min(start + IMPORT_BATCH, len(rows)), len(rows))
            if unsaved:
                self._save(INCIDENTS, index)
            if report.added or report.updated:
                index.warm_up()  # rebuild BM25 here rather than in the next user search
        return report

    def _import_batch(self, batch: Sequence[Record], index: HybridIndex, report: ImportReport,
                      *, kind: str, source_name: str, visibility: str) -> bool:
        """Embed, write, then index one batch of records; True when the index changed."""
        wanted = [(r.id, {**record_fields(r, kind=kind, source_name=source_name),
                          "visibility": visibility}) for r in batch]
        with session_scope(self._sessions) as session:
            stored = repo.incidents_by_external_id(session=session, ids=[i for i, _ in wanted])
        # the texts of the rows that will change, embedded before any write
        vectors = self._embed_texts([
            passage_text_for_embedding(incident_passage(Incident(external_id=i, **fields)))
            for i, fields in wanted if i not in stored or repo.incident_differs(stored[i], fields)
        ])
        passages: list[Passage] = []
        with session_scope(self._sessions) as session:
            for external_id, fields in wanted:
                row, status = repo.upsert_incident(session=session, external_id=external_id,
                                                   **fields)
                setattr(report, status, getattr(report, status) + 1)
                if status != "unchanged":
                    passages.append(incident_passage(row))
        if not passages:
            return False
        texts = [passage_text_for_embedding(p) for p in passages]
        # a row another process changed in between: its new text was not embedded yet
        vectors.update(self._embed_texts([t for t in texts if t not in vectors]))
        index.remove([p.id for p in passages])
        index.upsert(passages, np.vstack([vectors[t] for t in texts]))
        return True

    def _embed_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        return dict(zip(unique, self.embedder.encode(unique), strict=True))

    def add_incident(self, row_id: int) -> None:
        """Make one stored incident searchable at once (e.g. a root cause recorded in Slack)."""
        with self._write_lock, session_scope(self._sessions) as session:
            row = repo.get_incident(session=session, incident_id=row_id)
            if row is None:
                return
            passage = incident_passage(row)
            index = self.index(INCIDENTS)
            index.remove([passage.id])
            index.upsert([passage], self.embed_passages([passage]))
            self._save(INCIDENTS, index)
            index.warm_up()  # rebuild BM25 here rather than in the next user search

    # --- search -----------------------------------------------------------------------

    def search(
        self,
        name: str,
        text: str,
        vector: np.ndarray,
        *,
        k: int = 5,
        visibility: Callable[[str], bool] | None = None,
        kinds: Sequence[str] | None = None,
        services: Sequence[str] | None = None,
        names: Sequence[str] = (),
        explain: bool = True,
    ) -> list[DocumentHit]:
        """Best ``k`` documents of index ``name``; ``explain=False`` skips the "keywords: ..."
        reason (see :meth:`HybridIndex.search`)."""
        index = self.indexes.get(name)
        if index is None or index.size == 0:
            return []
        # Ask for a few more candidates so that feedback can move a judged one into the top k.
        wanted = k + RERANK_EXTRA if self.relevance is not None else k
        hits = index.search(
            text,
            vector,
            k=wanted,
            kinds=kinds,
            services=services,
            visibility=visibility,
            names=names,
            explain=explain,
        )
        if self.relevance is None:
            return hits
        return self.relevance.rerank(name, vector, hits, k)

    def sync(self) -> dict[str, str]:
        """Pick up changes made by another process (CLI, another replica).

        An index whose saved files changed since this process last loaded or saved them is
        loaded again (a shared data folder). One whose database rows changed (insert, update
        or delete: count, largest id or latest update moved) is caught up, embedding only
        the passages that differ: on per-replica volumes a recorded root cause or an import
        used to cost every other replica a full re-embedding.
        """
        done: dict[str, str] = {}
        with self._write_lock:
            for name in (RUNBOOKS, INCIDENTS):
                signature = self._db_signature(name)
                pointer = self.index_dir / name / "index.json"
                stamp = pointer.stat().st_mtime_ns if pointer.exists() else None
                index = self.indexes.get(name)
                stale_files = stamp is not None and stamp != self._stamps.get(name)
                if stale_files or index is None:
                    done[name] = self._load_one(name)
                elif signature != self._signatures.get(name):
                    outcome = self._catch_up(name, index)  # "" after this process's own writes
                    if outcome:
                        done[name] = outcome
                self._stamp(name)
                self._signatures[name] = signature
        return done

    def _stamp(self, name: str) -> None:
        pointer = self.index_dir / name / "index.json"
        if pointer.exists():
            self._stamps[name] = pointer.stat().st_mtime_ns

    def incidents(self, ids: Iterable[int]) -> dict[int, IncidentView]:
        return load_incident_views(self._sessions, ids)

    def runbook_link(self, doc_key: str) -> str:
        """The web address of an indexed runbook (``source:path``), "" when none is known.
        Read once per version of the runbook index (a few hundred rows)."""
        index = self.indexes.get(RUNBOOKS)
        version = index.version if index is not None else ""
        with self._links_lock:
            cached = self._runbook_links
        if cached is None or cached[0] != version:
            with session_scope(self._sessions) as session:
                rows = session.execute(
                    select(RunbookDocument.source, RunbookDocument.path, RunbookDocument.meta)
                )
                links = {f"{source}:{path}": str((meta or {}).get("url") or "")
                         for source, path, meta in rows}
            cached = (version, links)
            with self._links_lock:
                self._runbook_links = cached
        return cached[1].get(doc_key, "")

    def document_sections(self, chunk_id: int):
        return load_document_sections(self._sessions, chunk_id)

    def novelty_threshold(self) -> float:
        """Similarity below which a query counts as unlike anything seen before.

        Set from the data: for a sample of stored items, the cosine similarity to their
        nearest neighbour from another document; the threshold is the low tail (5th
        percentile) of that distribution, i.e. a query is "novel" when it is further from
        everything than 95% of known items are from their closest relative.
        """
        key = self.version
        if self._novelty is not None and self._novelty[0] == key:
            return self._novelty[1]
        sims: list[float] = []
        rng = np.random.default_rng(0)
        for name in (INCIDENTS, RUNBOOKS):
            index = self.indexes.get(name)
            if index is None or index.size < 3:
                continue
            passages = index.passages()
            pool = [passages[i] for i in rng.permutation(len(passages))[:NOVELTY_POOL]]
            pool_vectors = index.vectors([p.id for p in pool])
            docs = np.array([p.doc_key for p in pool], dtype=object)
            sample = np.arange(min(NOVELTY_SAMPLE, len(pool)))
            similarity = pool_vectors[sample] @ pool_vectors.T
            similarity[docs[sample][:, None] == docs[None, :]] = -np.inf
            best = similarity.max(axis=1)
            sims.extend(float(v) for v in best if np.isfinite(v))
        value = float(np.percentile(sims, 5)) if len(sims) >= 10 else FALLBACK_NOVELTY
        self._novelty = (key, value)
        return value

    def sizes(self) -> dict[str, int]:
        return {
            name: (self.indexes[name].size if name in self.indexes else 0)
            for name in (RUNBOOKS, INCIDENTS)
        }

    @property
    def version(self) -> str:
        parts = [f"{n}:{self.indexes[n].version}" for n in sorted(self.indexes)]
        return ",".join(parts)


def _configure(name: str, index: HybridIndex) -> None:
    """Per-index fusion: runbooks keep the library defaults, incidents get their own blend."""
    if name == INCIDENTS:
        index.weights = INCIDENT_WEIGHTS
        index.fusion = INCIDENT_FUSION


def record_fields(record: Record, *, kind: str, source_name: str) -> dict:
    """Map an imported record onto incident columns."""
    labels = {k: str(v) for k, v in (record.extra or {}).items() if isinstance(v, str | int)}
    return {
        "kind": record.source if record.source in {"incident", "ticket", "alert"} else kind,
        "title": record.title,
        "description": record.description,
        "category": record.category,
        "severity": record.severity,
        "priority": record.priority,
        "team": record.team,
        "service": record.service,
        "root_cause": record.root_cause,
        "resolution": record.resolution,
        "resolved_by": record.resolved_by,
        "url": record.url,
        "source_name": source_name[:200],  # a file name may be longer than the column
        "labels": labels,
        "occurred_at": parse_time(record.created_at),
    }


@dataclass(frozen=True)
class IncidentView:
    """The stored fields of an incident that an answer shows."""

    id: int
    external_id: str
    kind: str
    title: str
    description: str
    category: str
    severity: str
    team: str
    service: str
    root_cause: str
    resolution: str
    resolved_by: str
    occurred_at: str
    url: str
    labels: dict


@dataclass(frozen=True)
class SectionView:
    chunk_id: int
    heading_path: tuple[str, ...]
    text: str


def load_incident_views(
    sessions: sessionmaker[Session], ids: Iterable[int]
) -> dict[int, IncidentView]:
    with session_scope(sessions) as session:
        rows = repo.get_incidents(session=session, ids=ids)
        return {
            i: IncidentView(
                id=r.id,
                external_id=r.external_id,
                kind=r.kind,
                title=r.title,
                description=r.description,
                category=r.category,
                severity=r.severity,
                team=r.team,
                service=r.service,
                root_cause=r.root_cause,
                resolution=r.resolution,
                resolved_by=r.resolved_by,
                occurred_at=r.occurred_at.isoformat() if r.occurred_at else "",
                url=r.url,
                labels=dict(r.labels or {}),
            )
            for i, r in rows.items()
        }


def load_document_sections(
    sessions: sessionmaker[Session], chunk_id: int
) -> tuple[RunbookDocument | None, list[SectionView]]:
    """All sections of the document that holds ``chunk_id``, in order."""
    with session_scope(sessions) as session:
        chunk = repo.get_runbook_chunks(session=session, ids=[chunk_id]).get(chunk_id)
        if chunk is None:
            return None, []
        doc = chunk.document
        sections = [SectionView(c.id, tuple(c.heading_path or ()), c.text) for c in doc.chunks]
        session.expunge(doc)
        return doc, sections
