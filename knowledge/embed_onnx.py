"""Sentence embeddings through an int8 ONNX export of the model, run by onnxruntime.

The same vectors as :class:`knowledge.embed.Embedder` to within a cosine of about 0.99
(all-MiniLM-L6-v2, weights quantized per channel), for a fraction of the CPU: torch is not
even imported once the export exists. The export is made once, from the local model folder,
into ``cache_dir`` (``<data_dir>/models/onnx/`` in the product) and reused by every later
start; each replica makes its own the first time (a few seconds).

Vectors of the two backends are close but not equal, so :attr:`OnnxEmbedder.model_name`
differs from the torch one: an index built with one is rebuilt by the other, never mixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.embed import (
    MAX_CHARS,
    EmbeddingError,
    _clip,
    _model_name,
    default_model_path,
    embedding_model_name,
)

log = logging.getLogger(__name__)

BACKEND = "onnx-int8"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxEmbedder:
    """Embeds like :class:`knowledge.embed.Embedder` (same methods and attributes), with an
    int8 ONNX export of a sentence-transformers model whose pipeline is a transformer, mean
    or CLS pooling and normalization (all-MiniLM-L6-v2 and most of its kind)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        cache_dir: Path,
        batch_size: int = 32,
        max_seq_length: int = 256,
        threads: int | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingError(
                "the onnx-int8 embedding backend needs onnxruntime: "
                "pip install 'triagebot[onnx]', or set TRIAGEBOT_EMBEDDING_BACKEND=torch"
            ) from exc
        folder = Path(_local_folder(model or default_model_path()))
        self.pooling = _pooling_of(folder)
        tokenizer_file = folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise EmbeddingError(f"{folder} has no tokenizer.json; use the torch backend")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length=max_seq_length)
        self._tokenizer.no_padding()
        self.artifact = export_int8(folder, Path(cache_dir))
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads or 2))
        options.inter_op_num_threads = 1
        # Without its memory arena, a process that embedded ticket-length batches stays at
        # ~300 MB instead of 1-1.4 GB, at no speed we could measure (docs/benchmarks.md).
        options.enable_cpu_mem_arena = False
        def open_session() -> Any:
            return ort.InferenceSession(str(self.artifact), options,
                                        providers=["CPUExecutionProvider"])

        try:
            self._session = open_session()
        except Exception as exc:  # noqa: BLE001 - a damaged file: export again, once
            log.warning("cannot load %s (%s); exporting the model again", self.artifact, exc)
            self.artifact.unlink(missing_ok=True)
            self.artifact = export_int8(folder, Path(cache_dir))
            self._session = open_session()
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.model_name = embedding_model_name(model, BACKEND)  # a hub name, not its snapshot
        self.dim = int(self.encode(["dimension probe"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` -> float32 array (n, dim), rows L2-normalized."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; use encode_one() for one")
        if len(texts) == 0:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        clean = [_clip(str(t or ""), self.max_chars) for t in texts]
        # Batches of similar length pad less (sentence-transformers does the same).
        order = np.argsort([-len(t) for t in clean], kind="stable")
        out: list[np.ndarray] = [np.empty(0)] * len(clean)
        for start in range(0, len(clean), self.batch_size):
            chosen = order[start:start + self.batch_size]
            vectors = self._encode_batch([clean[i] for i in chosen])
            for i, vector in zip(chosen, vectors, strict=True):
                out[i] = vector
        return np.ascontiguousarray(np.vstack(out), dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text -> float32 vector (dim,)."""
        return self.encode([text])[0]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        arrays = {name: np.zeros((len(texts), width), dtype=np.int64) for name in INPUTS}
        for row, e in enumerate(encodings):
            n = len(e.ids)
            arrays["input_ids"][row, :n] = e.ids
            arrays["attention_mask"][row, :n] = e.attention_mask
            arrays["token_type_ids"][row, :n] = e.type_ids
        hidden = self._session.run(None, {name: arrays[name] for name in self._inputs})[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = arrays["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


def export_int8(folder: Path, cache_dir: Path) -> Path:
    """The int8 ONNX file of the model in ``folder``, exported and quantized into
    ``cache_dir`` unless an export of these very weights is there already."""
    target = cache_dir / f"{_model_name(str(folder))}-{_fingerprint(folder)}-int8.onnx"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    float_file = cache_dir / f".{target.stem}.{os.getpid()}.float.onnx"
    partial = cache_dir / f".{target.stem}.{os.getpid()}.partial"
    log.info("exporting %s to ONNX int8 (once): %s", folder, target)
    try:
        _export_float(folder, float_file)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel weights: cosine to the float model 0.99 on alerts and tickets, against
        # 0.96 per tensor (measured on ../shared/data; see docs/benchmarks.md).
        with _quiet_quantizer():
            quantize_dynamic(str(float_file), str(partial), weight_type=QuantType.QInt8,
                             per_channel=True)
        os.replace(partial, target)  # replicas exporting at once each write a whole file
    except EmbeddingError:
        raise
    except Exception as exc:
        raise EmbeddingError(f"cannot export {folder} to ONNX: {exc}") from exc
    finally:
        float_file.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return target


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantizer's advice to pre-process the model (tried: no change in the vectors)
    from the root logger while it runs."""

    def advice(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _export_float(folder: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()

    class HiddenStates(torch.nn.Module):
        """The transformer's last hidden states, from keyword inputs (recent transformers
        take more positional arguments than the export passes)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(["disk full on db-01", "a second, longer example sentence"],
                       padding=True, return_tensors="pt")
    if "token_type_ids" not in sample:
        raise EmbeddingError(f"{folder}: not a BERT-style model; use the torch backend")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow
        torch.onnx.export(
            HiddenStates(model), tuple(sample[name] for name in INPUTS), str(path),
            input_names=list(INPUTS), output_names=["last_hidden_state"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )


def _local_folder(model: str) -> str:
    """A model folder on disk: the path itself, or the offline Hugging Face cache's copy."""
    if os.path.isdir(model):
        return model
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model, local_files_only=True)
    except Exception as exc:
        raise EmbeddingError(f"cannot find embedding model {model!r} on disk: {exc}") from exc


def _pooling_of(folder: Path) -> str:
    """``mean`` or ``cls``, from the model's sentence-transformers pipeline."""
    modules_file = folder / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.is_file() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if any(k not in {"Transformer", "Pooling", "Normalize"} for k in kinds):
        raise EmbeddingError(
            f"{folder}: pipeline {kinds} has more than pooling; use the torch backend")
    pooling = next((m["path"] for m in modules if m.get("type", "").endswith("Pooling")), None)
    config_file = folder / (pooling or "1_Pooling") / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens", True):
        return "mean"
    raise EmbeddingError(f"{folder}: pooling {config} is not mean or CLS; use the torch backend")


def _fingerprint(folder: Path) -> str:
    """Short hash of the model's config and weight files (name and size): a model replaced
    in the same folder gets a new export."""
    digest = hashlib.sha256((folder / "config.json").read_bytes()
                            if (folder / "config.json").is_file() else b"")
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:12]
