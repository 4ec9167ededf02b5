"""Read incident / ticket / alert records from JSONL or CSV (ServiceNow and Jira exports)."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
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
# Normalized names that hold a record's text: a JSON object with one of them is a record,
# not a wrapper around a list of records.
_TEXT_NAMES = {"title", "description", *COMMON_COLUMNS["title"], *COMMON_COLUMNS["description"]}


JSON_EXT = (".jsonl", ".ndjson", ".json")
CSV_EXT = (".csv", ".tsv", ".tab", ".txt")
COMPRESSED_EXT = ".gz"


def read_records(
    path: Path,
    *,
    preset: str | None = None,
    mapping: Mapping[str, str] | None = None,
    ids_optional: bool = False,
) -> ReadResult:
    """Read ``path``: JSONL (.jsonl/.ndjson), a JSON array or an object holding one (.json),
    CSV or TSV (.csv/.tsv/.txt), each optionally gzip-compressed (``.jsonl.gz``). Text may be
    UTF-8 (with or without a byte order mark), UTF-16 with its mark, or Latin-1. Bad rows are
    reported in ``errors`` and skipped.

    ``mapping`` maps a record field to a column/key name and overrides the preset; a nested
    JSON key is named by its dotted path (``title=fields.summary``). With ``ids_optional``
    (evaluation files, which are read and never stored) a row without an id is named after
    its line, ``line-N``; an import needs real ids to update records in place.
    """
    path = Path(path)
    if preset is not None and preset not in PRESETS:
        raise RecordFileError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    bad = set(mapping or {}) - set(TEXT_FIELDS)
    if bad:
        raise RecordFileError(f"mapping names unknown record fields: {sorted(bad)}")
    names, rows, is_csv = read_rows(path)
    _check_mapping(mapping or {}, names, csv=is_csv)
    return _to_records(rows, preset=preset, mapping=dict(mapping or {}), ids_optional=ids_optional)


def read_rows(path: Path) -> tuple[list[str], Rows, bool]:
    """The raw rows of a record file, in any format :func:`read_records` reads: the column
    or key names (nested keys as dotted paths), ``(line, row)`` or ``(line, why it is
    unreadable)`` per row, and whether the file is CSV/TSV."""
    path = Path(path)
    if path.is_dir():
        raise RecordFileError(f"{path}: is a directory, not a JSONL or CSV file")
    if not path.exists():
        raise RecordFileError(f"file not found: {path}")
    compressed = path.suffix.lower() == COMPRESSED_EXT
    ext = (path.with_suffix("") if compressed else path).suffix.lower()
    if ext not in JSON_EXT + CSV_EXT:
        raise RecordFileError(
            f"{path}: unsupported record file type {ext or '(none)'}: use .jsonl, .json, .csv "
            "or .tsv (optionally gzip-compressed, e.g. .jsonl.gz)")
    try:
        raw = path.read_bytes()
        if compressed:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise RecordFileError(f"cannot read {path}: {why}") from exc
    kind = "CSV" if ext in CSV_EXT else "JSON" if ext == ".json" else "JSONL"
    text = _decode(raw, path, kind)
    if ext == ".txt" and text.lstrip()[:1] in ("{", "["):
        ext = ".jsonl"  # a .txt export of JSON records
    if ext in CSV_EXT:
        names, rows = _csv_rows(text, delimiter="\t" if ext in (".tsv", ".tab") else None)
        return names, rows, True
    rows = _json_rows(text)
    names = list(dict.fromkeys(
        k for _, row in rows if isinstance(row, dict) for k in _key_paths(row)))
    return names, rows, False


def _decode(raw: bytes, path: Path, kind: str) -> str:
    """The file's text: UTF-32/UTF-16 by their byte order mark, else UTF-8 (a mark or
    none), else Latin-1; binary content is refused."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(codec)
            except UnicodeDecodeError as exc:
                raise RecordFileError(f"{path}: not valid {codec.upper()} text ({exc.reason}); "
                                      "save it as UTF-8") from exc
    if _looks_binary(raw):
        raise RecordFileError(f"{path}: not a text {kind} file (binary content; UTF-8, "
                              "UTF-16 or Latin-1 text expected)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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


Rows = list[tuple[int, dict[str, Any] | str]]

# Keys under which JSON exports wrap their list of records (ServiceNow: records/result,
# Jira: issues, most APIs: items/data); any other single list of objects also counts.
WRAPPER_KEYS = ("records", "result", "issues", "items", "data", "rows", "tickets",
                "incidents", "alerts", "results", "values")


def _json_rows(text: str) -> Rows:
    """(line, object) or (line, error message) of every record: the file is one JSON array
    of objects, one object holding such an array (``{"records": [...]}``), or JSONL."""
    start = len(text) - len(text.lstrip())
    if start < len(text) and text[start] in "[{":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # JSONL (or broken JSON, which JSONL reports line by line)
        if isinstance(whole, list):
            return _array_rows(text, start)
        if isinstance(whole, dict):
            key = _wrapper_key(whole)
            if key is not None:
                return _array_rows(text, _value_start(text, start, key))
    return _jsonl_rows(text)


def _wrapper_key(obj: dict[str, Any]) -> str | None:
    """The key of a JSON object that holds the file's records, or None for a record."""
    lists = [k for k, v in obj.items()
             if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if not lists or any(_norm(k) in _TEXT_NAMES for k in obj):
        return None
    preferred = [k for k in lists if _norm(k) in WRAPPER_KEYS]
    return (preferred or lists)[0] if len(preferred) == 1 or len(lists) == 1 else None


_WS = re.compile(r"\s*")


def _value_start(text: str, start: int, key: str) -> int:
    """Where the value of top-level ``key`` starts in the JSON object at ``start``."""
    decoder, i = json.JSONDecoder(), _WS.match(text, start + 1).end()
    while True:
        name, i = decoder.raw_decode(text, i)
        i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # past ':'
        if name == key:
            return i
        _, i = decoder.raw_decode(text, i)
        i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # past ','


def _array_rows(text: str, start: int) -> Rows:
    """(line, object) or (line, error) of every item of the (valid) JSON array at ``start``,
    ``line`` being where the item starts in the file."""
    out: Rows = []
    decoder, i = json.JSONDecoder(), _WS.match(text, start + 1).end()
    line, counted = 1, 0
    while text[i] != "]":
        line += text.count("\n", counted, i)
        counted = i
        value, i = decoder.raw_decode(text, i)
        if isinstance(value, dict):
            out.append((line, value))
        else:
            out.append((line, f"expected a JSON object, got {type(value).__name__}"))
        i = _WS.match(text, i).end()
        if text[i] == ",":
            i = _WS.match(text, i + 1).end()
    return out


def _jsonl_rows(text: str) -> Rows:
    """(line, object) or (line, error message) for every non-blank line."""
    out: Rows = []
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


def _csv_rows(text: str, delimiter: str | None = None) -> tuple[list[str], Rows]:
    """The header and (line, row) or (line, error message) for every non-blank row."""
    out: Rows = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _separator(text))
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
    unless semicolons, tabs or pipes outnumber commas (Excel writes semicolons where the
    decimal mark is a comma)."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t", "|"), key=header.count)  # max keeps the first of a tie: ","


