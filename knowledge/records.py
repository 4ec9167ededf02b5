"""Read incident / ticket / alert records from JSONL or CSV (ServiceNow and Jira exports)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.repair import repair_text

TEXT_FIELDS = (
    "id", "source", "title", "description", "category", "severity", "priority", "team",
    "service", "root_cause", "resolution", "resolved_by", "created_at", "url",
)


@dataclass(frozen=True)
class Record:
    id: str
    source: str = ""
    title: str = ""
    description: str = ""
    category: str = ""
    severity: str = ""
    priority: str = ""
    team: str = ""
    service: str = ""
    root_cause: str = ""
    resolution: str = ""
    resolved_by: str = ""
    created_at: str = ""
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Title and description joined, the text to embed or classify."""
        return "\n".join(t for t in (self.title, self.description) if t)


# The longest value each short field may hold (the incidents table's column sizes): a
# longer one is no id or label but a misplaced column, and PostgreSQL refuses to store it.
FIELD_MAX_CHARS = {"id": 200, "category": 100, "severity": 50, "priority": 50, "team": 100,
                   "service": 200, "resolved_by": 200}


def too_long(values: Mapping[str, Any]) -> str:
    """Why a record's short field cannot be stored ("" when all fit)."""
    for name, limit in FIELD_MAX_CHARS.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            return f"{name} is {len(value)} characters long, at most {limit} fit"
    return ""


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based line in the file where the row starts
    message: str


@dataclass(frozen=True)
class ReadResult:
    records: list[Record]
    errors: list[RowError]
    # Columns / keys that no record field reads: their values are kept in Record.extra.
    extra_columns: tuple[str, ...] = ()


class RecordFileError(ValueError):
    """The file as a whole cannot be read (missing, unsupported type, unknown preset)."""


# Candidate columns per record field, compared after normalizing ("Short description" ->
# "short_description"). The first present column wins.
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "servicenow": {
        "id": ("number", "sys_id"),
        "title": ("short_description",),
        "description": ("description",),
        "category": ("category", "u_category", "subcategory"),
        "severity": ("severity", "impact"),
        "priority": ("priority",),
        "team": ("assignment_group", "assignment_group_name"),
        "service": ("cmdb_ci", "business_service", "service", "u_service"),
        "root_cause": ("u_root_cause", "cause", "root_cause", "rca"),
        "resolution": ("close_notes", "resolution_notes", "u_resolution"),
        "resolved_by": ("resolved_by", "closed_by"),
        "created_at": ("opened_at", "sys_created_on", "created"),
        "url": ("url", "link"),
        "source": ("source",),
    },
    "jira": {
        "id": ("issue_key", "key", "issue_id"),
        "title": ("summary",),
        "description": ("description",),
        "category": ("issue_type", "category", "custom_field_category"),
        "severity": ("severity", "custom_field_severity"),
        "priority": ("priority",),
        "team": ("team", "custom_field_team", "assignee"),
        "service": ("component_s", "components", "component", "custom_field_service"),
        "root_cause": ("root_cause", "custom_field_root_cause"),
        "resolution": ("resolution", "custom_field_resolution_details"),
        "resolved_by": ("assignee",),
        "created_at": ("created",),
        "url": ("url",),
        "source": ("source",),
    },
}
PRESET_SOURCE = {"servicenow": "ticket", "jira": "ticket"}

# Where a file without a preset usually keeps its text: generic JSONL and CSV dumps (public
# datasets, exports of home-grown trackers, log files) say "text", "body" or "subject" more
# often than "description" or "title". A column named after the field itself always wins,
# then the preset's columns, then these; --map overrides all of them.
COMMON_COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("subject", "summary", "short_description", "headline"),
    "description": ("text", "body", "content", "message", "details"),
}


