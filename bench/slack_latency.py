"""Slack app latency: ack time and event-to-reply time under a steady stream of @mentions.

Starts the real HTTP server (uvicorn in a thread, free loopback port) with real services on a
data folder (the samples are loaded when it is empty) and the fake Slack Web API from
``tests/fakes``; sends signed ``app_mention`` events at a steady rate, spread over several
channels (Slack itself paces posts to about one per second per channel, and so does the bot);
measures

* ack latency: the HTTP round trip of the event POST (Slack wants it under 3 s), and
* event-to-reply latency: from sending the event until the fake receives the threaded
  ``chat.postMessage`` for it.

    .venv/bin/python bench/slack_latency.py --seconds 60 --rate 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import QUERIES, free_port, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(data_dir: Path, api_url: str, port: int, workers: int):
    from bot.app import build_services
    from bot.config import Settings
    from bot.samples import database_is_empty, load_samples
    from bot.server import Runtime, create_http_app

    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'triagebot.db'}",
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench-secret",
        slack_api_url=api_url,
        scheduler_enabled=False,
        port=port,
        workers=workers,
        load_samples=False,
    )
    services = build_services(settings)
    if database_is_empty(services):
        print("loading samples (first run on this data folder)...", file=sys.stderr)
        load_samples(services)
    runtime = Runtime(settings)
    app = create_http_app(settings, runtime)
    runtime.start(services, background=False)
    return settings, runtime, app


def serve(app, port: int):
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    return server, thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="TRIAGEBOT_WORKERS")
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse a data folder")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    import httpx

    from tests.fakes.slack_api import FakeSlackAPI
    from tests.slack.helpers import signed_headers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fake = FakeSlackAPI().start()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="triagebot-slack-bench-"))
    port = free_port()
    started = time.monotonic()
    settings, runtime, app = build(data_dir, fake.api_url, port, args.workers)
    print(f"services ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    server, thread = serve(app, port)
    url = f"http://127.0.0.1:{port}/slack/events"
    secret = settings.slack_signing_secret

    total = int(args.seconds * args.rate)
    run_id = uuid.uuid4().hex[:8].upper()  # event ids are remembered in the database
    sent_at: dict[str, float] = {}
    acks: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    http = httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=64))

    def send(i: int) -> None:
        ts = f"{int(time.time()) + i}.{uuid.uuid4().int % 1000000:06d}"
        channel = f"CBENCH{i % args.channels:02d}"
        text = QUERIES[i % len(QUERIES)].format(i=i)
        payload = {
            "type": "event_callback",
            "team_id": "T0TEST",
            "api_app_id": "A0BENCH",
            "event_id": f"EvB{run_id}{i:08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0TEST", "user_id": "UBOT", "is_bot": True}],
            "event": {
                "type": "app_mention",
                "user": "UBENCH",
                "text": f"<@UBOT> {text}",
                "ts": ts,
                "event_ts": ts,
                "channel": channel,
            },
        }
        body = json.dumps(payload).encode()
        headers = signed_headers(body, "application/json", secret=secret)
        start = time.monotonic()
        with lock:
            sent_at[ts] = start
        response = http.post(url, content=body, headers=headers)
        elapsed = time.monotonic() - start
        with lock:
            acks.append(elapsed * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    # One warm-up event (first auth.test, first triage) that is not measured.
    warm = threading.Thread(target=send, args=(10_000_000,))
    warm.start()
    warm.join()
    fake.wait_for(lambda c: c.method == "chat.postMessage", timeout=60)
    with lock:
        acks.clear()
        sent_at.clear()
        statuses.clear()

    print(f"sending {total} events at {args.rate}/s over {args.channels} channels...",
          file=sys.stderr)
    begin = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for i in range(total):
            due = begin + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i)
    send_span = time.monotonic() - begin

    wanted = set(sent_at)
    try:
        fake.wait_for(
            lambda c: c.method == "chat.postMessage" and c.args.get("thread_ts") in wanted,
            count=len(wanted),
            timeout=120,
        )
    except AssertionError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    replies: dict[str, float] = {}
    for call in fake.calls_of("chat.postMessage"):
        ts = call.args.get("thread_ts")
        if ts in wanted and ts not in replies:
            replies[ts] = call.at
    reply_ms = [(replies[ts] - sent_at[ts]) * 1000 for ts in replies]

    server.should_exit = True
    thread.join(10)
    http.close()
    runtime.components["workers"].shutdown(wait=False)
    fake.stop()

    rows = [
        ("ack (HTTP response)", acks),
        ("event -> threaded reply", reply_ms),
    ]
    print(f"\n{total} app_mention events at {args.rate}/s for {args.seconds:.0f}s "
          f"(sent in {send_span:.1f}s), {args.channels} channels, {args.workers} workers; "
          f"HTTP statuses {statuses}; replies {len(replies)}/{len(wanted)}\n")
    print("| latency | n | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    figures = {}
    for name, values in rows:
        p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
        top = max(values) if values else float("nan")
        figures[name] = {"n": len(values), "p50": p50, "p95": p95, "p99": p99, "max": top}
        print(f"| {name} | {len(values)} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {top:.1f} |")
    if reply_ms:
        print(f"\nmean event -> reply {statistics.mean(reply_ms):.1f} ms")
    if args.json:
        print(json.dumps(figures, indent=2))
    ok = figures["ack (HTTP response)"]["p99"] < 100 and figures["event -> threaded reply"][
        "p95"] < 500
    print(f"\ntargets (ack p99 < 100 ms, reply p95 < 500 ms): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
