"""Where a runbook can be read in a browser, so that answers link it.

A runbook folder is usually a checkout of a repository that is also published (GitHub,
GitLab, a docs site). ``index runbooks --url TEMPLATE`` says how a file's path becomes its
web address; a document's front matter ``url:`` wins over the template.

Template fields, for ``kubernetes/PodCrashLoop.md``:
``{path}`` kubernetes/PodCrashLoop.md, ``{path_noext}`` kubernetes/PodCrashLoop,
``{stem}`` PodCrashLoop, ``{dir}`` kubernetes, and ``{path_noext_lower}``, ``{stem_lower}``.
"""

from __future__ import annotations

import re
import string
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from knowledge.urls import safe_url

FIELDS = ("path", "path_noext", "stem", "dir", "path_noext_lower", "stem_lower")


class UrlTemplateError(ValueError):
    """The template cannot make a web address; the message says why."""


def check_template(template: str) -> str:
    """``template`` when usable ("" stays ""), else :class:`UrlTemplateError`."""
    template = template.strip()
    if not template:
        return ""
    if not re.match(r"https?://", template, re.IGNORECASE):
        raise UrlTemplateError(f"runbook URL template must start with http(s)://: {template!r}")
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UrlTemplateError(f"runbook URL template {template!r}: {exc}") from exc
    unknown = used - set(FIELDS)
    if unknown:
        raise UrlTemplateError(
            f"runbook URL template {template!r}: unknown field(s) {sorted(unknown)}; "
            f"use {', '.join('{' + f + '}' for f in FIELDS)}")
    return template


def runbook_url(path: str, metadata: dict[str, Any], template: str) -> str:
    """The document's web address: front matter ``url`` (an http(s) URL), else the template
    filled in (each path part percent-encoded), else ""."""
    own = safe_url(metadata.get("url"))
    if own:
        return own
    if not template:
        return ""
    rel = PurePosixPath(path)
    noext = str(rel.with_suffix("")) if rel.suffix else str(rel)
    values = {
        "path": str(rel),
        "path_noext": noext,
        "stem": rel.stem,
        "dir": str(rel.parent) if str(rel.parent) != "." else "",
        "path_noext_lower": noext.lower(),
        "stem_lower": rel.stem.lower(),
    }
    return safe_url(template.format(**{k: quote(v, safe="/") for k, v in values.items()}))
