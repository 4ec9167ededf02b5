"""The one HTTP server: health, readiness, metrics, Slack events and monitoring webhooks.

Models and indexes load in a background thread at start-up; ``/healthz`` answers at once,
``/readyz`` only once the database, model and indexes are ready.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.app import Services, build_services
from bot.config import Settings

log = logging.getLogger(__name__)


class Runtime:
    """Holds the services once they are built, and why the server is not ready yet."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: Services | None = None
        self.status = "starting"
        self.error: str = ""
        self.ready = threading.Event()
        self.components: dict[str, Any] = {}
        self._on_ready: list[Callable[[Runtime], None]] = []
        self._pipeline_lock = threading.Lock()

    def on_ready(self, callback: Callable[[Runtime], None]) -> None:
        self._on_ready.append(callback)

    def start(self, services: Services | None = None, *, background: bool = True) -> None:
        if background:
            threading.Thread(
                target=self._boot, args=(services,), daemon=True, name="triagebot-boot"
            ).start()
        else:
            self._boot(services)

    def _boot(self, services: Services | None) -> None:
        try:
            self.status = "loading model, indexes and database"
            self.services = services or build_services(self.settings)
            self.start_spool()
            for callback in self._on_ready:
                callback(self)
            self.status = "ready"
            self.ready.set()
            log.info("triagebot is ready")
        except Exception as exc:
            self.status = "failed"
            self.error = f"{exc.__class__.__name__}: {exc}"
            log.exception("start-up failed")

    # --- the local spool (database unreachable) ---------------------------------------------

    def start_spool(self) -> None:
        """Open ``<data_dir>/spool`` and start its replayer (which replays at once: start-up)."""
        if "spool" in self.components:
            return
        from bot.spool import SpoolError, SpoolReplayer, open_spool

        try:
            spool = open_spool(self.settings.spool_dir)
        except SpoolError as exc:
            log.error("no local spool (%s): a database outage will be answered with 503", exc)
            return
        self.components["spool"] = spool
        self.components["spool_replayer"] = SpoolReplayer(spool, self.apply_spooled).start()

    def apply_spooled(self, record: Any) -> str | None:
        """Apply one spool record (see :meth:`bot.spool.Spool.replay`)."""
        if record.kind == "events":
            return self.alert_pipeline().apply_spooled(record)
        if record.kind in ("feedback", "slack"):
            from bot.slack.feedback import apply_spooled_feedback
            from bot.slack.http import slack_app_for
            from bot.slack.messages import apply_spooled_message

            slack_app_for(self)
            bot = self.components.get("slack_bot")
            if bot is None:
                raise RuntimeError(f"spooled {record.kind} record, but Slack is not configured")
            if record.kind == "slack":
                return apply_spooled_message(bot, record)
            return apply_spooled_feedback(bot, record)
        raise ValueError(f"unknown spool record kind {record.kind!r}")

    def alert_pipeline(self) -> Any:
        """The webhook alert pipeline, created once."""
        with self._pipeline_lock:
            pipeline = self.components.get("alert_pipeline")
            if pipeline is None:
                from bot.alert_pipeline import AlertPipeline

                pipeline = AlertPipeline.from_runtime(self)
                self.components["alert_pipeline"] = pipeline
            return pipeline

    def stop(self) -> None:
        """Stop the background parts this runtime started (tests, orderly shutdown)."""
        replayer = self.components.get("spool_replayer")
        if replayer is not None:
            replayer.stop()
        pipeline = self.components.get("alert_pipeline")
        if pipeline is not None:
            pipeline.stop()  # hands the alert-grouping lease to another replica at once
        scheduler = self.components.get("scheduler")
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)  # a job under way is not waited for


def create_http_app(
    settings: Settings, runtime: Runtime | None = None, *, stop_on_shutdown: bool = False
) -> Starlette:
    """Build the Starlette app. Routes for Slack and webhooks are added by their modules.

    ``stop_on_shutdown``: stop the runtime's background parts when the server shuts down
    (SIGTERM), which hands the alert-grouping lease to another replica at once. uvicorn
    re-raises the signal after its shutdown, so code after ``uvicorn.run`` never runs."""
    runtime = runtime or Runtime(settings)
    if "workers" not in runtime.components:
        from bot.workers import WorkerPool

        runtime.components["workers"] = WorkerPool(workers=settings.workers)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if runtime.ready.is_set():
            return JSONResponse({"status": "ready", **_ready_details(runtime)})
        body = {"status": runtime.status, "error": runtime.error}
        return JSONResponse(body, status_code=503)

    async def metrics(_: Request) -> Response:
        from bot.metrics import render_metrics

        body, content_type = render_metrics(runtime)
        return PlainTextResponse(body, media_type=content_type)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    from bot.webhooks import webhook_routes

    routes.extend(webhook_routes(runtime))
    from bot.slack.http import slack_routes

    routes.extend(slack_routes(runtime))
    lifespan = None
    if stop_on_shutdown:

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            yield
            await run_in_threadpool(runtime.stop)

    http_app = Starlette(routes=routes, lifespan=lifespan)
    http_app.state.runtime = runtime
    return http_app


def _ready_details(runtime: Runtime) -> dict[str, Any]:
    services = runtime.services
    if services is None or services.knowledge is None:
        return {}
    return {
        "indexes": services.knowledge.sizes(),
        "models": services.classifiers.active_versions(),
        "slack": "connected" if runtime.settings.slack_enabled else "disabled (no tokens)",
    }


def run_server(settings: Settings, *, socket_mode: bool = False) -> None:
    """Start uvicorn (and Socket Mode when asked) and block until stopped."""
    import uvicorn

    from bot.logs import setup_logging

    setup_logging(settings.log_level, json_logs=settings.log_json)
    if not settings.slack_enabled:
        log.warning(
            "Slack is disabled (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to enable it); "
            "webhooks, CLI and health endpoints work"
        )
    runtime = Runtime(settings)
    from bot.lifecycle import register_background_parts

    register_background_parts(runtime, socket_mode=socket_mode)
    http_app = create_http_app(settings, runtime, stop_on_shutdown=True)
    runtime.start()
    log.info(
        "listening on http://%s:%d (alerts: POST /webhooks/alertmanager; readiness: GET "
        "/readyz; Slack: POST /slack/events)", settings.host, settings.port
    )
    uvicorn.run(
        http_app, host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
