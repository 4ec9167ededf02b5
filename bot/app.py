"""Composition root: settings -> store -> knowledge -> classifiers -> assistant -> HTTP app.

Nothing here runs at import time; every entry point (CLI, server, tests) calls
:func:`build_services` with its own settings.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.store import db

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "knowledge" / "samples"


def taxonomy_path(settings: Settings) -> Path:
    """The taxonomy file zero-shot models are built from: the setting, else the sample one."""
    return settings.taxonomy_file or SAMPLES_DIR / "taxonomy.yaml"


@dataclass
class Services:
    """Everything a request handler or command needs, built once per process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    embedder: object = None
    knowledge: object = None
    classifiers: object = None
    assistant: object = None
    extras: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        self.engine.dispose()


def configure_runtime(settings: Settings) -> None:
    """Process-wide knobs that must be set before torch/transformers load."""
    from bot import sanitize

    sanitize.configure(settings.redact_extra_patterns, redact_pii=settings.redact_pii)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One OpenMP thread for FAISS and BLAS: their spinning worker threads fought torch's for
    # the 2 cores and made triage 3x slower (bench/triage_latency.py: p95 148 ms -> 53 ms).
    # torch keeps its own explicit thread count (TRIAGEBOT_TORCH_THREADS).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    settings.data_dir.mkdir(parents=True, exist_ok=True)


def build_store(
    settings: Settings, *, upgrade: bool = True
) -> tuple[Engine, sessionmaker[Session]]:
    url = settings.resolved_database_url
    if upgrade:
        log.info("database: %s", db.upgrade(url).describe())
    engine = db.make_engine(url)
    return engine, db.make_session_factory(engine)


def build_services(settings: Settings, *, upgrade: bool = True, models: bool = True) -> Services:
    """Build the store, and (with ``models``) the embedder, indexes, classifiers, assistant."""
    configure_runtime(settings)
    engine, sessions = build_store(settings, upgrade=upgrade)
    services = Services(settings=settings, engine=engine, sessions=sessions)
    if models:
        load_models(services)
    return services


def make_embedder(settings: Settings) -> Any:
    """The embedding model of the settings (model, backend, batch size, threads, text cut)."""
    from knowledge.embed import load_embedder

    return load_embedder(
        settings.embedding_model,
        backend=settings.embedding_backend,
        cache_dir=settings.onnx_dir,
        batch_size=settings.embedding_batch_size,
        threads=settings.torch_threads,
        max_chars=settings.max_text_chars,
    )


def load_models(services: Services) -> None:
    """Load the embedding model, the indexes and the active classifiers."""
    import bm25s  # noqa: F401 - imported first so that its logger level can be reset

    from bot.assistant import Assistant
    from bot.classification import ClassifierService
    from bot.knowledge_base import KnowledgeBase

    # bm25s sets its own logger to DEBUG on import; keep it at our level.
    logging.getLogger("bm25s").setLevel(max(logging.WARNING, logging.getLogger().level))
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")  # see configure_runtime
    settings = services.settings
    embedder = make_embedder(settings)
    knowledge = KnowledgeBase(
        session_factory=services.sessions,
        embedder=embedder,
        index_dir=settings.index_dir,
        exact_max=settings.exact_index_max,
    )
    from bot.relevance import RelevanceMemory

    knowledge.relevance = RelevanceMemory(services.sessions, embedder)
    outcome = knowledge.load()
    log.info("indexes: %s", outcome)
    classifiers = ClassifierService(
        session_factory=services.sessions,
        embedder=embedder,
        models_dir=settings.models_dir,
        targets=settings.target_fields,
        min_precision=settings.min_precision,
        min_labels=settings.min_labels_per_target,
        taxonomy_path=taxonomy_path(settings),
        min_accuracy_gain=settings.promote_min_accuracy_gain,
        min_macro_f1_gain=settings.promote_min_macro_f1_gain,
        max_coverage_loss=settings.promote_max_coverage_loss,
    )
    classifiers.load()
    services.embedder = embedder
    services.knowledge = knowledge
    services.classifiers = classifiers
    services.assistant = Assistant(
        embedder=embedder,
        knowledge=knowledge,
        classifiers=classifiers,
        novelty_threshold=settings.novelty_threshold,
        max_text_chars=settings.max_text_chars,
    )
    # Build the search structures and run one query now, not on the first request.
    services.assistant.warm_up()
