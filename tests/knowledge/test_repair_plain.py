"""`repair_text` returns printable ASCII text (with tabs and line feeds) without running
ftfy: none of its repairs can change such text. Compared with ftfy on random ASCII text,
control characters, carriage returns and escapes included (those still go through it)."""

from __future__ import annotations

import random

import ftfy

from knowledge.repair import _BIDI_CONTROLS, _CONFIG, repair_text


def full_repair(text: str) -> str:
    return ftfy.fix_text(text, _CONFIG).translate(_BIDI_CONTROLS)


def test_ascii_text_is_repaired_as_ftfy_repairs_it() -> None:
    rng = random.Random(4)
    everything = [chr(i) for i in range(128)]
    plain = ["\t", "\n", *(chr(i) for i in range(0x20, 0x7F))]
    for alphabet in (everything, plain):
        for _ in range(5000):
            text = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
            assert repair_text(text) == full_repair(text), repr(text)


def test_what_the_shortcut_leaves_to_ftfy_is_still_repaired() -> None:
    assert repair_text("a\r\nb") == "a\nb"
    assert repair_text("\x1b[31mred\x1b[0m") == "red"
    assert repair_text("bell\x07") == "bell"
    assert repair_text("sÃ³") == "só"
    assert repair_text("ab\u202ecd") == "abcd"
    assert repair_text("") == ""
