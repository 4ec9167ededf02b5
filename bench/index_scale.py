"""Benchmark knowledge.index.VectorIndex's approximate configuration at scale.

Builds indexes of clustered, L2-normalized random 384-d vectors (100k and 1M by default) and
reports build time, single-query latency (p50/p95, vector search alone), recall@10 against exact
search on a sample of queries, and resident memory. Prints a Markdown table.

    .venv/bin/python bench/index_scale.py --sizes 100000,1000000 --queries 300
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss

from knowledge.index import VectorIndex
from knowledge.metrics import percentile


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
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def clustered(n: int, dim: int, *, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Points around ``clusters`` random centres (like topic clusters of sentence embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        assign = rng.integers(0, clusters, m)
        noise = rng.standard_normal((m, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        block = centres[assign] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + m] = block
    return out


def describe(index: VectorIndex) -> str:
    if index.kind != "ivf":
        return index.kind
    return f"IVF{faiss.extract_index_ivf(index._index).nlist},SQ{index.codec}"


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    flat = faiss.IndexFlatIP(data.shape[1])
    flat.add(data)
    _, labels = flat.search(queries, k)
    return labels


def run(
    size: int, n_queries: int, nprobes: list[int] | None, args: argparse.Namespace
) -> list[dict]:
    dim, seed = args.dim, args.seed
    base = rss_mb()
    # queries: fresh points around the same centres (same seed), never equal to stored vectors
    both = clustered(size + n_queries, dim, clusters=max(100, size // args.cluster_size),
                     spread=args.spread, seed=seed)
    data, queries = both[:size], np.ascontiguousarray(both[size:])
    del both
    truth = exact_top(data, queries, 10)
    ids = np.arange(size, dtype=np.int64)

    t0 = time.perf_counter()
    index = VectorIndex("bench", dim, exact_max=min(50_000, size - 1), codec=args.codec)
    index.add(ids, data)
    build_s = time.perf_counter() - t0
    del data
    gc.collect()
    faiss.omp_set_num_threads(args.threads)
    tmp = Path(f"/tmp/index_scale_{os.getpid()}.faiss")
    faiss.write_index(index._index, str(tmp))
    file_mb = tmp.stat().st_size / 1e6
    tmp.unlink()
    index_mb = rss_mb() - base - (truth.nbytes + queries.nbytes) / 1e6

    rows = []
    for nprobe in nprobes or [index.nprobe]:
        index.set_nprobe(nprobe)
        index.search(queries[:5], 10)  # warm-up
        times, hits = [], 0
        for q, gold in zip(queries, truth, strict=True):
            t = time.perf_counter()
            res = index.search(q[None, :], 10)[0]
            times.append((time.perf_counter() - t) * 1000)
            hits += len({i for i, _ in res} & set(gold.tolist()))
        rows.append({
            "size": size,
            "kind": describe(index),
            "nprobe": nprobe, "build_s": build_s,
            "p50": percentile(times, 50), "p95": percentile(times, 95),
            "recall": hits / (10 * len(queries)), "rss_mb": index_mb, "file_mb": file_mb,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
        })
    del index
    gc.collect()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated index sizes")
    ap.add_argument("--queries", type=int, default=300, help="queries per size (recall sample)")
    ap.add_argument("--nprobe", default="", help="comma-separated nprobe values (default: index's)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--codec", default="fp16", help="IVF vector codec: fp16 or sq8")
    ap.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads for queries")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--spread", type=float, default=2.5,
                    help="noise norm around cluster centres (higher: harder)")
    ap.add_argument("--cluster-size", type=int, default=1000, help="mean vectors per cluster")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    nprobes = [int(s) for s in args.nprobe.split(",") if s.strip()] or None

    print(f"# VectorIndex scale benchmark ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"faiss {faiss.__version__}, {args.threads} query thread(s))\n", flush=True)
    print("| vectors | index | nprobe | build s | query p50 ms | query p95 ms | recall@10 "
          "| index MB | RSS growth MB | peak RSS MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for size in sizes:
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # build with all cores
        for row in run(size, args.queries, nprobes, args):
            print(f"| {row['size']:,} | {row['kind']} | {row['nprobe']} | {row['build_s']:.1f} "
                  f"| {row['p50']:.2f} | {row['p95']:.2f} | {row['recall']:.3f} "
                  f"| {row['file_mb']:.0f} | {row['rss_mb']:.0f} | {row['peak_mb']:.0f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
