"""Tokenizing for lexical search: lowercase words, identifier parts, stopwords, light stemming."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    [
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any",
        "are", "as", "at", "be", "because", "been", "before", "being", "below", "between",
        "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during",
        "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her",
        "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
        "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor",
        "not", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves",
        "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that",
        "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they",
        "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we",
        "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will",
        "with", "would", "you", "your", "yours", "yourself", "yourselves", "also", "may",
        "might", "must", "shall", "via", "per", "etc", "e", "g", "ie", "eg"
    ]
)

# compound tokens: words joined by _ - . / : (e.g. kube_pod_info, config-reloader, a.yaml)
_RAW = re.compile(r"[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_URL = re.compile(r"https?://\S+|\]\([^)]*\)")


def split_camel(word: str) -> list[str]:
    """``HTTPServerDown`` -> [HTTP, Server, Down]; ``etcdGRPC`` -> [etcd, GRPC]."""
    return _CAMEL.findall(word) or ([word] if word else [])


def identifier_parts(token: str) -> list[str]:
    """Parts of a compound identifier: ``kube_podCrash-x`` -> [kube, pod, Crash, x]."""
    out: list[str] = []
    for piece in re.split(r"[_.\-]+", token):
        out.extend(split_camel(piece))
    return [p for p in out if p]


def stem(word: str) -> str:
    """A deliberately light English suffix stripper (plural, -ing, -ed); same on both sides."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    return word


def tokenize(text: str, *, stemming: bool = True, keep_numbers: bool = False) -> list[str]:
    """Lowercase tokens. Compound identifiers give their whole form and their parts."""
    text = _URL.sub(" ", text or "")
    out: list[str] = []
    for raw in _RAW.findall(text):
        parts = identifier_parts(raw)
        if len(parts) > 1:
            whole = raw.lower()
            if keep_numbers or not re.fullmatch(r"[\d.\-_]+", whole):
                out.append(whole)
        for part in parts:
            low = part.lower()
            if low in STOPWORDS or (not keep_numbers and low.isdigit()):
                continue
            if len(low) == 1:
                continue
            out.append(stem(low) if stemming else low)
    return out


def normalize_name(name: str) -> str:
    """``Kube Pod Crash-Looping`` and ``KubePodCrashLooping`` -> ``kubepodcrashlooping``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def name_key(name: str, *, declared: bool = True) -> str:
    """The key under which ``name`` names a document, ``""`` when it names nothing.

    A name is matched by its :func:`normalize_name` form, so that form must still say what the
    name said: when normalizing drops most of its letters and digits (``vpn 不能连接`` ->
    ``vpn``: 3 of 7) it names nothing. ``declared=False`` is for a title, which is free text
    and not a name by its author's word: it names its document only when it is an identifier or
    a phrase of at least two words of two characters or more, not all stopwords (``Disk Full``,
    ``KubePodCrashLooping``, ``MySQL down``); a one-word title (``vpn``, ``#NAME?``,
    ``Outlook``) is a topic that many documents share, not a name. Declared names (an alert's
    name, a runbook's file name or aliases) count even as one word (``Watchdog``, ``vpn.md``)."""
    key = normalize_name(name or "")
    content = sum(1 for c in name or "" if c.isalnum())
    if not key or 2 * len(key) < content:
        return ""
    if not declared:
        words = {w.lower() for raw in _RAW.findall(name) for w in identifier_parts(raw)}
        words = {w for w in words if len(w) >= 2}
        if len(words) < 2 or words <= STOPWORDS:
            return ""
    return key


def name_candidates(text: str) -> set[str]:
    """Normalized identifier-looking tokens of a query, for exact name matching."""
    return {normalize_name(t) for t in re.findall(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", text or "")
            if len(normalize_name(t)) >= 3}
