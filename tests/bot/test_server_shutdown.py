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


def test_stopping_the_runtime_stops_its_scheduler(tmp_path: Path) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    runtime = Runtime(Settings(_env_file=None, data_dir=tmp_path, scheduler_enabled=False))
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start()
    runtime.components["scheduler"] = scheduler  # as bot.lifecycle registers it
    runtime.stop()
    assert not scheduler.running
    runtime.stop()  # again: nothing left to stop


def test_serve_says_where_it_listens(tmp_path: Path) -> None:
    """uvicorn runs at warning level, so nothing said where the server was: a newcomer with
    TRIAGEBOT_PORT in .env had to guess."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TRIAGEBOT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
           "TRIAGEBOT_LOAD_SAMPLES": "false", "TRIAGEBOT_SCHEDULER_ENABLED": "false",
           "TRIAGEBOT_PORT": str(port), "TRIAGEBOT_LOG_JSON": "false"}
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], env=env,
                              stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("the server did not answer /healthz")
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert f"listening on http://127.0.0.1:{port}" in err, err[-2000:]
