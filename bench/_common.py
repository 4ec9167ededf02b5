"""Small helpers shared by the benchmark scripts (run as `python bench/NAME.py`)."""

from __future__ import annotations

import socket

import numpy as np

# Incident texts the load benchmarks send as @mentions (``{i}`` is filled per request).
QUERIES = [
    "disk full on db-{i}, /var/lib/postgresql at 100%",
    "checkout-api pods crashlooping after deploy, OOMKilled (build {i})",
    "nginx 502 bad gateway on web-{i}",
    "postgres replication lag growing on replica {i}",
    "TLS certificate expires in 3 days on api-{i}.example.com",
    "kafka consumer lag rising on orders topic partition {i}",
    "users cannot log in, SSO returns 502 (ticket {i})",
    "redis latency spikes on cache-{i}",
    "node {i} NotReady, kubelet stopped posting status",
    "VPN keeps disconnecting for user {i}",
]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """``numpy.percentile`` (linear), ``q`` in [0, 100] as elsewhere; NaN for no values
    (numpy raises on an empty list)."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
