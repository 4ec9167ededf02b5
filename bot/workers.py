"""A bounded worker pool for heavy work (triage, posting), kept off Bolt's request threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """More work is waiting than the pool accepts; the caller answers "busy" instead."""


class WorkerPool:
    """A thread pool with a cap on queued work, so a burst cannot exhaust memory."""

    def __init__(self, workers: int = 4, max_pending: int = 1000, name: str = "triage") -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(max_pending)
        self.max_pending = max_pending

    def submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        if not self._slots.acquire(blocking=False):
            raise QueueFullError(f"more than {self.max_pending} tasks waiting")

        def run() -> Any:
            try:
                return func(*args, **kwargs)
            except Exception:
                log.exception("background task %s failed", getattr(func, "__name__", func))
                raise
            finally:
                self._slots.release()

        return self._executor.submit(run)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait)
