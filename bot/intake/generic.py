"""Generic ticket / alert / incident records (the shared JSONL record format) -> events."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.events import AlertStatus, Event, EventKind, EventSource, utcnow
from bot.intake import _payload as p
from bot.intake.errors import PayloadError
from bot.intake.fingerprint import mask_variables
from bot.intake.links import record_links

KINDS = {"ticket": EventKind.TICKET, "alert": EventKind.ALERT, "incident": EventKind.INCIDENT}
LABEL_FIELDS = ("category", "severity", "priority", "team", "service", "split")
ANNOTATION_FIELDS = ("root_cause", "resolution")


def parse_generic(
    payload: Any,
    *,
    max_records: int = 1000,
    max_text_chars: int = 8000,
    default_kind: EventKind = EventKind.TICKET,
    received_at: datetime | None = None,
) -> list[Event]:
    """Parse one record (an object) or a list of records.

    Every field is optional except that a record needs a ``title`` or a ``description``.
    ``source`` (``ticket``/``alert``/``incident``) sets the event kind; labels get
    ``category, severity, priority, team, service``; ``root_cause`` and ``resolution``
    become annotations; ``created_at`` becomes ``starts_at``. More than ``max_records``
    records raise :class:`PayloadError` (nothing is dropped silently).
    """
    if isinstance(payload, Mapping):
        records: list[Any] = [payload]
        paths = [""]
    elif isinstance(payload, list):
        if len(payload) > max_records:
            raise PayloadError("<payload>", f"{len(payload)} records, at most {max_records}")
        records = payload
        paths = [f"[{i}]" for i in range(len(payload))]
    else:
        raise PayloadError("<payload>", "expected a record object or an array of records")
    when = received_at or utcnow()
    return [
        _record(r, path, max_text_chars, default_kind, when)
        for r, path in zip(records, paths, strict=True)
    ]


def _record(
    value: Any, path: str, max_chars: int, default_kind: EventKind, when: datetime
) -> Event:
    rec = p.mapping(value, path)
    raw_id = rec.get("id")
    external_id = "" if raw_id is None else p.scalar_str(raw_id, p.join(path, "id"), 256)
    kind_name = p.opt_str(rec, "source", path, 32).strip().lower()
    if kind_name and kind_name not in KINDS:
        raise PayloadError(
            p.join(path, "source"), f"expected one of {sorted(KINDS)}, got {kind_name!r}"
        )
    kind = KINDS.get(kind_name, default_kind)
    title = p.opt_str(rec, "title", path, 512).strip()
    description = p.opt_str(rec, "description", path, max_chars).strip()
    if not title and not description:
        raise PayloadError(p.join(path, "title"), "a record needs a title or a description")
    labels: dict[str, str] = {}
    for key in LABEL_FIELDS:
        if rec.get(key) is not None:
            value_str = p.scalar_str(rec[key], p.join(path, key), 256).strip()
            if value_str:
                labels[key] = value_str
    annotations = {
        key: p.opt_str(rec, key, path, max_chars).strip()
        for key in ANNOTATION_FIELDS
        if rec.get(key) is not None
    }
    annotations = {k: v for k, v in annotations.items() if v}
    created = p.opt_time(rec, "created_at", path)
    text = "\n".join(s for s in (title, description) if s)
    status = AlertStatus.RESOLVED if annotations.get("resolution") else AlertStatus.FIRING
    return Event(
        source=EventSource.GENERIC,
        kind=kind,
        text=p.cap(text, max_chars),
        title=p.cap(title or description.splitlines()[0], 256),
        labels=labels,
        annotations=annotations,
        status=status,
        fingerprint=_fingerprint(kind, external_id, title, description, labels),
        external_id=external_id,
        received_at=when,
        starts_at=created,
        links=record_links(rec),
        raw=dict(rec),
    )


def _fingerprint(
    kind: EventKind, external_id: str, title: str, description: str, labels: dict[str, str]
) -> str:
    """The record id when given (a re-sent record is a duplicate), else its masked text."""
    if external_id:
        basis = f"{kind}|id={external_id}"
    else:
        basis = f"{kind}|{labels.get('service', '')}|{mask_variables(title + ' ' + description)}"
    return hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()[:16]
