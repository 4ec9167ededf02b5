"""Crash-safe saving of index folders.

A save writes every file into a fresh generation folder ``<dir>/gen-<id>/``, fsyncs it, then
atomically replaces ``<dir>/index.json`` (which names the generation and holds the metadata) and
only then deletes older generations. A crash at any point leaves the previous ``index.json`` and
the generation it names intact, so the previous index stays loadable.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

POINTER = "index.json"
FORMAT_VERSION = 1


class IndexError_(Exception):
    """Base class of index errors."""


class IndexCorruptError(IndexError_):
    """Index files are missing, truncated or inconsistent: rebuild the index."""


class IndexMismatchError(IndexError_, ValueError):
    """Vectors or an index from a different model / dimension than expected."""


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's entry to disk (best effort: errors are ignored)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # some platforms cannot open directories; best effort
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(directory: Path, kind: str, write: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Save atomically: ``write(gen_dir)`` writes the files and returns metadata for index.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    gen = f"gen-{uuid.uuid4().hex[:12]}"
    gen_dir = directory / gen
    gen_dir.mkdir()
    try:
        meta = dict(write(gen_dir))
        for p in sorted(gen_dir.rglob("*")):
            fsync_path(p)
        fsync_path(gen_dir)
        meta.update({"kind": kind, "format_version": FORMAT_VERSION, "generation": gen})
        tmp = directory / f".{POINTER}.{gen}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / POINTER)
        fsync_path(directory)
    except BaseException:
        shutil.rmtree(gen_dir, ignore_errors=True)
        for leftover in directory.glob(f".{POINTER}.{gen}.tmp"):
            leftover.unlink(missing_ok=True)
        raise
    for old in directory.glob("gen-*"):
        if old.name != gen and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    for stale in directory.glob(f".{POINTER}.*.tmp"):
        stale.unlink(missing_ok=True)
    return meta


def open_current(directory: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """Return (generation folder, metadata) of the saved index, or raise IndexCorruptError."""
    directory = Path(directory)
    pointer = directory / POINTER
    try:
        meta = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"no saved index in {directory} ({POINTER} missing)") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"unreadable {pointer}: {exc}") from exc
    if not isinstance(meta, dict):
        raise IndexCorruptError(f"{pointer} is not a JSON object")
    if meta.get("kind") != kind:
        raise IndexCorruptError(f"{pointer} holds a {meta.get('kind')!r} index, not {kind!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version")
        raise IndexCorruptError(f"{pointer}: unsupported format_version {version}")
    gen = meta.get("generation")
    gen_dir = directory / str(gen)
    if not isinstance(gen, str) or not gen.startswith("gen-") or not gen_dir.is_dir():
        raise IndexCorruptError(f"{pointer} names a missing generation folder {gen!r}")
    return gen_dir, meta
