"""Embedding backends side by side: torch (sentence-transformers) against onnx-int8.

Each backend runs in a fresh process (so that its resident memory is its own, and torch is
never loaded by the onnx one once its export exists), the two alternating ``--rounds`` times
so that the machine's drift shows in the spread instead of favouring one. Per run: load
time, resident memory after loading and after the work, texts per second for short alert
texts and for ticket-length texts (batches of 32), and the latency of one short query (what
triage pays per alert). Texts come from ``../shared/data`` (alert rules, ITSM tickets) when
it is there, else from the bundled samples. Agreement of the vectors (cosine between the
backends, same text) is printed too.

    .venv/bin/python bench/embed_backends.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BACKENDS = ("torch", "onnx-int8")


def texts(limit_short: int, limit_long: int) -> tuple[list[str], list[str]]:
    """Short alert texts and ticket-length texts, real data when available."""
    alerts = SHARED / "alerts" / "awesome-prometheus-alerts.jsonl"
    tickets = SHARED / "tickets" / "itsm-train.jsonl"
    if not (alerts.exists() and tickets.exists()):
        alerts = tickets = ROOT / "knowledge" / "samples" / "incidents.jsonl"

    def read(path: Path, limit: int) -> list[str]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
        out = [f"{r.get('title', '')} {r.get('description', '')}".strip() for r in rows]
        return (out * (limit // max(1, len(out)) + 1))[:limit]

    return read(alerts, limit_short), read(tickets, limit_long)


def worker(backend: str, cache_dir: Path, out: Path, short_n: int, long_n: int,
           queries: int) -> None:
    """One measured run in this process; writes its figures (and vectors) to ``out``."""
    import numpy as np
    import psutil

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from knowledge.embed import load_embedder

    process = psutil.Process()
    short, long = texts(short_n, long_n)
    start = time.perf_counter()
    embedder = load_embedder(backend=backend, cache_dir=cache_dir, threads=2)
    embedder.encode(short[:8])  # warm
    load_s = time.perf_counter() - start
    rss_loaded = process.memory_info().rss
    start = time.perf_counter()
    short_vectors = embedder.encode(short)
    short_rate = len(short) / (time.perf_counter() - start)
    start = time.perf_counter()
    embedder.encode(long)
    long_rate = len(long) / (time.perf_counter() - start)
    latencies = []
    for text in short[:queries]:
        start = time.perf_counter()
        embedder.encode_one(text)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    np.save(out.with_suffix(".npy"), short_vectors[:200])
    out.write_text(json.dumps({
        "backend": backend, "load_s": round(load_s, 2),
        "rss_loaded_mb": round(rss_loaded / 2**20), "rss_after_mb":
            round(process.memory_info().rss / 2**20),
        "short_per_s": round(short_rate, 1), "tickets_per_s": round(long_rate, 1),
        "query_p50_ms": round(statistics.median(latencies), 1),
        "query_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "torch_loaded": "torch" in sys.modules,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--short", type=int, default=1024, help="short alert texts per run")
    parser.add_argument("--tickets", type=int, default=256, help="ticket texts per run")
    parser.add_argument("--queries", type=int, default=200, help="single queries per run")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the onnx export is kept (default: a temporary folder)")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="tb-onnx-"))
    if args.worker:
        worker(args.worker, cache_dir, args.out, args.short, args.tickets, args.queries)
        return

    import numpy as np

    scratch = Path(tempfile.mkdtemp(prefix="tb-embed-bench-"))
    # the export is made once, before the measured runs (its cost is reported apart)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                    "from knowledge.embed_onnx import OnnxEmbedder; from pathlib import Path; "
                    "OnnxEmbedder(cache_dir=Path(sys.argv[2]))", str(ROOT), str(cache_dir)],
                   check=True)
    export_s = time.perf_counter() - start
    runs: list[dict] = []
    for round_no in range(args.rounds):
        for backend in BACKENDS if round_no % 2 == 0 else reversed(BACKENDS):
            out = scratch / f"{backend}-{round_no}.json"
            subprocess.run([sys.executable, __file__, "--worker", backend, "--out", str(out),
                            "--cache-dir", str(cache_dir), "--short", str(args.short),
                            "--tickets", str(args.tickets), "--queries", str(args.queries)],
                           check=True)
            runs.append(json.loads(out.read_text()) | {"round": round_no})
            print(json.dumps(runs[-1]), flush=True)
    cosine = (np.load(scratch / "torch-0.npy") * np.load(scratch / "onnx-int8-0.npy")).sum(1)
    summary = {"export_s_including_process_start": round(export_s, 1),
               "cosine_mean": round(float(cosine.mean()), 4),
               "cosine_min": round(float(cosine.min()), 4), "machine": os.uname().nodename,
               "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    for backend in BACKENDS:
        mine = [r for r in runs if r["backend"] == backend]
        summary[backend] = {key: [r[key] for r in mine] for key in mine[0]
                            if key not in {"backend", "round"}}
    print(json.dumps(summary))
    print("\n| figure | " + " | ".join(BACKENDS) + " |\n| --- |" + " --- |" * len(BACKENDS))
    for key in summary[BACKENDS[0]]:
        cells = [" / ".join(str(v) for v in summary[b][key]) for b in BACKENDS]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
