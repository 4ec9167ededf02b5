"""Soak: a bounded mixed load on loopback against the real server, then a reconciliation.

Starts ``triagebot serve`` as a subprocess on a free loopback port (data folder prepared with
``triagebot samples load``, or a copy of ``--template``), the fake Slack Web API from
``tests/fakes`` in this process, and sends for ``--seconds``:

* signed ``app_mention`` events (rotating channels; a few are re-sent as Slack retries with
  the same ``event_id``, which must not get a second reply),
* Alertmanager webhooks (bearer token; 1-3 alerts each, from a fixed set of alert names, so
  dedup and grouping are exercised),
* feedback clicks (``block_actions`` helpful / not helpful) on answers the bot posted, with
  answer ids taken from the fake's recorded ``chat.postMessage`` blocks.

Reports requests, errors and 5xx by kind, latency p50/p95/p99 per kind, server RSS after the
warm-up and at the end (``/proc/PID/status`` VmRSS), and a reconciliation of what was sent
against what the SQLite database holds at the end.

    .venv/bin/python bench/soak.py --seconds 600
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import QUERIES, free_port, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "soak-signing-secret"
TOKEN = "soak-webhook-token"
ALERT_CHANNEL = "CSOAKALERTS"
ALERTNAMES = [
    "DiskFull",
    "HighMemoryUsage",
    "PostgresReplicationLag",
    "KubePodCrashLooping",
    "TargetDown",
    "HighErrorRate",
    "CertificateExpiringSoon",
    "KafkaConsumerLag",
    "RedisLatencyHigh",
    "NodeNotReady",
    "HighCPUUsage",
    "NginxUpstreamErrors",
]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Tally:
    """Thread-safe record of what was sent and how it was answered."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    mention_ts: set[str] = field(default_factory=set)
    retries: int = 0
    alerts_accepted: int = 0
    alerts_sent: int = 0
    clicks: int = 0
    click_users: set[str] = field(default_factory=set)

    def record(self, kind: str, started: float, status: int | None, error: str = "") -> None:
        with self.lock:
            self.latencies[kind].append(time.perf_counter() - started)
            if status is None:
                self.errors[kind].append(error)
                self.statuses[kind][0] += 1
            else:
                self.statuses[kind][status] += 1
                if status >= 300:
                    self.errors[kind].append(f"HTTP {status}: {error[:200]}")


