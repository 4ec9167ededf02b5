"""Retrain reports for the admins: figures as text and a PNG chart (matplotlib)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bot.store import repository as repo
from bot.store.db import session_scope


def retrain_report(
    services: Any, results: list[Any], out_dir: Path | None = None
) -> tuple[str, Path]:
    """Text with old vs new figures per promoted target, and one PNG: a confusion matrix of
    the first promoted model and accuracy over versions for every target."""
    promoted = [r for r in results if not isinstance(r, str) and r.promoted]
    lines = [":arrows_counterclockwise: *Retrain: new model versions promoted*"]
    for r in promoted:
        old = r.champion or {}
        new = r.challenger
        lines.append(
            f"• `{r.target}` {r.previous_version or 'zero-shot'} -> `{r.version}`: accuracy "
            f"{old.get('accuracy', float('nan')):.3f} -> {new['accuracy']:.3f}, macro-F1 "
            f"{old.get('macro_f1', float('nan')):.3f} -> {new['macro_f1']:.3f}"
        )
    with session_scope(services.sessions) as session:
        history: dict[str, list[tuple[str, float]]] = {}
        confusion = None
        for m in repo.list_model_versions(session=session):
            if m.metrics.get("accuracy") is not None:
                history.setdefault(m.target, []).append((m.version, float(m.metrics["accuracy"])))
            if promoted and m.version == promoted[0].version:
                confusion = m.metrics.get("confusion")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ax_conf, ax_hist = axes
    if confusion and confusion.get("labels"):
        labels = confusion["labels"][:20]
        matrix = [row[:20] for row in confusion["matrix"][:20]]
        ax_conf.imshow(matrix, cmap="Blues")
        ax_conf.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax_conf.set_yticks(range(len(labels)), labels, fontsize=7)
        ax_conf.set_title(f"Confusion matrix: {promoted[0].version}")
        ax_conf.set_xlabel("predicted")
        ax_conf.set_ylabel("true")
    else:
        ax_conf.axis("off")
    for target, points in history.items():
        ax_hist.plot(range(1, len(points) + 1), [a for _, a in points], marker="o", label=target)
    ax_hist.set_title("Held-out accuracy over versions")
    ax_hist.set_xlabel("version #")
    ax_hist.set_ylim(0, 1)
    ax_hist.legend(loc="lower right")
    fig.tight_layout()
    directory = out_dir or Path(tempfile.mkdtemp(prefix="triagebot-report-"))
    path = directory / "retrain-report.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "\n".join(lines), path
