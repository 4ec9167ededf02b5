"""Alert storm: 10,000 Alertmanager alerts from 50 problems, as fast as the server takes them.

Starts the real server (`triagebot serve`) in a subprocess on a loopback port, with a local
stand-in for the Slack Web API, and posts alerts with several concurrent clients. Reports
alerts accepted per second, accept latency percentiles, Slack posts and updates made, how
many alerts were stored, and the server's peak memory (VmHWM).

    .venv/bin/python bench/storm.py [--alerts 10000] [--problems 50] [--concurrency 8]

Each request carries `--batch` alerts (default 1: the strictest case). Bounded: every
request goes to 127.0.0.1, and the run stops after the alerts are sent (or --timeout).

Several replicas: `--replicas 2 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test`
starts two servers on one fresh PostgreSQL database (dropped at the end) and one data folder,
and sends each request to a replica chosen at random, as a Service balances.
`--restart-leader` stops the replica that groups (SIGTERM, as a rolling update does; the first
replica if none says it leads) once half the alerts are sent and starts it again; the clients
skip it while it is down. `--kill-leader` does the same with SIGKILL (a crash). The figure
to watch: threads posted = problems.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import free_port  # noqa: E402

from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402
from tests.postgres import fresh_database  # noqa: E402

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
                    "runbook_url": f"https://runbooks.example.com/runbooks/{name.lower()}",
                },
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                # as Prometheus sends it: the rule's expression, the same for all its alerts
                "generatorURL": f"http://prometheus-0:9090/graph?g0.expr={name}%7Bjob%3D%22"
                                f"node%22%7D+%3E+0.9&g0.tab=1",
                "fingerprint": fp,
                "_group": f"{name}/{scope}-{p}",
            }
        )
    return alerts


def notification(alerts: list[dict]) -> bytes:
    group = alerts[0]["_group"]
    clean = [{k: v for k, v in a.items() if k != "_group"} for a in alerts]
    # the labels every alert of the notification shares, as Alertmanager computes them
    common = dict(clean[0]["labels"])
    for a in clean[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return json.dumps(
        {"version": "4", "groupKey": f"{{}}:{{{group}}}", "status": "firing",
         "receiver": "triagebot", "externalURL": "http://alertmanager-0:9093",
         "commonLabels": common, "alerts": clean}
    ).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def send_all(
    servers: list[Server], bodies: list[bytes], concurrency: int,
    halfway: threading.Event | None = None, client: str = "raw",
) -> tuple[list[float], int]:
    """Post the bodies over the servers that are up; sets ``halfway`` midway. ``client``:
    "raw" (HTTP/1.1 keep-alive written by hand) or "httpx" (the figures before 2026-12-02)."""
    if client == "raw":
        return await send_all_raw(servers, bodies, concurrency, halfway)
    latencies: list[float] = []
    errors = 0
    sent = 0
    rng = random.Random(0)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while not queue.empty():
            body = queue.get_nowait()
            sent += 1
            if halfway is not None and sent == len(bodies) // 2:
                halfway.set()
                await asyncio.sleep(0.2)  # let the restart begin
            up = [s for s in servers if s.up.is_set()]
            # At random, as a Service balances: round-robin would send each problem to one
            # replica whenever the number of problems is a multiple of the replicas.
            url = rng.choice(up).base + "/webhooks/alertmanager"
            started = time.perf_counter()
            try:
                answer = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError:  # the replica went down under us: a caller retries
                queue.put_nowait(body)
                await asyncio.sleep(0.05)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 202:
                errors += 1

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, errors


async def send_all_raw(
    servers: list[Server], bodies: list[bytes], concurrency: int,
    halfway: threading.Event | None = None,
) -> tuple[list[float], int]:
    """:func:`send_all` with requests written by hand on keep-alive connections (one per
    client and replica). The client shares the machine's cores with the server: httpx's
    AsyncClient spent about 2 ms of CPU per request here (1.2 ms with sniffio installed)
    and could not send more than about 420 requests/s to a server that answers at once, so
    it measured itself as much as the server. This one costs a small fraction of that."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    rng = random.Random(0)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    head = (
        "POST /webhooks/alertmanager HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\n"
        "content-length: {}\r\n\r\n"
    )

    async def exchange(
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> int:
        reader, writer = conn
        writer.write(request)
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return status

    async def worker() -> None:
        nonlocal errors, sent
        conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        while not queue.empty():
            body = queue.get_nowait()
            sent += 1
            if halfway is not None and sent == len(bodies) // 2:
                halfway.set()
                await asyncio.sleep(0.2)  # let the restart begin
            up = [s for s in servers if s.up.is_set()]
            server = rng.choice(up)  # at random, as a Service balances (see send_all)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(30):
                    if server.base not in conns:
                        conns[server.base] = await asyncio.open_connection(
                            "127.0.0.1", server.port
                        )
                    status = await exchange(
                        conns[server.base], head.format(len(body)).encode() + body
                    )
            except (OSError, EOFError, ValueError, TimeoutError):
                # The replica went down under us (or answered in a way we cannot read):
                # a caller retries, on a new connection.
                old = conns.pop(server.base, None)
                if old is not None:
                    old[1].close()
                queue.put_nowait(body)
                await asyncio.sleep(0.05)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 202:
                errors += 1
        for _, writer in conns.values():
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def prepare_data_dir(data_dir: Path, env: dict[str, str]) -> None:
    triagebot = str(ROOT / ".venv" / "bin" / "triagebot")
    subprocess.run([triagebot, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([triagebot, "samples", "load", "--if-empty"], env=env, check=True,
                   capture_output=True)


class Server:
    """One `triagebot serve` replica on its own loopback port."""

    def __init__(self, env: dict[str, str], taken: set[int]) -> None:
        self.port = free_port()
        while self.port in taken:  # a port just freed can be handed out again
            self.port = free_port()
        taken.add(self.port)
        self.env = {**env, "TRIAGEBOT_PORT": str(self.port)}
        self.base = f"http://127.0.0.1:{self.port}"
        self.up = threading.Event()
        self.process: subprocess.Popen | None = None
        self.peak_mb = 0.0

    def start(self) -> None:
        log_path = Path(self.env["TRIAGEBOT_DATA_DIR"]) / f"server-{self.port}.log"
        with log_path.open("ab") as log_file:  # the server's log, kept beside its data
            self.process = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "triagebot"), "serve"], env=self.env,
                stdout=subprocess.DEVNULL, stderr=log_file,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    self.up.set()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("server did not become ready")

    def is_leader(self) -> bool:
        try:
            body = httpx.get(self.base + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return False
        return "triagebot_alert_grouping_leader 1.0" in body

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (an orderly stop), or SIGKILL with ``kill`` (a crash)."""
        if self.process is None:
            return
        self.peak_mb = max(self.peak_mb, vm_hwm_mb(self.process.pid))
        self.up.clear()
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.process = None


def restart_leader(
    servers: list[Server], halfway: threading.Event, log: list[str], kill: bool = False
) -> None:
    """Halfway through the storm: SIGTERM (SIGKILL with ``kill``) the grouping replica,
    then start it again."""
    halfway.wait()
    leader = next((s for s in servers if s.is_leader()), servers[0])
    started = time.perf_counter()
    role = "the leader" if leader.is_leader() else "a replica (none leads)"
    leader.stop(kill=kill)
    signal = "SIGKILL" if kill else "SIGTERM"
    log.append(f"sent {signal} to {role} (port {leader.port}) at half the alerts")
    others = [s for s in servers if s is not leader]
    deadline = time.monotonic() + 60
    while others and time.monotonic() < deadline:
        if any(s.is_leader() for s in others):
            log.append(
                f"another replica was grouping {time.perf_counter() - started:.1f} s "
                f"after the {signal}"
            )
            break
        time.sleep(0.1)
    leader.start()
    log.append(f"it was serving again after {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1, help="alerts per request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--postgres", default="", help="admin URL: run on a fresh database")
    parser.add_argument("--restart-leader", action="store_true")
    parser.add_argument("--kill-leader", action="store_true",
                        help="as --restart-leader, with SIGKILL (a crash)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw: a lean hand-written HTTP/1.1 client (default); httpx: "
                             "the client of the figures before 2026-12-02")
    args = parser.parse_args()

    fake = FakeSlackAPI().start()
    tmp = tempfile.mkdtemp(prefix="triagebot-storm-")
    data_dir = args.data_dir or Path(tmp) / "data"
    cleanup = contextlib.ExitStack()
    database_url = f"sqlite:///{data_dir / 'triagebot.db'}"
    if args.postgres:
        database_url = cleanup.enter_context(
            fresh_database(args.postgres, prefix="triagebot_storm")
        )
    env = {
        **os.environ,
        "TRIAGEBOT_DATA_DIR": str(data_dir),
        "TRIAGEBOT_DATABASE_URL": database_url,
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
    ports: set[int] = set()
    servers = [Server(env, ports) for _ in range(args.replicas)]
    restarts: list[str] = []
    try:
        for server in servers:
            server.start()
        alerts = make_alerts(args.alerts, args.problems)
        by_group: dict[str, list[dict]] = {}
        bodies = []
        for a in alerts:
            by_group.setdefault(a["_group"], []).append(a)
            if len(by_group[a["_group"]]) == args.batch:
                bodies.append(notification(by_group.pop(a["_group"])))
        bodies.extend(notification(group) for group in by_group.values() if group)
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.connect() as conn:
            first_id = conn.execute(text("select coalesce(max(id), 0) from events")).scalar()
            first_group = conn.execute(
                text("select coalesce(max(id), 0) from alert_groups")
            ).scalar()
        print(f"sending {len(alerts)} alerts in {len(bodies)} requests ...", flush=True)
        cpu_before = sum(cpu_seconds(s.process.pid) for s in servers if s.process)
        started = time.perf_counter()
        halfway = threading.Event() if args.restart_leader or args.kill_leader else None
        restarter = None
        if halfway is not None:
            restarter = threading.Thread(
                target=restart_leader, args=(servers, halfway, restarts, args.kill_leader)
            )
            restarter.start()
        latencies, errors = asyncio.run(
            send_all(servers, bodies, args.concurrency, halfway, args.client)
        )
        elapsed = time.perf_counter() - started
        # Server CPU while the alerts were sent (meaningful without a restart in between).
        server_cpu = sum(cpu_seconds(s.process.pid) for s in servers if s.process) - cpu_before
        if restarter is not None:
            restarter.join()
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
        with engine.connect() as conn:
            opened = conn.execute(
                text("select count(*) from alert_groups where id > :g"), {"g": first_group}
            ).scalar()
        engine.dispose()
        updates = len(fake.calls_of("chat.update"))
        lat = np.asarray(latencies)
        peak = max(
            max(s.peak_mb, vm_hwm_mb(s.process.pid) if s.process else 0.0) for s in servers
        )
        leaders = sum(s.is_leader() for s in servers)
        rows = [
            ("replicas (ports) / database",
             f"{args.replicas} ({', '.join(str(s.port) for s in servers)}) / "
             f"{database_url.split(':', 1)[0]}"),
            ("alerts sent", f"{len(alerts)} ({len(bodies)} requests, {args.batch}/request, "
                            f"{args.concurrency} concurrent, {args.client} client)"),
            ("errors (non-202)", str(errors)),
            ("alerts accepted per second", f"{len(alerts) / elapsed:.0f}"),
            ("accept latency p50 / p95 / p99 ms",
             f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f} / "
             f"{np.percentile(lat, 99):.1f}"),
            ("server CPU while sending s (per alert ms)",
             f"{server_cpu:.1f} ({server_cpu / len(alerts) * 1000:.2f}) in {elapsed:.1f} s"),
            ("alerts stored", f"{stored} (still queued: {queued})"),
            ("all grouped (outcome recorded) after s",
             f"{grouped_at:.1f}" if grouped_at is not None else "-"),
            ("all processed (grouped, triaged, posted) after s", f"{processed_at:.1f}"),
            ("Slack threads posted (problems)", f"{posts} ({args.problems})"),
            ("alert groups opened", str(opened)),
            ("Slack top-message updates", str(updates)),
            ("replicas leading the grouping at the end", str(leaders)),
            ("server peak RSS MB (largest replica)", f"{peak:.0f}"),
        ]
        for line in restarts:
            print(line)
        print("\n| figure | value |\n| --- | --- |")
        for name, value in rows:
            print(f"| {name} | {value} |")
    finally:
        for server in servers:
            server.stop()
        fake.stop()
        cleanup.close()


if __name__ == "__main__":
    main()
