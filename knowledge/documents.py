"""Parse a runbook folder (Markdown, HTML, plain text) into documents and heading sections."""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import yaml

from knowledge.text import split_camel

MARKDOWN_EXT = {".md", ".markdown"}
HTML_EXT = {".html", ".htm"}
TEXT_EXT = {".txt"}
SUPPORTED_EXT = MARKDOWN_EXT | HTML_EXT | TEXT_EXT

MAX_FILE_BYTES = 2_000_000
MIN_SECTION_CHARS = 60  # smaller sections are merged into the one before them
MAX_SECTION_CHARS = 3000  # larger sections are cut at paragraph boundaries


@dataclass(frozen=True)
class Section:
    ordinal: int
    heading_path: tuple[str, ...]  # document title first
    text: str


@dataclass(frozen=True)
class Document:
    path: str  # relative posix path
    title: str
    content_hash: str
    metadata: dict[str, Any]
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class ScanResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


class DocumentError(ValueError):
    """A file that cannot become a document; ``reason`` is short and user-facing."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


# --------------------------------------------------------------------------- public API


def scan_folder(root: Path, *, max_bytes: int = MAX_FILE_BYTES) -> ScanResult:
    """Parse every supported file under ``root`` (hidden files/folders ignored), sorted by path."""
    root = Path(root)
    result = ScanResult()
    if not root.is_dir():
        result.skipped.append((str(root), "not a directory"))
        return result
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            result.documents.append(parse_document(path, root, max_bytes=max_bytes))
        except DocumentError as exc:
            result.skipped.append((rel, exc.reason))
    return result


def parse_document(path: Path, root: Path, *, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """Parse one file; raises :class:`DocumentError` for unsupported, empty or unreadable files."""
    path, root = Path(path), Path(root)
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = path.name
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXT:
        raise DocumentError(rel, f"unsupported type {ext or '(none)'}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError(rel, f"too large ({size} bytes > {max_bytes})")
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(rel, f"unreadable: {exc.strerror or exc}") from exc
    text, notes = _decode(raw, rel)
    if not text.strip():
        raise DocumentError(rel, "empty")

    metadata: dict[str, Any] = {}
    html_title = ""
    if ext in MARKDOWN_EXT:
        metadata, body, fm_note = _split_front_matter(text)
        if fm_note:
            notes.append(fm_note)
        fmt = "markdown"
    elif ext in HTML_EXT:
        body, html_title = html_to_markdown(text)
        fmt = "html"
    else:
        body = text
        fmt = "text"

    blocks = _split_headings(body) if fmt != "text" else [(0, "", body)]
    first_h1 = next((h for lvl, h, _ in blocks if lvl == 1 and h), "")
    fm_title = metadata.get("title")
    title = (
        (str(fm_title).strip() if isinstance(fm_title, (str, int, float)) else "")
        or html_title
        or first_h1
        or title_from_stem(path.stem)
    )
    sections = _build_sections(title, blocks)
    if not sections:
        raise DocumentError(rel, "empty")
    metadata = {**metadata, "format": fmt}
    if notes:
        metadata["notes"] = notes
    return Document(
        path=rel,
        title=title,
        content_hash=hashlib.sha256(raw).hexdigest(),
        metadata=metadata,
        sections=tuple(sections),
    )


def title_from_stem(stem: str) -> str:
    """``KubePodCrashLooping`` -> ``Kube Pod Crash Looping``; ``disk_full`` -> ``disk full``."""
    words = re.split(r"[_\-\s.]+", stem)
    parts: list[str] = []
    for w in words:
        parts.extend(split_camel(w))
    return " ".join(p for p in parts if p) or stem





# --------------------------------------------------------------------------- decoding


def _decode(raw: bytes, rel: str) -> tuple[str, list[str]]:
    if b"\x00" in raw[:8192]:
        raise DocumentError(rel, "unreadable encoding (binary content)")
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        return raw.decode("latin-1"), ["not valid UTF-8; decoded as latin-1"]


def _split_front_matter(text: str) -> tuple[dict[str, Any], str, str]:
    """Return (metadata, body, note). Invalid YAML keeps the body and reports a note."""
    m = re.match(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", text, re.S)
    if not m:
        return {}, text, ""
    body = text[m.end():]
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        return {}, body, f"invalid front matter ignored: {str(exc).splitlines()[0]}"
    if data is None:
        return {}, body, ""
    if not isinstance(data, dict):
        return {}, body, "front matter is not a mapping; ignored"
    return {str(k): _json_safe(v) for k, v in data.items()}, body, ""


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# --------------------------------------------------------------------------- markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$|^ {0,3}(#{1,6})[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def _split_headings(body: str) -> list[tuple[int, str, str]]:
    """Cut Markdown at H1..H3 (outside code fences) -> [(level, heading, text)].

    The first block has level 0 when text precedes any heading. Deeper headings stay in the text.
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fence: str | None = None
    for line in lines:
        fm = _FENCE.match(line)
        if fence is not None:
            blocks[-1][2].append(line)
            if (fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence)
                    and not line.strip()[len(fm.group(1)):].strip()):
                fence = None
            continue
        if fm:
            fence = fm.group(1)
            blocks[-1][2].append(line)
            continue
        m = _ATX.match(line)
        if m:
            level = len(m.group(1) or m.group(3))
            if level <= 3:
                blocks.append((level, _clean_heading(m.group(2) or ""), []))
                continue
        sm = _SETEXT.match(line)
        cur = blocks[-1][2]
        # "Title\n=====" is H1, "Title\n-----" is H2 (a lone "---" after a blank is a rule)
        if (sm and cur and cur[-1].strip() and not _is_list_or_quote(cur[-1])
                and (len(cur) == 1 or not cur[-2].strip())):
            heading = cur.pop()
            blocks.append((1 if sm.group(1)[0] == "=" else 2, _clean_heading(heading), []))
            continue
        cur.append(line)
    return [(lvl, h, "\n".join(t).strip("\n")) for lvl, h, t in blocks]