class Load:
    def __init__(self, base_url: str, fake: Any, tally: Tally, channels: int, seed: int) -> None:
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=30.0)
        self.fake = fake
        self.tally = tally
        self.channels = [f"CSOAK{i:02d}" for i in range(channels)]
        self.rng = random.Random(seed)
        self.seq = itertools.count(1)
        self.sent_payloads: list[dict[str, Any]] = []

    # --- requests --------------------------------------------------------------------

    def _post(self, kind: str, path: str, body: bytes, headers: dict[str, str]) -> int | None:
        started = time.perf_counter()
        try:
            response = self.http.post(path, content=body, headers=headers)
        except Exception as exc:  # noqa: BLE001 - counted as an error
            self.tally.record(kind, started, None, f"{exc.__class__.__name__}: {exc}")
            return None
        self.tally.record(kind, started, response.status_code, response.text)
        return response.status_code

    def mention(self) -> None:
        from tests.slack.helpers import event_body, mention, signed_headers

        n = next(self.seq)
        channel = self.channels[n % len(self.channels)]
        retry = self.sent_payloads and self.rng.random() < 0.05
        if retry:
            payload = self.rng.choice(self.sent_payloads[-50:])
            with self.tally.lock:
                self.tally.retries += 1
            body, ctype = event_body(payload)
            headers = signed_headers(body, ctype, secret=SECRET, retry_num=1)
            self._post("slack_retry", "/slack/events", body, headers)
            return
        text = self.rng.choice(QUERIES).format(i=n)
        payload = mention(channel, text, user=f"USOAK{n % 20:02d}")
        body, ctype = event_body(payload)
        headers = signed_headers(body, ctype, secret=SECRET)
        status = self._post("mention", "/slack/events", body, headers)
        if status == 200:
            with self.tally.lock:
                self.tally.mention_ts.add(payload["event"]["ts"])
                self.sent_payloads.append(payload)

    def webhook(self) -> None:
        alerts = []
        for _ in range(self.rng.randint(1, 3)):
            name = self.rng.choice(ALERTNAMES)
            instance = f"host-{self.rng.randint(1, 20):02d}:9100"
            alerts.append(
                {
                    "status": "firing" if self.rng.random() < 0.85 else "resolved",
                    "labels": {"alertname": name, "instance": instance, "severity": "warning"},
                    "annotations": {"summary": f"{name} on {instance}"},
                    "startsAt": "2026-11-25T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": hashlib.sha1(f"{name}{instance}".encode()).hexdigest()[:16],
                }
            )
        body = json.dumps(
            {
                "version": "4",
                "groupKey": f'{{}}:{{alertname="{alerts[0]["labels"]["alertname"]}"}}',
                "status": "firing",
                "receiver": "triagebot",
                "groupLabels": {},
                "commonLabels": {},
                "commonAnnotations": {},
                "externalURL": "http://alertmanager:9093",
                "alerts": alerts,
            }
        ).encode()
        headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
        status = self._post("webhook", "/webhooks/alertmanager", body, headers)
        with self.tally.lock:
            self.tally.alerts_sent += len(alerts)
            if status == 202:
                self.tally.alerts_accepted += len(alerts)

    def click(self) -> None:
        from bot.slack.ids import ActionId
        from tests.slack.helpers import (
            action_values,
            interaction_body,
            load_payload,
            signed_headers,
        )

        posted = [
            c
            for c in self.fake.calls_of("chat.postMessage")[-200:]
            if c.args.get("thread_ts") and c.args.get("channel", "").startswith("CSOAK0")
        ]
        values = [action_values(c) for c in posted]
        ids = [v[ActionId.HELPFUL] for v in values if ActionId.HELPFUL in v]
        if not ids:
            return
        answer_id = self.rng.choice(ids)
        name = (
            "block_actions_helpful.json"
            if self.rng.random() < 0.6
            else "block_actions_not_helpful.json"
        )
        payload = load_payload(
            name, answer_id=answer_id, response_url=self.fake.response_url("soak")
        )
        user = f"UCLICK{next(self.seq):06d}"
        payload["user"]["id"] = user
        body, ctype = interaction_body(payload)
        headers = signed_headers(body, ctype, secret=SECRET)
        status = self._post("click", "/slack/events", body, headers)
        if status == 200:
            with self.tally.lock:
                self.tally.clicks += 1
                self.tally.click_users.add(user)


def paced(rate: float, stop: threading.Event, pool: ThreadPoolExecutor, func: Any) -> None:
    """Submit ``func`` ``rate`` times per second (fixed schedule, no catch-up bursts)."""
    if rate <= 0:
        return
    interval = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        pool.submit(func)
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()


def prepare_data_dir(run_dir: Path, template: Path | None) -> Path:
    data_dir = run_dir / "data"
    if template:
        shutil.copytree(template, data_dir)
        return data_dir
    env = {
        **os.environ,
        "TRIAGEBOT_DATA_DIR": str(data_dir),
        "TRIAGEBOT_SCHEDULER_ENABLED": "false",
    }
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "triagebot"), "samples", "load"], env=env, check=True
    )
    return data_dir


def start_server(data_dir: Path, port: int, api_url: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "TRIAGEBOT_DATA_DIR": str(data_dir),
        "TRIAGEBOT_HOST": "127.0.0.1",
        "TRIAGEBOT_PORT": str(port),
        "TRIAGEBOT_SCHEDULER_ENABLED": "false",
        "TRIAGEBOT_LOAD_SAMPLES": "false",
        "TRIAGEBOT_LOG_LEVEL": "WARNING",
        "TRIAGEBOT_ALERT_CHANNEL": ALERT_CHANNEL,
        "TRIAGEBOT_WEBHOOK_TOKENS": json.dumps({"alertmanager": TOKEN}),
        "SLACK_BOT_TOKEN": "xoxb-soak",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api_url,
    }
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the process ends
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "triagebot"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir.parent,
    )


