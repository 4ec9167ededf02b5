"""Ablation of the classifier's blend on one labelled JSONL: all parts, without the semantic
model, and the linear model alone, on the same split as ``triagebot eval classify``.

    .venv/bin/python bench/classify_ablation.py ../shared/data/incidents/postmortems.jsonl \\
        --target category
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.evaluation import split_rows  # noqa: E402
from classifiers.evaluate import evaluate  # noqa: E402
from classifiers.model import TextClassifier  # noqa: E402
from knowledge.embed import Embedder  # noqa: E402

VARIANTS = {
    "all parts": {},
    "without semantic model": {"semantic_blend": (0.0,)},
    "linear model alone": {"semantic_blend": (0.0,), "knn_blend": (0.0,)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--target", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    split = split_rows(args.file, args.file, args.target, seed=args.seed)
    train, train_y, test, test_y = (
        split.train_texts, split.train_labels, split.test_texts, split.test_labels)
    settings = Settings()
    embedder = Embedder(settings.embedding_model, threads=settings.torch_threads)
    train_emb, test_emb = embedder.encode(train), embedder.encode(test)
    out = {"file": str(args.file), "target": args.target, "split": split.how}
    for name, params in VARIANTS.items():
        model = TextClassifier(args.target, **params).fit(train, train_emb, train_y)
        report = evaluate(model, test, test_emb, test_y)
        out[name] = {"accuracy": round(report.accuracy, 4),
                     "macro_f1": round(report.macro_f1, 4),
                     "knn_weight": model.knn_weight_,
                     "semantic_weight": model.semantic_weight_}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