def _is_list_or_quote(line: str) -> bool:
    return bool(re.match(r"^\s*([-*+>]|\d+[.)])\s", line))


def _clean_heading(text: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](url) -> text
    text = re.sub(r"[*_`]+", "", text)
    return " ".join(text.split())


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _build_sections(title: str, blocks: list[tuple[int, str, str]]) -> list[Section]:
    stack: list[tuple[int, str]] = []
    raw: list[tuple[tuple[str, ...], str]] = []
    for level, heading, text in blocks:
        if level > 0:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
        names = [h for _, h in stack if h]
        if names and _norm(names[0]) == _norm(title):
            names = names[1:]  # the H1 that repeats the title
        path = (title, *names)
        raw.append((path, text.strip()))
    merged = _merge_tiny(raw)
    out: list[Section] = []
    for path, text in merged:
        for chunk in _cut_long(text):
            out.append(Section(ordinal=len(out), heading_path=path, text=chunk))
    return out


def _merge_tiny(raw: list[tuple[tuple[str, ...], str]]) -> list[tuple[tuple[str, ...], str]]:
    """Drop heading-only sections; fold a tiny section into its parent when the parent comes
    right before it (its heading kept as a label). Tiny sections before any other text are
    prepended to the next section. Tiny siblings stay apart so headings like "Mitigation" remain
    findable."""
    items = [(p, t) for p, t in raw if t]
    out: list[tuple[tuple[str, ...], str]] = []
    carry = ""  # tiny leading text waiting for a successor
    for path, text in items:
        if len(text) < MIN_SECTION_CHARS:
            label = path[-1] if len(path) > 1 else ""
            piece = f"{label}: {text}" if label else text
            if out and len(out[-1][0]) < len(path) and path[: len(out[-1][0])] == out[-1][0]:
                prev_path, prev_text = out[-1]
                out[-1] = (prev_path, f"{prev_text}\n\n{piece}")
                continue
            if not out and len(path) <= 1:
                carry = f"{carry}\n\n{piece}".strip()
                continue
        if carry:
            text, carry = f"{carry}\n\n{text}", ""
        out.append((path, text))
    if carry:
        out.append((items[0][0][:1], carry))
    return out


