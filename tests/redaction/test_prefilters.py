"""The cheap tests that let `bot.redact` skip work must never change what it redacts.

* Each token shape runs only on a text that holds one of its needles (literal text the shape
  cannot match without); a text with no needle at all skips them all. Compared here with a
  redactor whose shapes all run, on the labelled set and on texts assembled at random from
  needles, secrets, separators and the non-ASCII letters that case-insensitive patterns match.
* The key of a ``key = value`` pair is matched without backtracking (a possessive
  quantifier): the characters after a key can never be key characters, so giving some back
  could not make a match. Compared with the backtracking pattern it replaced.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from bot import redact
from bot.redact import Redactor

CASES = [json.loads(line)["text"]
         for line in Path(__file__).with_name("cases.jsonl").read_text().splitlines() if line]

# _KV_RE before its key was made possessive.
BACKTRACKING_KV = re.compile(
    r"(?P<q>[\"']?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,60})\\?(?P=q)"
    r"[ \t]{0,3}(?::=|=>|[:=])[ \t]{0,3}"
    r"(?:\\\"(?P<v1>[^\"\\\n]{1,256})\\\"|\"(?P<v2>[^\"\n]{1,256})\"|'(?P<v3>[^'\n]{1,256})'"
    r"|(?P<v4>[^\s,;'\"&}\])<>]{1,256}))"
)

FRAGMENTS = [
    *(n for needles, _ in redact._TOKEN_NEEDLES for n in needles),
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AIza" + "x" * 35,
    "xoxb-1234567890-abcdefghij", "ghp_" + "a" * 36, "sk-" + "b" * 40,
    "eyJhbGciOiJI.eyJzdWIiOiIx.sig",
    "SK" + "0123456789abcdef" * 2, "AC" + "fedcba9876543210" * 2, "sk_live_" + "c" * 24,
    "Authorization: Bearer abcdefghijklmnop", "authorization=", "AUTHORIZATION", "Bearer ",
    "password is Hunter2x", "PASSWORD: s3cr3t!", "pwd=", "passphrase ", "aws_secret_access_key=",
    "AccountKey=", "&sig=", "?sig=", "postgres://user:pa55@db", "https://hooks.slack.com/services/",
    "token=", "api_key: ", "--password ", "-p ", "'", '"', "\\\"", "=", ":", ":=", "=>", " ", "\t",
    "\n", ",", ".", "-", "_", "/", "@", "example.com", "jane.doe@example.org", "+44 20 7946 0958",
    "(415) 555-0132", "4111 1111 1111 1111", "10.3.12.45:9100", "KubePodCrashLooping",
    "namespace-3", "2026-12-03", "[REDACTED:email]",
    # letters that (?i) matches to ASCII ones: Kelvin sign, long s, dotless i, and others
    "\u212a", "\u017f", "\u0131", "\u0130", "é", "ü", "不",
    "PAſSWORD is hunter22", "aws_ſecret_key=", "authorızation: Bearer abcdefghij12",
    "Account\u212aey=abcdefghijklmnopqrstuvwxyz",
]


def reference() -> Redactor:
    """A redactor whose token shapes all run on every text ("" is in every text)."""
    full = Redactor()
    full._tokens = tuple((t, p, g, ("",), False) for t, p, g, _, _ in full._tokens)
    return full


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = rng.choices(FRAGMENTS, k=rng.randint(1, 12))
        if rng.random() < 0.3:
            parts = [p.lower() if rng.random() < 0.5 else p.upper() for p in parts]
        out.append("".join(parts))
    return out


@pytest.mark.parametrize("code", [False, True])
def test_needles_change_nothing_on_the_labelled_set(code: bool) -> None:
    gated, full = Redactor(), reference()
    for text in CASES:
        assert gated.redact(text, code=code) == full.redact(text, code=code), text


@pytest.mark.parametrize("code", [False, True])
def test_needles_change_nothing_on_assembled_texts(code: bool) -> None:
    gated, full = Redactor(), reference()
    for text in texts(3000, seed=7 if code else 3):
        assert gated.redact(text, code=code) == full.redact(text, code=code), text


def test_every_token_shape_in_the_labelled_set_holds_one_of_its_needles() -> None:
    """The needles are necessary: wherever a shape matches, one of them is in the match's
    text (checked on the labelled set and the assembled texts, where the shapes do match)."""
    matched = set()
    for text in CASES + texts(3000, seed=11):
        for (type_, pattern, _), (needles, folded) in zip(
            redact._TOKEN_PATTERNS, redact._TOKEN_NEEDLES, strict=True
        ):
            for m in re.finditer(pattern, text):
                matched.add(pattern)
                if folded and not text.isascii():
                    continue  # not gated
                seen = m.group().lower() if folded else m.group()
                assert any(n in seen for n in needles), (type_, m.group())
    assert len(matched) >= len(redact._TOKEN_PATTERNS) - 2  # nearly every shape was tried


def test_the_possessive_key_finds_what_the_backtracking_one_found() -> None:
    for text in CASES + texts(3000, seed=5) + ["a" * 70 + "password=hunter22", "9pwd=x1y2z3"]:
        for start in range(0, len(text), max(1, len(text) // 7)):
            new, old = redact._KV_RE.search(text, start), BACKTRACKING_KV.search(text, start)
            found = [m and (m.span(), m.groupdict()) for m in (new, old)]
            assert found[0] == found[1], text


def test_a_long_run_before_a_secret_key_still_finds_the_key() -> None:
    """A key is at most 61 characters: in a longer run the match starts inside it."""
    out = Redactor().redact_text("x" * 70 + "password=hunter22")
    assert "hunter22" not in out
