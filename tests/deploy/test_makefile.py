"""`make run`: the address comes from HOST/PORT on the make command line, else from the
settings (TRIAGEBOT_HOST / TRIAGEBOT_PORT in the environment or .env), as the README says."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def serve_line(*args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"HOST", "PORT", "TRIAGEBOT_HOST", "TRIAGEBOT_PORT"}}
    out = subprocess.run(["make", "-n", "run", *args], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return next(line for line in out.splitlines() if "triagebot serve" in line)


def test_make_run_leaves_the_address_to_the_settings() -> None:
    # it used to run TRIAGEBOT_HOST=127.0.0.1 TRIAGEBOT_PORT=8080 triagebot serve, which beat
    # TRIAGEBOT_PORT=9000 in the environment or in .env
    line = serve_line(TRIAGEBOT_PORT="9000")
    assert "8080" not in line and "127.0.0.1" not in line
    assert "--host" not in line and "--port" not in line
    # a HOST or PORT that the environment exports (some shells, PaaS) is not make's argument
    assert serve_line(HOST="laptop.example", PORT="1") == line


def test_make_run_host_and_port_on_the_command_line_win() -> None:
    line = serve_line("HOST=0.0.0.0", "PORT=9000", TRIAGEBOT_PORT="8081")
    assert line.split("triagebot serve")[1].split() == ["--host", "0.0.0.0", "--port", "9000"]
