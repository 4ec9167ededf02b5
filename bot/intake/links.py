"""Links an alert or record carries to its own sources: the rule's graph, its runbook, its
dashboard, a ready-made silence, the ticket in the help desk.

On-call engineers open these first, so the thread shows them beside the triage. They come
from untrusted payloads: only plain http(s) URLs of sane length are kept, anything else is
dropped without failing the payload (a bad link must not cost the alert).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from knowledge.urls import safe_url

# Annotation names in common use (kube-prometheus, Grafana, awesome-prometheus-alerts...),
# first match wins. Keys are compared without case, '-' and '_'.
_RUNBOOK_KEYS = ("runbookurl", "runbook", "runbooklink", "playbook", "playbookurl")
_DASHBOARD_KEYS = ("dashboardurl", "dashboard", "grafanaurl", "grafana", "dashboardlink")

# The order links are shown in, and their labels.
SOURCE, RUNBOOK, DASHBOARD, PANEL, SILENCE, RECORD = (
    "source",
    "runbook",
    "dashboard",
    "panel",
    "silence",
    "record",
)
LABELS = {
    SOURCE: "Source",
    RUNBOOK: "Runbook",
    DASHBOARD: "Dashboard",
    PANEL: "Panel",
    SILENCE: "Silence",
}


def _annotation(annotations: Mapping[str, str], keys: tuple[str, ...]) -> str:
    by_key = {k.lower().replace("_", "").replace("-", ""): v for k, v in annotations.items()}
    for key in keys:
        url = safe_url(by_key.get(key))
        if url:
            return url
    return ""


def alertmanager_silence_url(external_url: str, labels: Mapping[str, str]) -> str:
    """Alertmanager's "new silence" page with this alert's labels as matchers (what the
    usual Slack templates link as "Silence"); "" without a usable external URL."""
    base = safe_url(external_url)
    if not base or not labels:
        return ""
    matchers = ",".join(
        f'{name}="{_escape_matcher(value)}"' for name, value in sorted(labels.items())
    )
    url = f"{base.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"
    return safe_url(url)


def _escape_matcher(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def alert_links(
    *,
    generator_url: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    extra: Mapping[str, Any],
    external_url: str = "",
) -> dict[str, str]:
    """The links of one alert, in display order. ``extra`` holds Grafana's own URL fields
    (``dashboardURL``, ``panelURL``, ``silenceURL``); for Alertmanager the silence link is
    built from ``external_url``."""
    links = {
        SOURCE: safe_url(generator_url),
        RUNBOOK: _annotation(annotations, _RUNBOOK_KEYS),
        DASHBOARD: safe_url(extra.get("dashboardURL")) or _annotation(annotations, _DASHBOARD_KEYS),
        PANEL: safe_url(extra.get("panelURL")),
        SILENCE: safe_url(extra.get("silenceURL"))
        or alertmanager_silence_url(external_url, labels),
    }
    return {k: v for k, v in links.items() if v}


def record_links(record: Mapping[str, Any]) -> dict[str, str]:
    """A ticket or incident record's own page (its ``url`` field) and its runbook."""
    links = {RECORD: safe_url(record.get("url")), RUNBOOK: safe_url(record.get("runbook_url"))}
    return {k: v for k, v in links.items() if v}


def runbook_names(url: str) -> tuple[str, ...]:
    """What a runbook URL names: its last path segment without extension
    (``.../kubernetes/kubepodcrashlooping`` -> ``kubepodcrashlooping``, ``disk-full.md`` ->
    ``disk-full``) and its anchor (``runbook.md#alert-name-kubepodcrashlooping``), to find the
    indexed runbook it points at by the document's names (its file name among them)."""
    if not url:
        return ()
    parts = urlsplit(url)
    names = []
    segment = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    stem = re.sub(r"\.(md|markdown|html?|txt|rst|adoc)$", "", segment, flags=re.IGNORECASE)
    if stem and not stem.lower().startswith(("readme", "index")):
        names.append(stem)
    anchor = re.sub(r"^alert-?name-", "", unquote(parts.fragment), flags=re.IGNORECASE)
    if anchor:
        names.append(anchor)
    return tuple(n[:200] for n in names)


def link_label(key: str, kind: str) -> str:
    """What a link is called in the thread ("Ticket" for a ticket's own page)."""
    if key == RECORD:
        return kind.capitalize() if kind else "Record"
    return LABELS.get(key, key.capitalize())


def clean_links(value: Any) -> dict[str, str]:
    """Links read back from storage (spool, database, group summary): known keys and safe
    URLs only, whatever was written there."""
    if not isinstance(value, Mapping):
        return {}
    out = {k: safe_url(value.get(k)) for k in (*LABELS, RECORD)}
    return {k: v for k, v in out.items() if v}