def wait_ready(base_url: str, proc: subprocess.Popen, timeout: float = 600.0) -> float:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base_url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in time")


def db_counts(data_dir: Path, tally: Tally) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{data_dir / 'triagebot.db'}?mode=ro", uri=True)
    try:
        one = lambda q, *p: conn.execute(q, p).fetchone()[0]  # noqa: E731
        ts_rows = conn.execute(
            "SELECT message_ts, count(*) FROM triage_answers WHERE surface = 'slack_mention' "
            "GROUP BY message_ts"
        ).fetchall()
        users = [r[0] for r in conn.execute("SELECT user_id FROM feedback")]
        return {
            "webhook_events": one("SELECT count(*) FROM events WHERE source = 'alertmanager'"),
            "webhook_events_unprocessed": one(
                "SELECT count(*) FROM events WHERE source = 'alertmanager' AND outcome = 'queued'"
            ),
            "alert_groups": one("SELECT count(*) FROM alert_groups"),
            "mention_answers": sum(c for ts, c in ts_rows if ts in tally.mention_ts),
            "mentions_answered_twice": sum(
                1 for ts, c in ts_rows if ts in tally.mention_ts and c > 1
            ),
            "feedback_rows": sum(1 for u in users if u in tally.click_users),
        }
    finally:
        conn.close()


