"""Benchmark knowledge.index.VectorIndex's approximate configuration at scale.

For each size the benchmark runs two fresh subprocesses, so that one size's garbage never shows
in another's memory figures:

1. **build**: generate the corpus, compute the exact top-10 of every query with a flat
   inner-product index, build a ``VectorIndex`` (its default approximate configuration, or the
   one given with ``--approx``), save it atomically to a scratch folder;
2. **serve**: measure the process RSS, ``VectorIndex.load`` the saved index, free everything
   else, measure RSS again, then time single-query searches (one FAISS thread, vector search
   alone, one query at a time) and compare their top-10 ids with the exact ones.

Reported: build seconds (train + add, not data generation), query p50/p95 ms wall-clock and the
p95 of the query thread's CPU time (on a shared machine the wall-clock tail is mostly waiting for
a core; the CPU time is what the search itself costs), recall@10 against exact search, the
serving process's RSS with the index loaded ("RSS MB": what a bot process pays, interpreter and
libraries included), the growth due to the index ("index RSS MB"), the saved files' size, the
build process's peak RSS (it includes the float32 corpus built from) and the 1-minute load
average.

Data model (``--data``):

* ``real`` (default): sentence embeddings of real operations texts. ~16k distinct texts from
  ``../shared/data`` (service-desk tickets, alert rules, postmortem summaries, loghub log lines)
  are embedded once with the bundled all-MiniLM-L6-v2 model and cached as ``--real-cache``
  (about 10 minutes on 2 busy cores). ``--queries`` of them are held out as the **queries** (real
  queries, never stored). The remaining ones are the **topic centres** of the corpus: each corpus
  vector is ``normalize(c + s * z)`` for a random centre ``c``, where ``z`` is Gaussian noise with
  the covariance of the real embeddings (so variants differ in the directions real texts differ,
  not uniformly in 384 dimensions) scaled to unit expected norm, and ``s`` (``--spread``,
  default: calibrated) is chosen so that the median cosine between a variant and its centre
  equals the median cosine between a real text and its nearest real neighbour. A 1M corpus is
  thus ~60 paraphrase-like variants of each of ~16k real topics, and queries are real texts that
  fall between topics, as real alerts do.
* ``synthetic``: the same construction without ``../shared/data``: centres are ``--clusters``
  (4000) random unit vectors, noise is isotropic and ``--spread`` defaults to
  0.75; queries are drawn from the same model. Used when the real data is absent.
* ``hard``: the previous benchmark's model, isotropic noise of norm 2.5 around
  ``size / --cluster-size`` random centres (points are nearly uniform on the sphere, neighbours
  are far apart: much harder than real embeddings; kept for comparison).

    .venv/bin/python bench/index_scale.py --sizes 100000,1000000 --queries 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_CACHE = Path("/tmp/triagebot_real_embeddings.npy")


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to peak RSS)."""
    try:  # give freed heap pages back to the OS first, so RSS shows live memory
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return peak_mb()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


# ---------------------------------------------------------------------------------- data
def real_texts(folder: Path) -> list[str]:
    """Distinct texts of the tickets, alerts, postmortems and log lines in ``folder``."""
    texts: list[str] = []
    for rel in ("tickets/itsm-train.jsonl", "alerts/awesome-prometheus-alerts.jsonl",
                "incidents/postmortems.jsonl"):
        path = folder / rel
        if path.exists():
            for line in path.open(encoding="utf-8"):
                rec = json.loads(line)
                text = " ".join(str(rec[f]) for f in ("title", "description") if rec.get(f))
                if text.strip():
                    texts.append(text)
    logs = folder / "logs" / "loghub-2k.jsonl"
    if logs.exists():
        for line in logs.open(encoding="utf-8"):
            rec = json.loads(line)
            text = rec.get("text") or rec.get("line") or ""
            if text.strip():
                texts.append(text)
    return list(dict.fromkeys(texts))


def real_embeddings(cache: Path, folder: Path = SHARED) -> np.ndarray | None:
    """Embeddings of :func:`real_texts` (cached); None when the shared data is absent."""
    if cache.exists():
        return np.load(cache)
    if not folder.exists():
        return None
    from knowledge.embed import Embedder

    texts = real_texts(folder)
    print(f"embedding {len(texts)} real texts into {cache} ...", file=sys.stderr, flush=True)
    vecs = Embedder(threads=os.cpu_count()).encode(texts).astype(np.float32)
    np.save(cache, vecs)
    return vecs


