"""Helpers for the triage answer: remediation steps, the right section, merged root causes,
and the terms that explain why something matched."""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from knowledge.text import tokenize

DEFAULT_SECTION_NAMES = ("mitigation", "remediation", "resolution", "fix")

_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def extract_steps(section_text: str) -> list[str]:
    """Top-level list items (numbered or bulleted) as steps; nested items, continuation lines
    and code blocks that follow an item stay with it, intact. Without any list, each code block
    becomes a step together with the paragraph that introduces it; without either, each
    paragraph of prose is a step (most runbooks write their mitigation as prose, which gave no
    steps at all). An item that is only a link named by one word (a list of link references)
    is no instruction and is left out."""
    lines = (section_text or "").replace("\r\n", "\n").split("\n")
    steps: list[list[str]] = []
    current: list[str] | None = None
    base_indent: int | None = None
    fence: str | None = None
    blank_run = 0
    for line in lines:
        fm = _FENCE.match(line)
        if fence is not None:
            if current is not None:
                current.append(line)
            if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence):
                fence = None
            continue
        if fm:
            fence = fm.group(1)
            if current is not None:
                current.append(line)
            blank_run = 0
            continue
        if not line.strip():
            blank_run += 1
            if current is not None:
                current.append("")
            continue
        m = _ITEM.match(line)
        indent = len(line) - len(line.lstrip())
        if m and (base_indent is None or indent <= base_indent):
            base_indent = indent if base_indent is None else base_indent
            current = [m.group(2)]
            steps.append(current)
        elif current is not None and (indent > (base_indent or 0) or (m and indent > 0)
                                       or blank_run == 0):
            current.append(line)
        else:
            current = None  # a new paragraph ends the list
        blank_run = 0
    out = [_dedent_tail("\n".join(s)) for s in steps]
    out = [s for s in out if s and _is_instruction(s)]
    return out or _code_steps(lines) or _paragraph_steps(lines)


def _is_instruction(step: str) -> bool:
    """Not a placeholder ("TODO") nor a bare link named by one word: "[1](https://...)" or
    "[fsync](https://...)" (a runbook's list of link references) is no step; "Verify" or
    "[Increase TX queue length](https://...)" is."""
    if re.fullmatch(r"\W*(?:todo|tbd|fixme|wip|n/?a|to be (?:done|written))\W*", step, re.I):
        return False  # a placeholder the runbook's author left
    m = re.fullmatch(r"\s*(?:\[([^\]]*)\]\(\S*\)|<?https?://\S+?>?)\s*", step)
    return m is None or len(re.findall(r"\w+", m.group(1) or "")) >= 2


def _paragraph_steps(lines: list[str]) -> list[str]:
    """Each paragraph of prose (lines joined) as a step; headings, list items (judged as
    items already), HTML-only lines, bare links and an introduction ending in ":" are not."""
    steps: list[str] = []
    para: list[str] = []
    for line in [*lines, ""]:
        text = line.strip()
        prose = text and not text.startswith("#") and not _ITEM.match(line)
        if prose and not re.fullmatch(r"<[^>]*>", text):
            para.append(text)
            continue
        joined = " ".join(para)
        if joined and not joined.endswith(":") and _is_instruction(joined):
            steps.append(joined)
        para = []
    return steps


def _dedent_tail(text: str) -> str:
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return first.strip()
    rest_lines = rest.split("\n")
    indents = [len(ln) - len(ln.lstrip()) for ln in rest_lines if ln.strip()]
    cut = min(indents) if indents else 0
    return (first.strip() + "\n" + "\n".join(ln[cut:] for ln in rest_lines)).strip()


def _code_steps(lines: list[str]) -> list[str]:
    steps: list[str] = []
    para: list[str] = []
    block: list[str] | None = None
    fence = ""
    after_blank = False
    for line in lines:
        fm = _FENCE.match(line)
        if block is not None:
            block.append(line)
            if fm and fm.group(1)[0] == fence[0]:
                steps.append("\n".join([*para, *block]).strip())
                block, para = None, []
            continue
        if fm:
            fence, block, after_blank = fm.group(1), [line], False
            continue
        if not line.strip():
            after_blank = True
            continue
        if after_blank:
            para = []  # a new paragraph replaces the previous introduction
            after_blank = False
        para.append(line)
    return steps