# --------------------------------------------------------------------------- mapping


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _key_paths(row: Mapping[str, Any], prefix: str = "", depth: int = 3) -> list[str]:
    """The keys of a row, then the dotted paths of the keys of its nested objects
    (``fields.summary``), ``depth`` levels down."""
    keys = [prefix + k for k in row]
    if depth > 1:
        for k, v in row.items():
            if isinstance(v, dict):
                keys.extend(_key_paths(v, f"{prefix}{k}.", depth - 1))
    return keys


def _get(row: Mapping[str, Any], key: str) -> Any:
    """The value of a key or of a dotted path into nested objects (None when absent)."""
    if key in row:
        return row[key]
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def value_of(row: Mapping[str, Any], key: str) -> Any:
    """The value of ``key`` in a row or a record's ``extra``: the key itself, a dotted path
    into nested objects, or a key spelled differently (``Assignment group`` for
    ``assignment_group``). None when absent."""
    value = _get(row, key)
    if value is None:
        wanted = _norm(key)
        value = next((row[k] for k in row if _norm(k) == wanted), None)
    return value


def _resolve_columns(
    keys: list[str], preset: str | None, mapping: dict[str, str], n_top: int | None = None,
) -> dict[str, str]:
    """record field -> key present in the row. A key of the row itself (the first ``n_top``
    of ``keys``, all by default) wins; a field none of them names may come from a nested
    object's key of that name (``fields.summary`` for the title), when just one nested key
    has it."""
    n_top = len(keys) if n_top is None else n_top
    by_norm: dict[str, str] = {}
    for k in keys[:n_top]:
        by_norm.setdefault(_norm(k), k)
    nested: dict[str, list[str]] = {}
    for k in keys[n_top:]:
        nested.setdefault(_norm(k.rsplit(".", 1)[1]), []).append(k)
    by_leaf = {name: ks[0] for name, ks in nested.items() if len(ks) == 1}
    resolved: dict[str, str] = {}
    candidates = PRESETS.get(preset or "", {})
    for f in TEXT_FIELDS:
        if f in mapping:
            col = mapping[f]
            if col in keys:
                resolved[f] = col
            elif _norm(col) in by_norm:
                resolved[f] = by_norm[_norm(col)]
            else:  # a nested key's dotted path, spelled differently
                resolved.update(
                    (f, k) for k in keys[n_top:][::-1] if _norm(k) == _norm(col))
            continue
        names = (*candidates.get(f, ()), f, *COMMON_COLUMNS.get(f, ()))
        found = next((by_norm[c] for c in names if c in by_norm), None) or next(
            (by_leaf[c] for c in names if c in by_leaf), None)
        if found is not None:
            resolved[f] = found
    return resolved


NAME_KEYS = ("display_value", "displayName", "name", "value", "label")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return repair_text(value).strip()
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in map(_as_text, value) if t)
    if isinstance(value, dict):  # a label as an object: Jira {"name": ...}, ServiceNow
        # {"display_value": ..., "value": ...}; else the object as JSON
        name = next((value[k] for k in NAME_KEYS if isinstance(value.get(k), (str, int, float))),
                    None)
        return _as_text(name) if name is not None else json.dumps(
            value, ensure_ascii=False, sort_keys=True)
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
        keys = _key_paths(row)
        sig = tuple(keys)
        if sig not in cache:
            cache[sig] = _resolve_columns(keys, preset, mapping, len(row))
            used_here = set(cache[sig].values())
            parents = {u.split(".")[0] for u in used_here if u not in row}
            extra_columns.update((k, None) for k in row if k not in used_here | parents)
        cols = cache[sig]
        values = {f: _as_text(_get(row, col)) for f, col in cols.items()}
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


