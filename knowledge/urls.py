"""The one test of "is this a web address we may link": plain http(s), no whitespace or
characters that break a Slack link (``<>|``) or a quoted attribute, at most 2,048 chars."""

from __future__ import annotations

import re
from typing import Any

MAX_URL_CHARS = 2048
_URL = re.compile(r"https?://[^\s<>|\"`]+", re.IGNORECASE)


def safe_url(value: Any) -> str:
    """``value`` stripped when it is one plain http(s) URL of at most MAX_URL_CHARS, else ""."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if len(url) > MAX_URL_CHARS or not _URL.fullmatch(url):
        return ""
    return url