def replies(fake: Any, tally: Tally) -> tuple[int, int]:
    per_ts: dict[str, int] = defaultdict(int)
    for c in fake.calls_of("chat.postMessage"):
        ts = c.args.get("thread_ts")
        if ts in tally.mention_ts:
            per_ts[ts] += 1
    return len(per_ts), sum(1 for n in per_ts.values() if n > 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=30.0, help="load before the RSS baseline")
    parser.add_argument("--mention-rate", type=float, default=2.0, help="@mentions per second")
    parser.add_argument("--webhook-rate", type=float, default=2.0, help="webhook calls per second")
    parser.add_argument("--click-rate", type=float, default=1.0, help="feedback clicks per second")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--template", type=Path, default=None, help="prepared data folder to copy")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from tests.fakes.slack_api import FakeSlackAPI

    run_dir = Path(tempfile.mkdtemp(prefix="triagebot-soak-"))
    print(f"run folder: {run_dir}", file=sys.stderr)
    data_dir = prepare_data_dir(run_dir, args.template)
    fake = FakeSlackAPI().start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    proc = start_server(data_dir, port, fake.api_url, run_dir / "server.log")
    try:
        ready_s = wait_ready(base_url, proc)
        print(f"server pid {proc.pid} ready after {ready_s:.1f}s", file=sys.stderr)
        tally = Tally()
        load = Load(base_url, fake, tally, args.channels, args.seed)
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="soak")
        drivers = [
            threading.Thread(target=paced, args=(rate, stop, pool, func), daemon=True)
            for rate, func in (
                (args.mention_rate, load.mention),
                (args.webhook_rate, load.webhook),
                (args.click_rate, load.click),
            )
        ]
        started = time.monotonic()
        for d in drivers:
            d.start()
        stop.wait(min(args.warmup, args.seconds))
        rss_start = rss_kb(proc.pid)
        rss_trace = [(round(time.monotonic() - started), rss_start)]
        while time.monotonic() - started < args.seconds:
            stop.wait(min(10.0, args.seconds - (time.monotonic() - started)))
            rss_trace.append((round(time.monotonic() - started), rss_kb(proc.pid)))
            elapsed = time.monotonic() - started
            print(f"  {elapsed:5.0f}s  rss {rss_trace[-1][1] / 1024:.0f} MiB", file=sys.stderr)
        stop.set()
        for d in drivers:
            d.join()
        pool.shutdown(wait=True)
        load_seconds = time.monotonic() - started
        # Drain: wait until every mention has its reply and the stored counts stop moving.
        drain_started = time.monotonic()
        last, stable = None, 0
        while time.monotonic() - drain_started < 180:
            counts = db_counts(data_dir, tally)
            answered, _ = replies(fake, tally)
            snapshot = (counts["webhook_events"], counts["feedback_rows"], answered)
            done = (
                answered >= len(tally.mention_ts)
                and counts["webhook_events"] >= tally.alerts_accepted
                and counts["feedback_rows"] >= tally.clicks
                and counts["webhook_events_unprocessed"] == 0
            )
            stable = stable + 1 if snapshot == last else 0
            last = snapshot
            if done or stable >= 10:
                break
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_started
        rss_end = rss_kb(proc.pid)
        import httpx

        metrics_text = httpx.get(base_url + "/metrics", timeout=10).text
        counts = db_counts(data_dir, tally)
        answered, twice = replies(fake, tally)
        thanks = len(
            [
                c
                for c in fake.calls_of("chat.postEphemeral")
                if c.args.get("user") in tally.click_users
                and "Thanks, recorded" in c.args.get("text", "")
            ]
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        fake.stop()

    kinds = sorted(tally.statuses)
    report: dict[str, Any] = {
        "seconds": round(load_seconds, 1),
        "drain_seconds": round(drain_s, 1),
        "rates": {
            "mention": args.mention_rate,
            "webhook": args.webhook_rate,
            "click": args.click_rate,
        },
        "requests": {k: sum(tally.statuses[k].values()) for k in kinds},
        "statuses": {k: dict(tally.statuses[k]) for k in kinds},
        "errors": {k: len(tally.errors[k]) for k in kinds},
        "error_samples": {k: tally.errors[k][:3] for k in kinds if tally.errors[k]},
        "http_5xx": sum(n for k in kinds for s, n in tally.statuses[k].items() if s >= 500),
        "latency_ms": {
            k: {
                f"p{q}": round(percentile(tally.latencies[k], q) * 1000, 1)
                for q in (50, 95, 99)
            }
            for k in kinds
        },
        "rss_mib": {
            "start_after_warmup": round(rss_start / 1024, 1),
            "end": round(rss_end / 1024, 1),
            "growth_pct": round(100.0 * (rss_end - rss_start) / rss_start, 2),
            "max": round(max(r for _, r in rss_trace) / 1024, 1),
        },
        "reconciliation": {
            "mentions_sent": len(tally.mention_ts),
            "mention_retries_sent": tally.retries,
            "mentions_with_reply": answered,
            "mentions_replied_twice": twice,
            "mention_answers_stored": counts["mention_answers"],
            "mentions_answered_twice_in_db": counts["mentions_answered_twice"],
            "alerts_sent": tally.alerts_sent,
            "alerts_accepted": tally.alerts_accepted,
            "alert_events_stored": counts["webhook_events"],
            "alert_events_unprocessed": counts["webhook_events_unprocessed"],
            "alert_groups": counts["alert_groups"],
            "clicks_sent": tally.clicks,
            "feedback_rows_stored": counts["feedback_rows"],
            "thanks_ephemerals": thanks,
        },
        "spool_metrics": [
            line for line in metrics_text.splitlines() if line.startswith("triagebot_spool")
        ],
        "run_folder": str(run_dir),
    }
    rec = report["reconciliation"]
    report["lost"] = {
        "mentions_without_reply": rec["mentions_sent"] - rec["mentions_with_reply"],
        "alerts": rec["alerts_accepted"] - rec["alert_events_stored"],
        "feedback": rec["clicks_sent"] - rec["feedback_rows_stored"],
    }
    ok = (
        report["http_5xx"] == 0
        and not any(report["lost"].values())
        and rec["mentions_replied_twice"] == 0
        and report["rss_mib"]["growth_pct"] < 10
    )
    report["pass"] = ok
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
