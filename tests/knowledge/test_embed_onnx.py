"""knowledge.embed_onnx: the int8 ONNX backend embeds like the torch one, exports once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knowledge.embed import EmbeddingError, default_model_path, load_embedder
from knowledge.embed_onnx import OnnxEmbedder

SAMPLES = Path(__file__).resolve().parents[2] / "knowledge" / "samples" / "incidents.jsonl"


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache: Path) -> OnnxEmbedder:
    return load_embedder(backend="onnx-int8", cache_dir=onnx_cache, threads=2)


def sample_texts() -> list[str]:
    rows = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    return [f"{r['title']} {r.get('description', '')}" for r in rows]


def test_encode_shapes_norms_and_name(onnx_embedder: OnnxEmbedder) -> None:
    v = onnx_embedder.encode(["disk is full", "x" * 50_000, ""])
    assert v.shape == (3, 384) and v.dtype == np.float32 and onnx_embedder.dim == 384
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert onnx_embedder.encode([]).shape == (0, 384)
    # a different name from the torch backend's: an index built by one is rebuilt by the other
    assert onnx_embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2+onnx-int8"
    with pytest.raises(TypeError):
        onnx_embedder.encode("a string, not a list")


def test_vectors_and_neighbours_agree_with_the_torch_backend(
    onnx_embedder: OnnxEmbedder, embedder
) -> None:
    texts = sample_texts()
    ours, reference = onnx_embedder.encode(texts), embedder.encode(texts)
    cosine = (ours * reference).sum(axis=1)
    assert cosine.mean() > 0.985 and cosine.min() > 0.97
    # batching sorts by length and restores the order: each row is its own text's vector
    assert float(onnx_embedder.encode_one(texts[5]) @ ours[5]) > 0.98
    assert float(onnx_embedder.encode_one(texts[5]) @ ours[6]) < 0.98

    def nearest(vectors: np.ndarray) -> np.ndarray:
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -1)
        return similarity.argmax(axis=1)

    assert (nearest(ours) == nearest(reference)).mean() > 0.85


def test_the_export_is_made_once_and_a_damaged_one_is_made_again(
    onnx_embedder: OnnxEmbedder, onnx_cache: Path
) -> None:
    artifact = onnx_embedder.artifact
    assert artifact.parent == onnx_cache and artifact.name.endswith("-int8.onnx")
    assert sorted(p.name for p in onnx_cache.iterdir()) == [artifact.name]  # no leftovers
    stamp = artifact.stat().st_mtime_ns
    again = OnnxEmbedder(cache_dir=onnx_cache)
    assert again.artifact == artifact and artifact.stat().st_mtime_ns == stamp

    artifact.write_bytes(b"not an onnx model")  # a disk error, a truncated copy
    repaired = OnnxEmbedder(cache_dir=onnx_cache)
    assert artifact.stat().st_size > 1_000_000
    expected = onnx_embedder.encode_one("disk is full")
    assert float(repaired.encode_one("disk is full") @ expected) > 0.999


def test_models_it_cannot_run_are_refused_clearly(tmp_path: Path) -> None:
    with_dense = tmp_path / "with-dense"
    shutil.copytree(default_model_path(), with_dense)
    modules = json.loads((with_dense / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense",
                       "type": "sentence_transformers.models.Dense"})
    (with_dense / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EmbeddingError, match="use the torch backend"):
        OnnxEmbedder(str(with_dense), cache_dir=tmp_path / "onnx")
    with pytest.raises(EmbeddingError, match="cannot find embedding model"):
        OnnxEmbedder("no-such/model", cache_dir=tmp_path / "onnx")
    with pytest.raises(ValueError, match="unknown embedding backend"):
        load_embedder(backend="tensorrt")


def test_the_product_on_the_onnx_backend_rebuilds_its_indexes_and_triages_alike(
    sample_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A data folder built with torch, started with TRIAGEBOT_EMBEDDING_BACKEND=onnx-int8:
    the indexes are rebuilt with the new vectors (never mixed), the export lands in the data
    folder, and the README's demo query finds the same incidents and runbook."""
    from bot.app import build_services
    from bot.config import Settings
    from bot.events import Event, EventKind, EventSource
    from tests.conftest import copy_data_dir

    data_dir = copy_data_dir(sample_data_dir, tmp_path / "data")
    # a challenger must gain 20 points of accuracy: the torch-trained champion stays
    settings = Settings(_env_file=None, data_dir=data_dir, scheduler_enabled=False,
                        embedding_backend="onnx-int8", promote_min_accuracy_gain=0.2)
    with caplog.at_level("WARNING", logger="bot.knowledge_base"):
        services = build_services(settings)
    try:
        rebuilt = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
        assert len(rebuilt) == 2 and all("all-MiniLM-L6-v2" in m for m in rebuilt), rebuilt
        assert services.knowledge.embedder.model_name.endswith("+onnx-int8")
        assert [p.suffix for p in settings.onnx_dir.iterdir()] == [".onnx"]
        event = Event(source=EventSource.CLI, kind=EventKind.ALERT,
                      text="disk full on /var/lib/postgresql on db-01")
        triage = services.assistant.triage(event)
        ids = [s.external_id for s in triage.similar]
        assert ids[0] == "INC-2009" and {"INC-2119", "INC-2226", "INC-2525"} <= set(ids), ids
        assert triage.runbooks[0].document_path == "database/postgres-wal-volume-full.md"
        assert triage.prediction("category").label == "storage"
        # the classifiers trained on torch vectors still answer (close vectors), and say
        # that a retrain on the new ones is due
        needed = services.classifiers.retrain_needed
        assert "category" in needed and "still answers" in needed["category"], needed
        assert services.classifiers.active["category"].kind == "supervised"
        champion = services.classifiers.active["category"].version
        # retrained on the new vectors and kept out by the champion, measured on them too:
        # the advice goes, and does not come back at the next start
        outcome = services.classifiers.train("category", actor="test")
        assert not outcome.promoted and outcome.champion is not None
        assert "category" not in services.classifiers.retrain_needed
        services.classifiers.load()
        assert services.classifiers.active["category"].version == champion
        assert "category" not in services.classifiers.retrain_needed
        assert "team" in services.classifiers.retrain_needed  # not retrained: still advised
        # `models list` (no model loaded) says the same
        listed = subprocess.run(
            [sys.executable, "-m", "bot.cli", "models", "list"], capture_output=True,
            text=True, timeout=300, check=False, cwd=SAMPLES.parents[2],
            env={**os.environ, "TRIAGEBOT_DATA_DIR": str(data_dir),
                 "TRIAGEBOT_EMBEDDING_BACKEND": "onnx-int8", "COLUMNS": "200"})
        assert listed.returncode == 0, listed.stderr
        advised = [line.split(":")[0] for line in listed.stdout.splitlines()
                   if "was trained on" in line]
        assert "team" in advised and "category" not in advised, listed.stdout
    finally:
        services.close()
