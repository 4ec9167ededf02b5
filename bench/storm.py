"""Alert storm: 10,000 Alertmanager alerts from 50 problems, as fast as the server takes them.

Starts the real server (`triagebot serve`) in a subprocess on a loopback port, with a local
stand-in for the Slack Web API, and posts alerts with several concurrent clients. Reports
alerts accepted per second, accept latency percentiles, Slack posts and updates made, how
many alerts were stored, and the server's peak memory (VmHWM).

    .venv/bin/python bench/storm.py [--alerts 10000] [--problems 50] [--concurrency 8]

Each request carries `--batch` alerts (default 1: the strictest case). Bounded: every
request goes to 127.0.0.1, and the run stops after the alerts are sent (or --timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import free_port  # noqa: E402

from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402

TOKEN = "bench-token"
CHANNEL = "CSTORM"
PROBLEMS = [
    ("KubePodCrashLooping", "namespace"),
    ("NodeFilesystemSpaceFillingUp", "cluster"),
    ("PostgresReplicationLag", "cluster"),
    ("HTTP5xxRateHigh", "namespace"),
    ("KafkaConsumerLagHigh", "service"),
]


def make_alerts(total: int, problems: int) -> list[dict]:
    """``total`` alerts spread over ``problems`` distinct problems (alert name + scope)."""
    alerts = []
    for i in range(total):
        p = i % problems
        name, scope = PROBLEMS[p % len(PROBLEMS)]
        labels = {
            "alertname": name,
            "severity": "critical",
            scope: f"{scope}-{p}",
            "service": f"svc-{p}",
            "instance": f"10.{p}.{(i // problems) // 250}.{(i // problems) % 250}:9100",
        }
        fp = hashlib.sha1(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        alerts.append(
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"{name} in {scope}-{p}",
                    "description": f"{name} firing on {labels['instance']} for 5 minutes.",
                },
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fp,
                "_group": f"{name}/{scope}-{p}",
            }
        )
    return alerts


def notification(alerts: list[dict]) -> bytes:
    group = alerts[0]["_group"]
    clean = [{k: v for k, v in a.items() if k != "_group"} for a in alerts]
    return json.dumps(
        {"version": "4", "groupKey": f"{{}}:{{{group}}}", "status": "firing",
         "receiver": "triagebot", "alerts": clean}
    ).encode()


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def send_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            answer = await client.post(url, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 202:
                errors += 1

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, errors


def prepare_data_dir(data_dir: Path, env: dict[str, str]) -> None:
    triagebot = str(ROOT / ".venv" / "bin" / "triagebot")
    subprocess.run([triagebot, "samples", "load", "--if-empty"], env=env, check=True,
                   capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1, help="alerts per request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    fake = FakeSlackAPI().start()
    tmp = tempfile.mkdtemp(prefix="triagebot-storm-")
    data_dir = args.data_dir or Path(tmp) / "data"
    port = free_port()
    env = {
        **os.environ,
        "TRIAGEBOT_DATA_DIR": str(data_dir),
        "TRIAGEBOT_PORT": str(port),
        "TRIAGEBOT_HOST": "127.0.0.1",
        "TRIAGEBOT_SCHEDULER_ENABLED": "false",
        "TRIAGEBOT_WEBHOOK_TOKENS": json.dumps({"alertmanager": TOKEN}),
        "TRIAGEBOT_ALERT_CHANNEL": CHANNEL,
        "TRIAGEBOT_MAX_BODY_BYTES": "5000000",
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": "bench-secret",
        "SLACK_API_URL": fake.api_url,
    }
    print("preparing the data folder (samples) ...", flush=True)
    prepare_data_dir(data_dir, env)
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "triagebot"), "serve"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("server did not become ready")
        alerts = make_alerts(args.alerts, args.problems)
        by_group: dict[str, list[dict]] = {}
        bodies = []
        for a in alerts:
            by_group.setdefault(a["_group"], []).append(a)
            if len(by_group[a["_group"]]) == args.batch:
                bodies.append(notification(by_group.pop(a["_group"])))
        bodies.extend(notification(group) for group in by_group.values() if group)
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{data_dir / 'triagebot.db'}")
        with engine.connect() as conn:
            first_id = conn.execute(text("select coalesce(max(id), 0) from events")).scalar()
            first_group = conn.execute(
                text("select coalesce(max(id), 0) from alert_groups")
            ).scalar()
        print(f"sending {len(alerts)} alerts in {len(bodies)} requests ...", flush=True)
        started = time.perf_counter()
        latencies, errors = asyncio.run(
            send_all(base + "/webhooks/alertmanager", bodies, args.concurrency)
        )
        elapsed = time.perf_counter() - started
        # Wait until the server has processed everything (events leave the "queued" state).
        # Grouped: the only events still queued are the first events of groups whose thread
        # is not posted yet (they stay queued until it is).
        stored = queued = 0
        grouped_at = None
        wait_until = time.monotonic() + args.timeout
        while time.monotonic() < wait_until:
            with engine.connect() as conn:
                stored = conn.execute(
                    text("select count(*) from events where id > :i"), {"i": first_id}
                ).scalar() or 0
                queued = conn.execute(
                    text("select count(*) from events where id > :i and outcome = 'queued'"),
                    {"i": first_id},
                ).scalar() or 0
                unposted = conn.execute(
                    text("select count(*) from alert_groups where id > :g and thread_ts = ''"),
                    {"g": first_group},
                ).scalar() or 0
            if grouped_at is None and stored >= len(alerts) and queued <= unposted:
                grouped_at = time.perf_counter() - started
            if stored >= len(alerts) and queued == 0:
                break
            time.sleep(1)
        processed_at = time.perf_counter() - started
        time.sleep(6)  # let coalesced thread updates go out
        posts = len(fake.calls_of("chat.postMessage"))
        updates = len(fake.calls_of("chat.update"))
        lat = np.asarray(latencies)
        peak = vm_hwm_mb(server.pid)
        rows = [
            ("alerts sent", f"{len(alerts)} ({len(bodies)} requests, {args.batch}/request, "
                            f"{args.concurrency} concurrent)"),
            ("errors (non-202)", str(errors)),
            ("alerts accepted per second", f"{len(alerts) / elapsed:.0f}"),
            ("accept latency p50 / p95 / p99 ms",
             f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f} / "
             f"{np.percentile(lat, 99):.1f}"),
            ("alerts stored", f"{stored} (still queued: {queued})"),
            ("all grouped (outcome recorded) after s",
             f"{grouped_at:.1f}" if grouped_at is not None else "-"),
            ("all processed (grouped, triaged, posted) after s", f"{processed_at:.1f}"),
            ("Slack threads posted (problems)", f"{posts} ({args.problems})"),
            ("Slack top-message updates", str(updates)),
            ("server peak RSS MB", f"{peak:.0f}"),
        ]
        print("\n| figure | value |\n| --- | --- |")
        for name, value in rows:
            print(f"| {name} | {value} |")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        fake.stop()


if __name__ == "__main__":
    main()
