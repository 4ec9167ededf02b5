"""Parts that run beside the HTTP server: worker pool, scheduler, Socket Mode."""

from __future__ import annotations

import logging

from bot.server import Runtime
from bot.workers import WorkerPool

log = logging.getLogger(__name__)


def register_background_parts(runtime: Runtime, *, socket_mode: bool = False) -> None:
    """Attach the worker pool now; start the scheduler and Socket Mode once ready."""
    runtime.components["workers"] = WorkerPool(workers=runtime.settings.workers)

    def start_scheduler(rt: Runtime) -> None:
        from bot.jobs import start_scheduler as start

        scheduler = start(rt)  # None: neither jobs nor sync wanted in this process
        if scheduler is not None:
            rt.components["scheduler"] = scheduler

    def start_socket_mode(rt: Runtime) -> None:
        from bot.slack.socket_mode import start_socket_mode as start

        rt.components["socket_mode"] = start(rt)

    def start_alert_pipeline(rt: Runtime) -> None:
        # At start-up, not on the first webhook: events stored but not processed before a
        # restart are queued again now, and spooled events have their pipeline.
        rt.alert_pipeline()

    runtime.on_ready(start_alert_pipeline)
    runtime.on_ready(start_scheduler)
    if socket_mode:
        runtime.on_ready(start_socket_mode)
