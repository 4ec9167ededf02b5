"""Prometheus metrics. Counters live in one registry per process; gauges are read at scrape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from bot.server import Runtime

REGISTRY = CollectorRegistry()

TRIAGE_LATENCY = Histogram(
    "triagebot_triage_seconds",
    "Time spent in triage() per event.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
EVENTS = Counter(
    "triagebot_events_total",
    "Events received, by source and outcome.",
    ["source", "outcome"],
    registry=REGISTRY,
)
FEEDBACK = Counter(
    "triagebot_feedback_total", "Feedback clicks, by kind.", ["kind"], registry=REGISTRY
)
JOB_RUNS = Counter(
    "triagebot_job_runs_total",
    "Scheduled job runs, by job and outcome.",
    ["job", "outcome"],
    registry=REGISTRY,
)
SLACK_CALLS = Counter(
    "triagebot_slack_api_calls_total",
    "Slack Web API calls, by method and outcome.",
    ["method", "outcome"],
    registry=REGISTRY,
)
INDEX_SIZE = Gauge(
    "triagebot_index_entries", "Entries per search index.", ["index"], registry=REGISTRY
)
ACTIVE_MODEL = Gauge(
    "triagebot_active_model_info",
    "Active classifier version per target (value 1).",
    ["target", "version"],
    registry=REGISTRY,
)
SPOOL_RECORDS = Counter(
    "triagebot_spool_records_total",
    "Records in the local spool (database unreachable), by kind and outcome "
    "(spooled, replayed, duplicate, dead_letter).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
SPOOL_PENDING = Gauge(
    "triagebot_spool_pending", "Spooled records waiting for the database.", registry=REGISTRY
)
ALERT_GROUPING_LEADER = Gauge(
    "triagebot_alert_grouping_leader",
    "1 on the replica that groups alerts now (holds the alert-grouping lease), else 0.",
    registry=REGISTRY,
)
READY = Gauge(
    "triagebot_ready", "1 once models, indexes and database are loaded.", registry=REGISTRY
)


def _refresh_gauges(runtime: Runtime) -> None:
    READY.set(1 if runtime.ready.is_set() else 0)
    spool = runtime.components.get("spool")
    SPOOL_PENDING.set(spool.pending() if spool is not None else 0)
    services: Any = runtime.services
    if services is None or services.knowledge is None:
        return
    for name, size in services.knowledge.sizes().items():
        INDEX_SIZE.labels(index=name).set(size)
    ACTIVE_MODEL.clear()
    for target, version in services.classifiers.active_versions().items():
        ACTIVE_MODEL.labels(target=target, version=version).set(1)


def render_metrics(runtime: Runtime) -> tuple[bytes, str]:
    _refresh_gauges(runtime)
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
