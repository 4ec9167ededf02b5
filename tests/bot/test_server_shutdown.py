"""`triagebot serve` stops the runtime's background parts when the server shuts down (SIGTERM):
uvicorn re-raises the signal after its shutdown, so only the app's lifespan can do it."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from bot.config import Settings
from bot.server import Runtime, create_http_app


def serve_and_shut_down(tmp_path: Path, *, stop_on_shutdown: bool) -> Runtime:
    settings = Settings(_env_file=None, data_dir=tmp_path, scheduler_enabled=False)
    runtime = Runtime(settings)
    runtime.start_spool()
    app = create_http_app(settings, runtime, stop_on_shutdown=stop_on_shutdown)
    with TestClient(app) as client:  # the lifespan: start-up, then shutdown on exit
        assert client.get("/healthz").status_code == 200
        assert runtime.components["spool_replayer"]._thread.is_alive()
    return runtime


def test_the_server_stops_the_runtime_when_it_shuts_down(tmp_path: Path) -> None:
    runtime = serve_and_shut_down(tmp_path, stop_on_shutdown=True)
    runtime.components["spool_replayer"]._thread.join(5)
    assert not runtime.components["spool_replayer"]._thread.is_alive()


def test_an_app_built_for_tests_leaves_its_shared_runtime_running(tmp_path: Path) -> None:
    runtime = serve_and_shut_down(tmp_path, stop_on_shutdown=False)
    try:
        assert runtime.components["spool_replayer"]._thread.is_alive()
    finally:
        runtime.stop()
