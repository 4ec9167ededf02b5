"""Warm latency of ``Assistant.triage()`` for one short alert, with 10k incidents and 1k runbook
documents indexed.

Knowledge (built once into ``--data-dir`` and reused on later runs):

* incidents: real texts from ``../shared/data`` (service-desk tickets, alert rules, postmortem
  summaries) plus our samples, repeated with new ids up to ``--incidents``;
* runbooks: the prometheus-operator runbooks plus our sample runbooks, copied under varied paths
  (every 4th copy with a varied title too) up to ``--runbooks`` documents;
* without ``../shared/data``: our samples only, repeated (same construction).

Everything is stored and indexed through the product's own code (``import_records``,
``index_runbooks``); the embeddings of the build are cached on disk (``--cache``) so a rebuild
costs minutes only once. Queries are short firing alerts (prometheus-operator ``text`` plus
alert-rule titles), measured warm: ``Assistant.warm_up()``, a few unmeasured queries, then
``--queries`` measured ones. Reported: p50/p95/p99 of the whole call and the mean/p95 per stage
(embed, classify, search incidents, search runbooks, DB lookups, suggest), plus load average.

    .venv/bin/python bench/triage_latency.py [--queries 300] [--data-dir /tmp/triage-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "knowledge" / "samples"
sys.path.insert(0, str(ROOT))


class CachingEmbedder:
    """The real embedder with a disk cache keyed by text (build only; queries use the real one)."""

    def __init__(self, inner, path: Path) -> None:
        self.inner, self.path = inner, path
        self.model_name, self.dim = inner.model_name, inner.dim
        self.cache: dict[str, np.ndarray] = (
            pickle.loads(path.read_bytes()) if path.exists() else {})

    def encode(self, texts):
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True)
                       if k not in self.cache}.items())
        if todo:
            vecs = self.inner.encode([t for _, t in todo])
            self.cache.update({k: v for (k, _), v in zip(todo, vecs, strict=True)})
            self.path.write_bytes(pickle.dumps(self.cache))
        return np.vstack([self.cache[k] for k in keys]) if keys else self.inner.encode([])

    def encode_one(self, text):
        return self.encode([text])[0]


def _records(n: int):
    from knowledge.records import read_records

    files = [SAMPLES / "incidents.jsonl"]
    if SHARED.exists():
        names = ("tickets/itsm-train.jsonl", "alerts/awesome-prometheus-alerts.jsonl",
                 "incidents/postmortems.jsonl")
        files = [*(SHARED / n for n in names), *files]
    base = [r for f in files for r in read_records(f).records]
    out, round_ = list(base[:n]), 1
    while len(out) < n:
        for r in base[: n - len(out)]:
            out.append(r.__class__(**{**r.__dict__, "id": f"{r.id}-r{round_}"}))
        round_ += 1
    return out


def _runbook_folder(dest: Path, n_docs: int) -> Path:
    sources = [SAMPLES / "runbooks"]
    if SHARED.exists():
        sources.insert(0, SHARED / "runbooks/prometheus-operator/corpus")
    files = [(src, p) for src in sources for p in sorted(src.rglob("*.md"))]
    shutil.rmtree(dest, ignore_errors=True)
    count, copy = 0, 0
    while count < n_docs:
        for src, path in files:
            if count >= n_docs:
                break
            rel = path.relative_to(src)
            target = dest / (f"site{copy}" if copy else "base") / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8")
            if copy % 4 == 1:  # every 4th copy also varies the title (another cluster's copy)
                text = re.sub(r"^# (.+)$", rf"# \1 (cluster {copy})", text, count=1,
                              flags=re.MULTILINE)
            target.write_text(text, encoding="utf-8")
            count += 1
        copy += 1
    return dest


def _queries(n: int) -> list[str]:
    texts: list[str] = []
    if SHARED.exists():
        queries = SHARED / "runbooks/prometheus-operator/queries.jsonl"
        for line in queries.read_text().splitlines():
            texts.append(json.loads(line)["text"])
        for line in (SHARED / "alerts/awesome-prometheus-alerts.jsonl").read_text().splitlines():
            row = json.loads(line)
            texts.append(f"[{row.get('severity', 'warning')}] {row['title']}: "
                         f"{row.get('description', '')}")
    else:
        for line in (SAMPLES / "queries.jsonl").read_text().splitlines():
            texts.append(str(json.loads(line).get("text", "")))
    texts = [t for t in texts if t.strip()]
    random.Random(0).shuffle(texts)
    return [texts[i % len(texts)] for i in range(n)]


def build(data_dir: Path, cache: Path, n_incidents: int, n_runbooks: int) -> None:
    from bot.app import build_services
    from bot.config import Settings

    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False)
    services = build_services(settings)
    if services.knowledge.sizes()["incidents"] >= n_incidents:
        services.close()
        return
    embedder = CachingEmbedder(services.knowledge.embedder, cache)
    services.knowledge.embedder = embedder
    services.classifiers.embedder = embedder
    t0 = time.perf_counter()
    folder = _runbook_folder(data_dir.parent / "bench-runbooks", n_runbooks)
    services.knowledge.index_runbooks(folder, source="bench")
    services.knowledge.import_records(_records(n_incidents), kind="incident", source_name="bench")
    services.classifiers.train_all(actor="bench")
    print(f"built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    services.close()


def measure(data_dir: Path, n_queries: int, warm: int) -> dict:
    from bot.app import build_services
    from bot.config import Settings
    from bot.events import Event, EventKind, EventSource

    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False)
    t0 = time.perf_counter()
    services = build_services(settings)
    assistant = services.assistant
    assistant.warm_up()
    load_s = time.perf_counter() - t0
    texts = _queries(n_queries + warm)
    for text in texts[:warm]:
        assistant.triage(Event(source=EventSource.CLI, kind=EventKind.ALERT, text=text))
    totals, stages = [], []
    for text in texts[warm:]:
        timings: dict[str, float] = {}
        event = Event(source=EventSource.CLI, kind=EventKind.ALERT, text=text)
        started = time.perf_counter()
        assistant.triage(event, timings=timings)
        totals.append((time.perf_counter() - started) * 1000)
        stages.append(timings)
    sizes = services.knowledge.sizes()
    with services.sessions() as session:
        from bot.store import repository as repo

        n_docs = repo.count_runbook_documents(session=session)
    services.close()

    def pct(values, q):
        return round(float(np.percentile(values, q)), 1)

    return {
        "queries": len(totals),
        "incidents": sizes["incidents"],
        "runbook_documents": n_docs,
        "runbook_sections": sizes["runbooks"],
        "p50_ms": pct(totals, 50), "p95_ms": pct(totals, 95), "p99_ms": pct(totals, 99),
        "stages_mean_ms": {k: round(float(np.mean([s.get(k, 0) for s in stages])), 2)
                           for k in stages[0]},
        "stages_p95_ms": {k: pct([s.get(k, 0) for s in stages], 95) for k in stages[0]},
        "load_seconds": round(load_s, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "real_data": SHARED.exists(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--runbooks", type=int, default=1_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/triage-bench/data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/triage-bench-embeddings.pkl"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    build(args.data_dir, args.cache, args.incidents, args.runbooks)
    print(json.dumps(measure(args.data_dir, args.queries, args.warm), indent=2))


if __name__ == "__main__":
    main()
