"""Alert identity (fingerprints) and variable masking for template mining.

Every regex here is linear on its input: no nested unbounded quantifiers over
overlapping classes, bounded repetition where a match can fail late, and the input is
capped at :data:`MAX_MASK_CHARS` characters before any pattern runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from bot.events import Event

MAX_MASK_CHARS = 20_000

#: Labels that change between notifications of the same alert and must not be part of
#: its identity.
VOLATILE_LABELS = frozenset(
    {
        "value",
        "values",
        "valuestring",
        "timestamp",
        "time",
        "ts",
        "startsat",
        "endsat",
        "__value__",
        "__name__",
    }
)

# (pattern, placeholder), applied in order; earlier patterns win.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # UUID
    (
        re.compile(
            r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
            r"[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
        ),
        "<UUID>",
    ),
    # ISO-ish timestamps and dates, clock times
    (
        re.compile(
            r"\d{4}[-/]\d{1,2}[-/]\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d{1,9})?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?"
        ),
        "<TS>",
    ),
    (re.compile(r"(?<![\d:])\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?![\d:])"), "<TIME>"),
    # IPv4 with optional port
    (
        re.compile(r"(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d{1,5})?(?![\w.])"),
        "<IP>",
    ),
    # MAC addresses
    (re.compile(r"(?<![\w:])[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}(?![\w:])"), "<MAC>"),
    # 0x-prefixed hex
    (re.compile(r"\b0[xX][0-9A-Fa-f]{1,64}\b"), "<HEX>"),
    # Kubernetes pod-name hashes: deploy-7d9f8b6c5d-x2x9k / daemonset-x2x9k
    (re.compile(r"(?<=-)[a-z0-9]{6,10}-[a-z0-9]{5}\b"), "<POD>"),
    # long hex ids (commit ids, request ids, container ids); must contain a digit
    (re.compile(r"\b(?=[A-Za-z]{0,63}\d)(?=\d{0,63}[A-Fa-f])[0-9A-Fa-f]{8,64}\b"), "<HEX>"),
    # durations: 150ms, 1.5s, 1h30m
    (
        re.compile(
            r"\b\d{1,12}(?:\.\d{1,9})?(?:ns|us|µs|ms|s|m|h|d)(?:\d{1,12}(?:ns|us|ms|s|m|h))*\b"
        ),
        "<DUR>",
    ),
    # numbers (incl. version-like dotted numbers, sizes and percents)
    (
        re.compile(r"(?<![\w.])[-+]?\d{1,40}(?:[.,]\d{1,40}){0,6}(?:%|[KMGTP]i?B|B)?(?![\w])"),
        "<NUM>",
    ),
    # quoted values
    (re.compile(r'"[^"\s]{1,200}"'), '"<STR>"'),
    (re.compile(r"(?<![\w'])'[^'\s]{1,200}'(?![\w'])"), "'<STR>'"),
]

# Paths whose segments contain an id: /api/v1/users/<NUM>/orders -> keep, but a segment that
# still mixes letters and >=4 digits (order-48213, job_2019352994) is an id.
_ID_SEGMENT = re.compile(
    r"(?<=[/=:])[A-Za-z_.-]{0,32}\d{4,40}[A-Za-z0-9_.-]{0,32}(?=[/\s,;)\]}]|$)"
)


def mask_variables(text: str, *, max_chars: int = MAX_MASK_CHARS) -> str:
    """Replace variable parts of ``text`` (numbers, ids, addresses, times) with placeholders.

    The result is stable for two messages that differ only in such values, which makes it
    usable as a template key. Input beyond ``max_chars`` is dropped.
    """
    if not isinstance(text, str):
        text = str(text)
    text = text[:max_chars]
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return _ID_SEGMENT.sub("<ID>", text)


def _norm(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def identity_labels(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The labels that identify an alert: all but volatile ones, sorted."""
    return sorted(
        (_norm(k), _norm(v)) for k, v in labels.items() if _norm(k).lower() not in VOLATILE_LABELS
    )


def alert_fingerprint(event: Event) -> str:
    """The source's fingerprint if it has one, else a stable 16-hex-digit digest.

    The digest covers the alert name and the sorted identifying labels; events without
    labels fall back to the title and the masked text, so repeats of one message with
    different numbers share a fingerprint.
    """
    if event.fingerprint:
        return event.fingerprint
    parts = [f"alertname={event.alertname or event.title}"]
    ident = [(k, v) for k, v in identity_labels(event.labels) if k != "alertname"]
    if ident:
        parts.extend(f"{k}={v}" for k, v in ident)
    else:
        parts.append("text=" + mask_variables(event.text))
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()
    return digest[:16]