_HTML_TAGS = ("details|summary|br|p|div|span|sup|sub|b|i|em|strong|img|a|code|pre|kbd|"
              "table|thead|tbody|tr|td|th|ul|ol|li|hr|h[1-6]|center|small|abbr")
_SUMMARY = re.compile(r"<summary\b[^>]*>.*?</summary>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rf"</?(?:{_HTML_TAGS})\b[^>]*>", re.IGNORECASE)


def without_html(text: str) -> str:
    """Markdown text without the HTML some runbooks embed (``<details>``, ``<br>``...): a
    ``<summary>`` label ("Full context") goes with its tags. Placeholders such as
    ``<my-namespace>`` are not HTML and stay."""
    return _TAG.sub(" ", _SUMMARY.sub(" ", text or ""))


class _HasHeadings(Protocol):
    heading_path: tuple[str, ...]
    text: str


def find_section(
    document_sections: Sequence[Any], names: Sequence[str] = DEFAULT_SECTION_NAMES
) -> Any | None:
    """First section whose own heading mentions one of ``names`` (earlier names win); accepts
    objects with ``heading_path`` (knowledge.documents.Section) or (heading, text) pairs."""
    wanted = [n.lower() for n in names]
    for name in wanted:
        pattern = re.compile(rf"\b{re.escape(name)}", re.I)
        for section in document_sections:
            heading = _heading_of(section)
            if heading and pattern.search(heading):
                return section
    return None


def _heading_of(section: Any) -> str:
    path = getattr(section, "heading_path", None)
    if path:
        return str(path[-1]) if len(path) > 1 else ""
    if isinstance(section, (tuple, list)) and section:
        return str(section[0])
    return ""


@dataclass(frozen=True)
class MergedCause:
    text: str  # the highest-scored wording
    score: float  # best score of the group
    count: int  # how many causes were merged
    refs: tuple[Hashable, ...]  # references (e.g. incident ids), best first
    variants: tuple[str, ...]  # the other wordings


def jaccard(a: str, b: str) -> float:
    """Token Jaccard similarity (stemmed, stopwords removed)."""
    ta, tb = set(tokenize(a)), set(tokenize(b))
    if not ta and not tb:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    return len(ta & tb) / len(ta | tb)


def merge_similar_causes(
    causes: Sequence[tuple[str, float, Hashable]],
    threshold: float = 0.5,
    *,
    vectors: np.ndarray | None = None,
) -> list[MergedCause]:
    """Group causes that say the same thing; best score first.

    Similarity is token Jaccard, or cosine when ``vectors`` (normalized, one row per cause) are
    given. Each cause joins the first group (in score order) whose leader is at least
    ``threshold`` similar.
    """
    if vectors is not None and len(vectors) != len(causes):
        raise ValueError("vectors must have one row per cause")
    order = sorted(range(len(causes)), key=lambda i: -float(causes[i][1]))
    groups: list[list[int]] = []
    for i in order:
        text = causes[i][0]
        if not text or not text.strip():
            continue
        for g in groups:
            lead = g[0]
            sim = (float(np.dot(vectors[i], vectors[lead])) if vectors is not None
                   else jaccard(text, causes[lead][0]))
            if sim >= threshold:
                g.append(i)
                break
        else:
            groups.append([i])
    out = []
    for g in groups:
        texts = [causes[i][0].strip() for i in g]
        variants = tuple(dict.fromkeys(t for t in texts[1:] if t != texts[0]))
        out.append(MergedCause(
            text=texts[0], score=float(causes[g[0]][1]), count=len(g),
            refs=tuple(causes[i][2] for i in g), variants=variants,
        ))
    return out


def key_terms(query: str, text: str, limit: int = 8) -> list[str]:
    """Query words (as written, lowercased, query order) that also occur in ``text`` — after
    light stemming and identifier splitting — for "why it matched" explanations."""
    have = set(tokenize(text))
    out: list[str] = []
    for word in tokenize(query, stemming=False):
        stemmed = tokenize(word)
        if word not in out and stemmed and stemmed[0] in have:
            out.append(word)
            if len(out) >= limit:
                break
    return out
