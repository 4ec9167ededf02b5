"""Redaction quality on the labelled set `cases.jsonl`, plus behaviour tests of `bot.redact`.

Figures (computed over every case of the set):

* recall on secrets: share of labelled secret values (spans of kind "secret") that no longer
  appear anywhere in the redacted text;
* recall on personal data: the same for spans of kind "pii";
* precision: share of findings (redacted spans) that overlap at least one labelled span, with
  every occurrence of a labelled value in the original text counted as labelled. A finding in a
  hard negative (a case with no spans) is therefore always a false positive.
* character precision (reported, not asserted): share of redacted characters that lie inside
  labelled spans.

Run `.venv/bin/pytest -s tests/redaction` or `.venv/bin/python -m tests.redaction.test_redaction`
to print the figures.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.redact import (
    MAX_SCAN_CHARS,
    Finding,
    RedactingFilter,
    RedactionResult,
    Redactor,
    default_redactor,
    secret_key_type,
)

CASES_PATH = Path(__file__).with_name("cases.jsonl")


def load_cases() -> list[dict]:
    with CASES_PATH.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass(frozen=True)
class Figures:
    cases: int
    secret_spans: int
    pii_spans: int
    secret_recall: float
    pii_recall: float
    precision: float
    char_precision: float
    findings: int
    misses: tuple[str, ...]
    false_positives: tuple[str, ...]


def _labelled_intervals(text: str, spans: list[dict]) -> list[tuple[int, int]]:
    intervals = []
    for span in spans:
        value = span["value"]
        start = text.find(value)
        while start >= 0:
            intervals.append((start, start + len(value)))
            start = text.find(value, start + 1)
    return intervals


def measure(redactor: Redactor | None = None) -> Figures:
    redactor = redactor or default_redactor()
    cases = load_cases()
    found = {"secret": 0, "pii": 0}
    total = {"secret": 0, "pii": 0}
    tp_findings = n_findings = 0
    tp_chars = n_chars = 0
    misses: list[str] = []
    fps: list[str] = []
    for case in cases:
        text = case["text"]
        result = redactor.redact(text)
        for span in case["spans"]:
            total[span["kind"]] += 1
            if span["value"] not in result.text:
                found[span["kind"]] += 1
            else:
                misses.append(f"{span['type']}: {span['value']!r} in {text[:80]!r}")
        labelled = _labelled_intervals(text, case["spans"])
        inside = set()
        for start, end in labelled:
            inside.update(range(start, end))
        for f in result.findings:
            n_findings += 1
            n_chars += f.end - f.start
            tp_chars += sum(1 for i in range(f.start, f.end) if i in inside)
            if any(f.start < end and start < f.end for start, end in labelled):
                tp_findings += 1
            else:
                fps.append(f"{f.type}: {text[f.start:f.end]!r} in {text[:80]!r}")
    return Figures(
        cases=len(cases),
        secret_spans=total["secret"],
        pii_spans=total["pii"],
        secret_recall=found["secret"] / total["secret"],
        pii_recall=found["pii"] / total["pii"],
        precision=tp_findings / n_findings if n_findings else 1.0,
        char_precision=tp_chars / n_chars if n_chars else 1.0,
        findings=n_findings,
        misses=tuple(misses),
        false_positives=tuple(fps),
    )


def report(fig: Figures) -> str:
    lines = [
        f"redaction figures over {fig.cases} cases "
        f"({fig.secret_spans} secret spans, {fig.pii_spans} personal-data spans, "
        f"{fig.findings} findings)",
        f"  recall secrets       {fig.secret_recall:.3f}",
        f"  recall personal data {fig.pii_recall:.3f}",
        f"  precision (findings) {fig.precision:.3f}",
        f"  precision (chars)    {fig.char_precision:.3f}",
    ]
    lines += [f"  MISS {m}" for m in fig.misses]
    lines += [f"  FALSE POSITIVE {fp}" for fp in fig.false_positives]
    return "\n".join(lines)


# ---- the labelled set ----------------------------------------------------------------------


def test_case_set_is_well_formed() -> None:
    cases = load_cases()
    assert len(cases) >= 220
    with_secret = sum(any(s["kind"] == "secret" for s in c["spans"]) for c in cases)
    with_pii = sum(any(s["kind"] == "pii" for s in c["spans"]) for c in cases)
    negatives = sum(not c["spans"] for c in cases)
    assert with_secret >= 90 and with_pii >= 80 and negatives >= 60
    for case in cases:
        for span in case["spans"]:
            assert span["kind"] in ("secret", "pii")
            assert span["value"] and span["value"] in case["text"], span


def test_quality_figures() -> None:
    fig = measure()
    print("\n" + report(fig))
    assert fig.secret_recall >= 0.98, report(fig)
    assert fig.pii_recall >= 0.95, report(fig)
    assert fig.precision >= 0.95, report(fig)


def test_hard_negatives_survive_unchanged() -> None:
    redactor = default_redactor()
    changed = [c["text"] for c in load_cases() if not c["spans"]
               if redactor.redact_text(c["text"]) != c["text"]]
    assert len(changed) <= 2, changed


def test_redaction_is_idempotent_on_every_case() -> None:
    redactor = default_redactor()
    for case in load_cases():
        once = redactor.redact_text(case["text"])
        assert redactor.redact_text(once) == once, case["text"]
        assert redactor.redact(once).findings == ()


# ---- behaviour ------------------------------------------------------------------------------


def test_result_shape_and_offsets() -> None:
    text = "mail bob@example.com key AKIAFAKE1234567890AB"
    result = default_redactor().redact(text)
    assert isinstance(result, RedactionResult)
    assert result.text == "mail [REDACTED:email] key [REDACTED:aws_access_key]"
    assert result.findings == (
        Finding("pii", "email", 5, 20),
        Finding("secret", "aws_access_key", 25, 45),
    )
    assert text[25:45] == "AKIAFAKE1234567890AB"


def test_pii_can_be_kept() -> None:
    redactor = Redactor(redact_pii=False)
    text = "bob@example.com +44 20 7946 0958 password=FAKEpa55 4111 1111 1111 1111"
    out = redactor.redact_text(text)
    assert "bob@example.com" in out and "+44 20 7946 0958" in out and "4111 1111" in out
    assert "FAKEpa55" not in out


def test_luhn_decides_card_numbers() -> None:
    redactor = default_redactor()
    assert redactor.redact_text("card 4111 1111 1111 1111") == "card [REDACTED:payment_card]"
    assert redactor.redact_text("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"


def test_hostile_input_returns_and_caps_scanning() -> None:
    redactor = default_redactor()
    near = "AKIA123 xoxb- eyJa.eyJ -----BEGIN PRIVATE KEY----- a@b. +1 415 555 01 4111 1111 1111 "
    text = (near * (1_000_000 // len(near) + 1))[:1_000_000]
    result = redactor.redact(text)
    assert result.text.endswith("[REDACTED:unscanned_tail]")
    assert len(result.text) < len(text)
    assert redactor.redact_text(result.text) == result.text  # idempotent beyond the cap too
    digits = ("1 2 3 4 5 6 7 8 9 0 " * 60_000)[:MAX_SCAN_CHARS]
    assert isinstance(redactor.redact_text(digits), str)
    dots = "a" * 50_000 + "@" + "b." * 25_000
    assert isinstance(redactor.redact_text(dots), str)


def test_text_beyond_the_cap_is_dropped_not_leaked() -> None:
    text = "x " * MAX_SCAN_CHARS + "password=FAKEpa55"
    out = default_redactor().redact_text(text)
    assert "FAKEpa55" not in out and out.endswith("[REDACTED:unscanned_tail]")


def test_extra_patterns() -> None:
    redactor = Redactor([r"\bEMP-\d{6}\b", r"customer_ref=(?P<value>[A-Z]{3}\d{4})"])
    out = redactor.redact("badge EMP-123456 customer_ref=ABC1234 host web-01")
    assert out.text == "badge [REDACTED:custom] customer_ref=[REDACTED:custom] host web-01"
    assert {f.type for f in out.findings} == {"custom"}
    assert Redactor().redact_text("badge EMP-123456") == "badge EMP-123456"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(unclosed", "not a valid regex"),
        ("a*", "matches the empty string"),
        ("", "is empty"),
        (r"(\w+)+@", "catastrophic"),
        ("x" * 2000, "longer than"),
    ],
)
def test_invalid_extra_pattern_is_a_clear_value_error(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Redactor([pattern])


def test_extra_patterns_must_be_a_sequence_of_strings() -> None:
    with pytest.raises(ValueError, match="not one string"):
        Redactor(r"\d+")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be a string"):
        Redactor([42])  # type: ignore[list-item]


def test_redact_mapping() -> None:
    payload = {
        "labels": {"alertname": "HighLatency", "instance": "10.0.0.5:9090", "pod": "api-7f9c-x2"},
        "annotations": {"description": "owner bob@example.com, token ghp_FAKE" + "a" * 32},
        "password": "FAKEpa55",
        "clientSecret": 12345,
        "apiKey": {"nested": "anything"},
        "secret_name": "db-credentials",
        "max_tokens": 4096,
        "token": None,
        "items": ["call +44 20 7946 0958", 3, ("AKIAFAKE1234567890AB",)],
    }
    out = default_redactor().redact_mapping(payload)
    assert out["labels"] == payload["labels"]
    assert out["annotations"]["description"] == (
        "owner [REDACTED:email], token [REDACTED:github_token]"
    )
    assert out["password"] == "[REDACTED:password]"
    assert out["clientSecret"] == "[REDACTED:secret]"
    assert out["apiKey"] == "[REDACTED:api_key]"
    assert out["secret_name"] == "db-credentials"
    assert out["max_tokens"] == 4096
    assert out["token"] is None
    assert out["items"] == ["call [REDACTED:phone]", 3, ("[REDACTED:aws_access_key]",)]
    assert payload["password"] == "FAKEpa55"  # input untouched
    with pytest.raises(TypeError):
        default_redactor().redact_mapping(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_redact_mapping_survives_cycles() -> None:
    data: dict = {"a": "x"}
    data["self"] = data
    out = default_redactor().redact_mapping(data)
    assert out["a"] == "x"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("password", "password"),
        ("DB_PASSWORD", "password"),
        ("clientSecret", "secret"),
        ("x-api-key", "api_key"),
        ("_authToken", "token"),
        ("secretName", None),
        ("token_type", None),
        ("max_tokens", None),
        ("hostname", None),
    ],
)
def test_secret_key_names(key: str, expected: str | None) -> None:
    assert secret_key_type(key) == expected


def test_logging_filter_redacts_message_args_and_exceptions() -> None:
    records: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = ListHandler()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redaction.filter")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("login by %s with password=%s", "bob@example.com", "FAKEpa55")
        try:
            raise RuntimeError("db url postgres://app:FAKEsecret9@db:5432/x")
        except RuntimeError:
            logger.exception("connect failed for %s", "host db-01")
        logger.info("bad format %s %s", "only-one-arg")  # must not raise nor leak
    finally:
        logger.removeHandler(handler)
    assert records[0] == "login by [REDACTED:email] with password=[REDACTED:password]"
    assert "FAKEsecret9" not in records[1] and "host db-01" in records[1]
    assert "Traceback" in records[1]
    assert len(records) == 3



def _check_signature(headers: dict[str, str]) -> str:
    signature = headers["X-Slack-Signature"]  # a source line that reads like a secret pair
    return signature


def test_traceback_keeps_its_source_lines_and_redacts_its_messages() -> None:
    from bot.redact import redact_traceback

    try:
        _check_signature({"token": "xoxb-FAKE0123456789-abcdefghij"})
    except KeyError:
        formatted = traceback.format_exc()
    hostile = (formatted + "ValueError: bad input\n"
               f'  File "{__file__}", line 1\n    password=FAKEhunter22\n'
               '  File "/dev/zero", line 1\n    secret=FAKEs3cr3tvalue\n')
    redacted = redact_traceback(hostile, Redactor())
    assert 'signature = headers["X-Slack-Signature"]' in redacted  # code, kept as it is
    # text that imitates a frame is not code: the file does not hold it at that line
    assert "FAKEhunter22" not in redacted and "FAKEs3cr3tvalue" not in redacted
    # code still gets the token shapes: the token written into the calling line is not printed
    assert "xoxb-FAKE" not in redacted and "[REDACTED:slack_token]" in redacted
    assert redacted.count("[REDACTED:") == 3
    pem = ("RuntimeError: key\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
           "-----END PRIVATE KEY-----\n")
    assert "MIIEvQ" not in redact_traceback(formatted + pem, Redactor())  # lines seen whole


if __name__ == "__main__":
    print(report(measure()))