def _normalize(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def nn_cosine_median(vecs: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """Median cosine between a vector (sample) and its nearest other vector."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vecs), min(sample, len(vecs)), replace=False)
    sims = vecs[rows] @ vecs.T
    sims[np.arange(len(rows)), rows] = -2.0
    return float(np.median(sims.max(axis=1)))


def noise_basis(vecs: np.ndarray) -> np.ndarray:
    """Matrix B with ``z @ B`` ~ N(0, cov(vecs)) / sqrt(trace) for standard normal ``z``."""
    cov = np.cov(vecs, rowvar=False).astype(np.float64)
    vals, vecs_ = np.linalg.eigh(cov)
    vals = np.clip(vals, 0, None) / max(vals.sum(), 1e-12)
    return (vecs_ * np.sqrt(vals)).T.astype(np.float32)


def calibrate_spread(centres: np.ndarray, basis: np.ndarray | None, target: float,
                     seed: int = 0) -> float:
    """Noise scale ``s`` giving a median cosine ``target`` between a variant and its centre."""
    rng = np.random.default_rng(seed)
    c = centres[rng.integers(0, len(centres), 4000)]
    z = rng.standard_normal(c.shape, dtype=np.float32)
    z = z @ basis if basis is not None else z / np.sqrt(c.shape[1])
    lo, hi = 0.0, 10.0
    for _ in range(40):
        s = (lo + hi) / 2
        cos = np.median(np.sum(_normalize(c + s * z) * c, axis=1))
        lo, hi = (s, hi) if cos > target else (lo, s)
    return (lo + hi) / 2


def variants(n: int, centres: np.ndarray, basis: np.ndarray | None, spread: float,
             rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors ``normalize(c + spread * z)`` around random ``centres``."""
    dim = centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = rng.standard_normal((m, dim), dtype=np.float32)
        z = z @ basis if basis is not None else z * np.float32(1 / np.sqrt(dim))
        block = centres[rng.integers(0, len(centres), m)] + np.float32(spread) * z
        out[start:start + m] = _normalize(block)
    return out


def make_data(size: int, n_queries: int, args: argparse.Namespace) -> tuple[
        np.ndarray, np.ndarray, str]:
    """(corpus, queries, description) under the data model ``args.data`` (see module doc)."""
    rng = np.random.default_rng(args.seed)
    dim = args.dim
    real = real_embeddings(Path(args.real_cache)) if args.data == "real" else None
    if args.data == "real" and real is not None:
        perm = rng.permutation(len(real))
        queries = np.ascontiguousarray(real[perm[:n_queries]])
        centres = np.ascontiguousarray(real[perm[n_queries:]])
        basis = noise_basis(centres)
        target = nn_cosine_median(centres)
        spread = args.spread or calibrate_spread(centres, basis, target)
        desc = (f"real: {len(centres)} real centres, covariance noise s={spread:.3f} "
                f"(variant-centre median cos {target:.3f}), {n_queries} held-out real queries")
        return variants(size, centres, basis, spread, rng), queries, desc
    if args.data == "real":
        print("no real embeddings (../shared/data missing): using synthetic data",
              file=sys.stderr)
    hard = args.data == "hard"
    spread = args.spread or (2.5 if hard else 0.75)
    k = max(100, size // args.cluster_size) if hard else args.clusters
    centres = _normalize(rng.standard_normal((k, dim), dtype=np.float32))
    both = variants(size + n_queries, centres, None, spread, rng)
    queries = both[size:].copy()  # a copy: a view would keep the whole corpus alive
    data = both[:size].copy() if n_queries else both
    del both
    name = "hard" if hard else "synthetic"
    return data, queries, f"{name}: {k} random centres, isotropic noise norm {spread}"


# ---------------------------------------------------------------------------------- stages
def build_stage(size: int, args: argparse.Namespace, work: Path) -> dict:
    import faiss

    from knowledge.index import VectorIndex

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # build with all cores
    data, queries, desc = make_data(size, args.queries, args)
    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    _, truth = flat.search(queries, 10)
    del flat
    np.save(work / "queries.npy", queries)
    np.save(work / "truth.npy", truth)
    ids = np.arange(size, dtype=np.int64)
    kwargs = json.loads(args.approx) if args.approx else {}
    t0 = time.perf_counter()
    index = VectorIndex("bench", data.shape[1], exact_max=min(50_000, size - 1), **kwargs)
    index.add(ids, data)
    build_s = time.perf_counter() - t0
    del data
    index.save(work / "index")
    return {"build_s": build_s, "data": desc, "build_peak_mb": peak_mb(),
            "describe": index.describe()}


def serve_stage(args: argparse.Namespace, work: Path) -> list[dict]:
    import faiss

    from knowledge.index import VectorIndex

    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    before = rss_mb()
    index = VectorIndex.load(work / "index")
    loaded = rss_mb()
    file_mb = sum(p.stat().st_size for p in (work / "index").rglob("*") if p.is_file()) / 1e6
    faiss.omp_set_num_threads(args.threads)
    rows = []
    efforts = [int(s) for s in args.effort.split(",") if s.strip()] or [None]
    for effort in efforts:
        if effort is not None:
            index.set_nprobe(effort)
        index.search(queries[:5], 10)  # warm-up
        times, cpu, hits = [], [], 0
        for q, gold in zip(queries, truth, strict=True):
            t, c = time.perf_counter(), time.thread_time()
            res = index.search(q[None, :], 10)[0]
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
            hits += len({i for i, _ in res} & set(gold.tolist()))
        rows.append({"describe": index.describe(), "p50": percentile(times, 50),
                     "p95": percentile(times, 95), "cpu_p95": percentile(cpu, 95),
                     "load": os.getloadavg()[0], "recall": hits / (10 * len(queries)),
                     "rss_mb": rss_mb(), "index_rss_mb": loaded - before,
                     "file_mb": file_mb})
    return rows


def child(argv: list[str]) -> int:
    """Subprocess entry: ``--stage build|serve --size N --work DIR`` plus the bench options."""
    args = parser().parse_args(argv)
    work = Path(args.work)
    out = (build_stage(args.size, args, work) if args.stage == "build"
           else serve_stage(args, work))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_child(stage: str, size: int, argv: list[str], work: Path) -> object:
    cmd = [sys.executable, __file__, *argv, "--stage", stage, "--size", str(size),
           "--work", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{stage} stage for {size} failed (exit {proc.returncode})")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated index sizes")
    ap.add_argument("--queries", type=int, default=300, help="queries per size (recall sample)")
    ap.add_argument("--data", choices=("real", "synthetic", "hard"), default="real")
    ap.add_argument("--real-cache", default=str(DEFAULT_CACHE),
                    help="where the real embeddings are cached (.npy)")
    ap.add_argument("--approx", default="",
                    help='JSON of extra VectorIndex keyword arguments, e.g. \'{"nlist": 8192}\'')
    ap.add_argument("--effort", "--nprobe", default="",
                    help="comma-separated search efforts (nprobe) to try (default: the index's)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads for queries")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--spread", type=float, default=0.0,
                    help="noise scale around centres (0: calibrated / model default)")
    ap.add_argument("--clusters", type=int, default=4000, help="synthetic: number of centres")
    ap.add_argument("--cluster-size", type=int, default=1000,
                    help="hard: mean vectors per cluster")
    ap.add_argument("--work-dir", default="/tmp", help="scratch folder for the saved indexes")
    ap.add_argument("--stage", choices=("build", "serve"), help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.stage:
        return child(argv)
    import faiss

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.data == "real":  # embed once, before the children need it
        real_embeddings(Path(args.real_cache))
    print(f"# VectorIndex scale benchmark ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"faiss {faiss.__version__}, {args.threads} query thread(s), data={args.data})\n",
          flush=True)
    print("| vectors | index | build s | query p50 ms | query p95 ms | CPU p95 ms | recall@10 "
          "| RSS MB | index RSS MB | files MB | build peak RSS MB | load avg |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    notes = []
    for size in sizes:
        work = Path(args.work_dir) / f"index_scale_{os.getpid()}_{size}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            built = run_child("build", size, argv, work)
            assert isinstance(built, dict)
            notes.append(f"{size:,}: {built['data']}")
            rows = run_child("serve", size, argv, work)
            assert isinstance(rows, list)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for row in rows:
            print(f"| {size:,} | {row['describe']} | {built['build_s']:.1f} "
                  f"| {row['p50']:.2f} | {row['p95']:.2f} | {row['cpu_p95']:.2f} "
                  f"| {row['recall']:.3f} | {row['rss_mb']:.0f} | {row['index_rss_mb']:.0f} "
                  f"| {row['file_mb']:.0f} | {built['build_peak_mb']:.0f} | {row['load']:.1f} |",
                  flush=True)
    print()
    for note in notes:
        print(f"- data {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