def _cut_long(text: str, limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Cut at blank lines outside code fences so no chunk exceeds ``limit`` (fences stay whole)."""
    if len(text) <= limit:
        return [text]
    paragraphs: list[str] = []
    buf: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        fm = _FENCE.match(line)
        if fence is None and fm:
            fence = fm.group(1)
        elif fence is not None and fm and fm.group(1)[0] == fence[0]:
            fence = None
        if fence is None and not line.strip():
            if buf:
                paragraphs.append("\n".join(buf))
                buf = []
            continue
        buf.append(line)
    if buf:
        paragraphs.append("\n".join(buf))
    chunks: list[str] = []
    cur = ""
    for para in paragraphs:
        if cur and len(cur) + len(para) + 2 > limit:
            chunks.append(cur)
            cur = para
        else:
            cur = f"{cur}\n\n{para}" if cur else para
    if cur:
        chunks.append(cur)
    return chunks


# --------------------------------------------------------------------------- HTML


class _HTMLToMarkdown(HTMLParser):
    BLOCK: ClassVar[set[str]] = {
        "p", "div", "section", "article", "br", "tr", "table", "ul", "ol", "dl", "dt", "dd",
        "blockquote", "header", "footer", "main", "hr",
    }
    SKIP: ClassVar[set[str]] = {"script", "style", "noscript", "template", "svg", "nav"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title = ""
        self._in_title = False
        self._skip = 0
        self._pre = 0
        self._heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = int(tag[1])
            self.out.append("\n\n" + "#" * self._heading + " ")
        elif tag == "pre":
            self._pre += 1
            self.out.append("\n\n```\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = None
            self.out.append("\n\n")
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self.out.append("\n```\n\n")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip:
            return
        if self._pre:
            self.out.append(data)
        elif self._heading is not None:
            self.out.append(" ".join(data.split()))
        else:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_markdown(html: str) -> tuple[str, str]:
    """Convert HTML to Markdown-like text (headings, lists, ``pre`` fenced) -> (text, title)."""
    parser = _HTMLToMarkdown()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; never crash on odd markup
        pass
    text = "".join(parser.out)
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(ln if ln.strip() else "" for ln in lines))
    return text.strip(), " ".join(parser.title.split())


_NAME_KEYS = ("alerts", "alert", "alertname", "alert_names", "names", "aliases")


def document_names(doc: Document) -> tuple[str, ...]:
    """Exact identifiers a document is about: front matter ``alerts``/``names``/``aliases``, plus
    the file stem and first-level headings when they look like identifiers (CamelCase,
    snake_case or kebab-case; not plain words like ``README``)."""
    found: list[str] = []
    for key in _NAME_KEYS:
        value = doc.metadata.get(key)
        values = value if isinstance(value, list) else [value]
        found.extend(str(v).strip() for v in values if isinstance(v, (str, int)) and str(v).strip())
    stem = Path(doc.path).stem
    if looks_like_identifier(stem):
        found.append(stem)
    for section in doc.sections:
        for heading in section.heading_path[1:2]:
            if looks_like_identifier(heading) and " " not in heading:
                found.append(heading)
    seen: set[str] = set()
    return tuple(n for n in found if not (n.lower() in seen or seen.add(n.lower())))


def looks_like_identifier(word: str) -> bool:
    """``KubePodCrashLooping``, ``etcdNoLeader``, ``disk_full``, ``node-down`` -> True."""
    if not word or " " in word or len(word) < 4:
        return False
    if re.search(r"[a-z][A-Z]", word):
        return True
    return bool(re.fullmatch(r"[A-Za-z0-9]+(?:[_\-][A-Za-z0-9]+)+", word))