def read_records(
    path: Path,
    *,
    preset: str | None = None,
    mapping: Mapping[str, str] | None = None,
    ids_optional: bool = False,
) -> ReadResult:
    """Read ``path`` (.jsonl/.ndjson or .csv). Bad rows are reported in ``errors`` and skipped.

    ``mapping`` maps a record field to a column/key name and overrides the preset. With
    ``ids_optional`` (evaluation files, which are read and never stored) a row without an id
    is named after its line, ``line-N``; an import needs real ids to update records in place.
    """
    path = Path(path)
    if preset is not None and preset not in PRESETS:
        raise RecordFileError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    bad = set(mapping or {}) - set(TEXT_FIELDS)
    if bad:
        raise RecordFileError(f"mapping names unknown record fields: {sorted(bad)}")
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory, not a JSONL or CSV file")
    if not path.exists():
        raise RecordFileError(f"file not found: {path}")
    ext = path.suffix.lower()
    if ext not in (".jsonl", ".ndjson", ".csv"):
        raise RecordFileError(f"unsupported record file type {ext or '(none)'}: use .jsonl or .csv")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if _looks_binary(raw):
        raise RecordFileError(f"{path}: not a text {'CSV' if ext == '.csv' else 'JSONL'} file "
                              "(binary content; UTF-8 or Latin-1 text expected)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if ext == ".csv":
        names, rows = _csv_rows(text)
    else:
        rows = _jsonl_rows(text)
        names = list(dict.fromkeys(k for _, row in rows if isinstance(row, dict) for k in row))
    _check_mapping(mapping or {}, names, csv=ext == ".csv")
    return _to_records(rows, preset=preset, mapping=dict(mapping or {}), ids_optional=ids_optional)


def _looks_binary(raw: bytes) -> bool:
    """NUL bytes, or more than 1% other control bytes, in the first 8 KiB: not a text file."""
    sample = raw[:8192]
    controls = sum(1 for b in sample if b < 32 and b not in b"\t\n\r\f\v\x1b")
    return b"\x00" in sample or controls > len(sample) / 100


def _check_mapping(mapping: Mapping[str, str], names: list[str], *, csv: bool) -> None:
    """Refuse a mapping to a column (CSV header) or key (any JSONL object) the file lacks,
    matched as the reader matches it: exactly or after normalizing."""
    normalized = {_norm(n) for n in names}
    for f, col in mapping.items():
        if col not in names and _norm(col) not in normalized:
            where = "column {!r} is not in the CSV header" if csv else (
                "key {!r} is in no JSON object of the file")
            raise RecordFileError(f"--map {f}={col}: {where.format(col)} "
                                  f"({'columns' if csv else 'keys'}: {', '.join(names) or 'none'})")


# --------------------------------------------------------------------------- row sources


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    """(line, object) or (line, error message) for every non-blank line."""
    out: list[tuple[int, dict[str, Any] | str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append((n, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(obj, dict):
            out.append((n, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        out.append((n, obj))
    return out


def _csv_rows(text: str) -> tuple[list[str], list[tuple[int, dict[str, Any] | str]]]:
    """The header and (line, row) or (line, error message) for every non-blank row."""
    out: list[tuple[int, dict[str, Any] | str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(text))
    try:
        header = next(reader)
    except StopIteration:
        return [], out
    except csv.Error as exc:
        return [], [(1, f"invalid CSV header: {exc}")]
    header = [h.strip() for h in header]
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.append((start, f"invalid CSV row: {exc}"))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in row):
            continue
        if len(row) > len(header):
            out.append((line, f"row has {len(row)} columns, header has {len(header)}"))
            continue
        out.append((line, dict(zip(header, row, strict=False))))
    return header, out


def _separator(text: str) -> str:
    """The column separator of a CSV file: the one its header line holds most of, a comma
    unless semicolons or tabs outnumber commas (Excel writes semicolons where the decimal
    mark is a comma)."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)  # max keeps the first of a tie: ","


# --------------------------------------------------------------------------- mapping


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _resolve_columns(
    keys: list[str], preset: str | None, mapping: dict[str, str]
) -> dict[str, str]:
    """record field -> key present in the row."""
    by_norm: dict[str, str] = {}
    for k in keys:
        by_norm.setdefault(_norm(k), k)
    resolved: dict[str, str] = {}
    candidates = PRESETS.get(preset or "", {})
    for f in TEXT_FIELDS:
        if f in mapping:
            col = mapping[f]
            if col in keys:
                resolved[f] = col
            elif _norm(col) in by_norm:
                resolved[f] = by_norm[_norm(col)]
            continue
        for cand in (*candidates.get(f, ()), f, *COMMON_COLUMNS.get(f, ())):
            if cand in by_norm:
                resolved[f] = by_norm[cand]
                break
    return resolved


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return repair_text(value).strip()
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in map(_as_text, value) if t)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value).strip()


def _to_records(
    rows: list[tuple[int, dict[str, Any] | str]], *, preset: str | None, mapping: dict[str, str],
    ids_optional: bool = False,
) -> ReadResult:
    records: list[Record] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    cache: dict[tuple[str, ...], dict[str, str]] = {}
    extra_columns: dict[str, None] = {}  # ordered set
    for line, row in rows:
        if isinstance(row, str):
            errors.append(RowError(line, row))
            continue
        keys = list(row)
        sig = tuple(keys)
        if sig not in cache:
            cache[sig] = _resolve_columns(keys, preset, mapping)
            used_here = set(cache[sig].values())
            extra_columns.update((k, None) for k in keys if k not in used_here)
        cols = cache[sig]
        values = {f: _as_text(row.get(col)) for f, col in cols.items()}
        rid = values.get("id", "")
        if not rid and ids_optional:
            rid = values["id"] = f"line-{line}"
        if not rid:
            errors.append(RowError(line, "missing id"))
            continue
        if not values.get("title") and not values.get("description"):
            errors.append(RowError(line, f"record {rid!r} has no text (title or description)"))
            continue
        if rid in seen:
            errors.append(RowError(line, f"duplicate id {rid!r} (first seen on line {seen[rid]})"))
            continue
        if why := too_long(values):
            errors.append(RowError(line, f"record {rid[:60]!r}: {why}"))
            continue
        seen[rid] = line
        used = set(cols.values())
        extra = {
            k: v for k, v in row.items() if k not in used and v not in (None, "", [], {})
        }
        if not values.get("source") and preset in PRESET_SOURCE:
            values["source"] = PRESET_SOURCE[preset]
        records.append(Record(**{f: values.get(f, "") for f in TEXT_FIELDS}, extra=extra))
    return ReadResult(records=records, errors=errors, extra_columns=tuple(extra_columns))


