"""Redaction of secrets and personal data before text is stored, indexed, logged or shown.

Everything that leaves intake goes through a `Redactor`: each detected value is replaced by
``[REDACTED:<type>]``. Detection is regex based (all built-in patterns use bounded quantifiers
and no ambiguous nested repetition, so matching is linear in the input) with cheap validation in
Python: Luhn and issuer prefixes for payment cards, and Google's libphonenumber (the
``phonenumbers`` package) for phone numbers.

Limits, by design:

* At most ``MAX_SCAN_CHARS`` characters of ordinary text are scanned per call (markers of an
  earlier redaction do not count). Anything beyond that is *dropped* and replaced with
  ``[REDACTED:unscanned_tail]``: unscanned text is never passed on (fail closed).
* At most ``MAX_PHONE_CHECKS`` distinct phone candidates are checked with libphonenumber per
  call; beyond that only strongly phone-shaped candidates (``+`` prefix or ``(415) 555-0132``)
  are redacted, without the library check.

Redaction is idempotent: markers are never matched again, so ``redact(redact(x)) == redact(x)``.
"""

from __future__ import annotations

import linecache
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers

__all__ = [
    "MAX_SCAN_CHARS",
    "Finding",
    "RedactingFilter",
    "RedactionResult",
    "Redactor",
    "default_redactor",
    "redact_traceback",
    "secret_key_type",
]

MAX_SCAN_CHARS = 100_000
MAX_PHONE_CHECKS = 1_000
MAX_EXTRA_PATTERN_CHARS = 1_000
MAX_MAPPING_DEPTH = 32
TRUNCATED_MARKER = "[REDACTED:unscanned_tail]"
# Regions tried for phone numbers written without a country code.
NATIONAL_REGIONS = ("GB", "DE", "FR", "NL", "IT", "ES", "IE", "AU", "IN", "BR", "JP", "CH", "AT")

SECRET = "secret"
PII = "pii"

MARKER_RE = re.compile(r"\[REDACTED:[a-z0-9_]{1,40}\]")


@dataclass(frozen=True)
class Finding:
    """One redacted span; offsets refer to the text given to `Redactor.redact`."""

    kind: str  # "secret" | "pii"
    type: str  # e.g. "aws_access_key", "email"
    start: int
    end: int


@dataclass(frozen=True)
class RedactionResult:
    text: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str
    type: str


# --------------------------------------------------------------------------------------------
# Token shapes: (type, pattern, group to redact)
# --------------------------------------------------------------------------------------------

_B = r"(?![A-Za-z0-9_-])"  # right boundary for tokens that may contain '-' and '_'
_TOKEN_PATTERNS: tuple[tuple[str, str, int | str], ...] = (
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA)[A-Z0-9]{16}\b", 0),
    ("gcp_api_key", r"\bAIza[0-9A-Za-z_-]{35}" + _B, 0),
    ("slack_token", r"\bxox[abprse]-[A-Za-z0-9-]{10,250}", 0),
    ("slack_app_token", r"\bxapp-\d-[A-Za-z0-9-]{10,250}", 0),
    (
        "slack_webhook",
        r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{8,300}",
        0,
    ),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", 0),
    ("github_token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b", 0),
    ("gitlab_token", r"\bgl(?:pat|dt|rt|ptt|cbt|soat|ffct|imt)-[A-Za-z0-9_-]{20,64}" + _B, 0),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}\b", 0),
    ("stripe_key", r"\bwhsec_[A-Za-z0-9]{24,64}\b", 0),
    (
        "openai_api_key",
        r"\bsk-(?:(?:proj|svcacct|admin|ant-api\d\d|ant)-[A-Za-z0-9_-]{20,250}"
        r"|[A-Za-z0-9]{32,64}(?![A-Za-z0-9_-]))",
        0,
    ),
    ("twilio_key", r"\b(?:SK|AC)[0-9a-f]{32}\b", 0),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{30,64}" + _B, 0),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{0,2000}", 0),
    (
        "azure_storage_key",
        r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=([A-Za-z0-9+/%=]{20,400})",
        1,
    ),
    ("azure_sas_signature", r"[?&]sig=([A-Za-z0-9%+/=]{16,300})", 1),
    (
        "aws_secret_key",
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?[ \t]{0,3}(?::=|=>|[:=])[ \t]{0,3}[\"']?"
        r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        1,
    ),
    (
        "bearer_token",
        r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]{0,3}[:=][ \t]{0,3}[\"']?"
        r"(?:(?:bearer|basic|token|bot|digest|negotiate|apikey|sso-key)[ \t]{1,3})?"
        r"([A-Za-z0-9._~+/:=-]{8,4096})",
        1,
    ),
    ("bearer_token", r"\b[Bb]earer[ \t]{1,3}([A-Za-z0-9._~+/-]{16,4096}={0,2})", 1),
    (
        "url_password",
        r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@'\"<>\[\]]{0,128}:([^\s/@'\"<>]{1,256})@",
        1,
    ),
    (
        "password",
        r"(?i)\b(?:password|passwd|passcode|passphrase|pwd)[ \t]{1,2}(?:is|was|=|:)[ \t]{1,3}"
        r"[\"'“]?([^\s\"'”]{3,63}[^\s\"'”.,;:)?])",
        1,
    ),
)

# Literal text without which each token shape cannot match, in the order of _TOKEN_PATTERNS:
# a pattern is run only on a text that holds one of its needles. Most texts (an alert's
# summary, a label value) hold none, and a substring test costs far less than a regex scan.
# For the case-insensitive patterns (True) the needles are looked for in the lower-cased text,
# and only in ASCII text: with (?i) a few other letters match ASCII ones (the Kelvin sign
# matches k, the long s matches s, the dotless i matches i), so non-ASCII text runs them all.
_TOKEN_NEEDLES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA"), False),
    (("AIza",), False),
    (("xox",), False),
    (("xapp-",), False),
    (("://hooks.slack.com/",), False),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), False),
    (("github_pat_",), False),
    (("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glsoat-", "glffct-", "glimt-"), False),
    (("sk_live_", "sk_test_", "rk_live_", "rk_test_"), False),
    (("whsec_",), False),
    (("sk-",), False),
    (("SK", "AC"), False),
    (("SG.",), False),
    (("npm_",), False),
    (("eyJ",), False),
    (("accountkey=", "sharedaccesskey=", "sharedaccesssignature="), True),
    (("?sig=", "&sig="), False),
    (("awssecret", "aws_secret"), True),
    (("authorization",), True),
    (("Bearer", "bearer"), False),
    (("://",), False),
    (("pass", "pwd"), True),
)
assert len(_TOKEN_NEEDLES) == len(_TOKEN_PATTERNS)
# Whether a text holds any needle at all (one scan; most texts hold none).
_ANY_NEEDLE = re.compile(
    "|".join(re.escape(n) for needles, folded in _TOKEN_NEEDLES if not folded for n in needles)
)
_ANY_FOLDED_NEEDLE = re.compile(
    "|".join(re.escape(n) for needles, folded in _TOKEN_NEEDLES if folded for n in needles)
)

# Token rules that read "name: value" / "name is value"; in program source the value is code.
_PAIR_SHAPED_TOKENS = frozenset({"aws_secret_key", "bearer_token", "password"})

# Pure-hex 40-character strings are git SHAs, not AWS secret keys.
_AWS_SECRET_NEAR_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY_LINE = re.compile(r"(?:\r?\n|\\n)[A-Za-z0-9+/=]{1,100}")
_PEM_WINDOW = 20_000

# ---- key = value pairs -----------------------------------------------------------------------

_KV_RE = re.compile(
    r"(?P<q>[\"']?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,60}+)\\?(?P=q)"
    r"[ \t]{0,3}(?::=|=>|[:=])[ \t]{0,3}"
    r"(?:\\\"(?P<v1>[^\"\\\n]{1,256})\\\"|\"(?P<v2>[^\"\n]{1,256})\"|'(?P<v3>[^'\n]{1,256})'"
    r"|(?P<v4>[^\s,;'\"&}\])<>]{1,256}))"
)
# command-line flags: --password VALUE, --account-key VALUE
_FLAG_RE = re.compile(
    r"(?<![\w-])--?(?P<key>[A-Za-z][A-Za-z0-9_-]{1,40})[ \t]{1,3}"
    r"(?:\"(?P<v2>[^\"\n]{1,256})\"|'(?P<v3>[^'\n]{1,256})'|(?P<v4>[^\s'\"-][^\s'\"]{0,255}))"
)
# user info of a URL without a password: https://<long key>@o123.ingest.sentry.io/1
_URL_USER_KEY = re.compile(r"://([A-Za-z0-9_-]{20,128})@")
_URL_USERINFO_BEFORE = re.compile(r"://(?:[^\s/@:]{0,128}:)?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"pass(?:word|wd|phrase|code)|(?:^|_)(?:pwd|pass|pw)$"), "password"),
    (re.compile(r"aws_?secret"), "aws_secret_key"),
    (re.compile(r"client_?secret|secret_?key|secret(?:s)?$|secret_?(?:value|string)$"), "secret"),
    (re.compile(r"private_?key"), "private_key"),
    (re.compile(r"api_?key|subscription_?key|x_?api_?key"), "api_key"),
    (re.compile(r"access_?key|account_?key|storage_?key|shared_?access_?key|master_?key"),
     "access_key"),
    (re.compile(r"token$|token_?(?:value|secret)$|^_?auth$|credentials?$|(?:^|_)sig$|signature$"),
     "token"),
)
_BENIGN_KEY = re.compile(
    r"(?:^|_)(?:name|names|type|types|ttl|count|len|length|size|max|min|limit|expiry|expires|"
    r"expires_(?:at|in)|expiration|age|days|id|ids|ref|path|file|dir|policy|rotation|version|kind|"
    r"arn|store|manager|provider|url|uri|endpoint|enabled|required|algorithm|format|label|mode|"
    r"used|usage|rate|interval|source|namespace|field|env|header|prefix|reset|hint|tokens|"
    r"strength|updated|changed|set|prompt|chars)$"
)
_PLACEHOLDER_VALUE = re.compile(
    r"(?i)^(?:|null|none|nil|true|false|undefined|bearer|basic|token|yes|no|on|off|"
    r"\*{1,64}|x{3,64}|<[^>]{0,64}>?|\$\{[^}]{0,64}\}?|\$[A-Z_][A-Z0-9_]{0,63}|\{\{.{0,64}|"
    r"%s|\?|redacted|hidden|masked|\[?redacted\]?|\[REDACTED:.*)$"
)

# ---- personal data ---------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9-]{1,63}\.){1,8}(?P<tld>[A-Za-z]{2,24})(?![A-Za-z0-9-])"
)
# SSH remotes such as git@github.com:org/repo.git are addresses of repositories, not people.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp"})
_SSH_USERS = frozenset({"git", "hg", "svn", "ubuntu", "ec2-user", "root", "admin"})

_PHONE_RE = re.compile(
    r"(?<![\w+.:/#@$%&\\-])"
    r"(?P<num>(?:\+|(?<!\d)00(?=[1-9]))?(?:\(\d{1,5}\)|\d{1,15})"
    r"(?:[ .-]{1,2}\d{1,8}|[ .-]?\(\d{1,5}\)|(?<=\))[ .-]?\d{1,8}){0,6})"
    r"(?![\w:/@+]|[.,-]\d)"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|telephone|tel|mobile|cell|call|fax|sms|whatsapp|contact|reach|text|ring|"
    r"dial|landline|hotline|ph)\b[^\n]{0,25}$"
)
_DATE_LIKE = re.compile(
    r"^(?:(?:19|20)\d\d[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ](?:19|20)\d\d)$"
)
_IP_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_NANP_SHAPE = re.compile(r"^(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}$")

_CARD_RE = re.compile(r"(?<![\w.:/+-])\d(?:[ -]?\d){12,18}(?![\w:/+]|[.,-]\d)")
_CARD_GROUPS = (
    (4, 4, 4, 4),
    (4, 4, 4, 4, 3),
    (4, 4, 4, 4, 2),
    (4, 4, 4, 4, 1),
    (4, 4, 4, 1),
    (4, 4, 4, 3),
    (4, 6, 5),
    (4, 6, 4),
    (4, 4, 4, 4, 4),
    (6, 13),
)
_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[689])|6(?:011|5|4[4-9]|2)|"
    r"35(?:2[89]|[3-8])|50|5[6-9]|6[37])"
)

# Quantified group whose body already has an unbounded quantifier: (a+)+, (\w*)*, (x+){2,}.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.){0,500}[+*}](?:[^()\\]|\\.){0,500}\)[+*{]")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_ok(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits):
        return False
    if len(set(digits)) == 1:  # 0000 0000 0000 0000-style filler
        return False
    seps = set(re.findall(r"[ -]", candidate))
    if len(seps) > 1:
        return False
    if seps:
        groups = tuple(len(g) for g in re.split(r"[ -]", candidate))
        if groups not in _CARD_GROUPS:
            return False
    return _luhn_ok(digits)


@lru_cache(maxsize=4096)
def _phone_valid(candidate: str, has_context: bool) -> bool:
    """libphonenumber validation of one candidate that passed the shape checks."""
    compact = candidate.replace("(0)", "") if candidate.startswith("+") else candidate
    try:
        if compact.startswith(("+", "00")):
            num = phonenumbers.parse("+" + compact[2:] if compact.startswith("00") else compact)
            return phonenumbers.is_valid_number(num)
        nanp = _NANP_SHAPE.match(compact) or (has_context and len(re.sub(r"\D", "", compact)) == 10)
        if nanp and phonenumbers.is_valid_number(phonenumbers.parse(compact, "US")):
            return True
        if compact.startswith(("0", "(0")):
            for region in NATIONAL_REGIONS:
                if phonenumbers.is_valid_number(phonenumbers.parse(compact, region)):
                    return True
        if has_context:  # e.g. Indian mobiles "98765 43210" after "call me on"
            return phonenumbers.is_valid_number(phonenumbers.parse(compact, "IN"))
    except phonenumbers.NumberParseException:
        return False
    return False


_NON_DIGIT = re.compile(r"\D")


def _phone_digits_ok(candidate: str) -> bool:
    """A phone number has 7 to 15 digits (the first test of :func:`_phone_shape_ok`)."""
    return 7 <= len(_NON_DIGIT.sub("", candidate)) <= 15


def _phone_shape_ok(candidate: str, has_context: bool) -> bool:
    if not _phone_digits_ok(candidate):
        return False
    if _DATE_LIKE.match(candidate) or _IP_LIKE.match(candidate):
        return False
    international = candidate.startswith("+") or candidate.startswith("00")
    has_sep = bool(re.search(r"[ .()-]", candidate))
    if not (international or has_sep or has_context):
        return False  # bare digit runs are ids unless the text says it is a number
    # dotted groups without a phone context are versions, OIDs and metric paths
    return not ("." in candidate and not international and not has_context
                and not _NANP_SHAPE.match(candidate))


def _search_all(
    pattern: re.Pattern[str], text: str, accept: Callable[[re.Match[str]], bool]
) -> Iterator[re.Match[str]]:
    """Like finditer, but after a rejected candidate the search resumes one character later,
    so that a valid value glued to a rejected prefix is still found."""
    pos = 0
    n = len(text)
    while pos <= n:
        m = pattern.search(text, pos)
        if m is None:
            return
        if accept(m):
            yield m
            pos = m.end() if m.end() > m.start() else m.start() + 1
        else:
            pos = m.start() + 1


def _check_extra_pattern(index: int, pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ValueError(f"extra pattern #{index} must be a string, got {type(pattern).__name__}")
    if not pattern.strip():
        raise ValueError(f"extra pattern #{index} is empty")
    if len(pattern) > MAX_EXTRA_PATTERN_CHARS:
        raise ValueError(
            f"extra pattern #{index} is longer than {MAX_EXTRA_PATTERN_CHARS} characters"
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"extra pattern #{index} {pattern!r} is not a valid regex: {exc}") from exc
    if compiled.search("") is not None:
        raise ValueError(f"extra pattern #{index} {pattern!r} matches the empty string")
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError(
            f"extra pattern #{index} {pattern!r} repeats a group that has an unbounded quantifier "
            "(catastrophic backtracking risk); use bounded quantifiers such as {1,64}"
        )
    return compiled


def _scan_limit(text: str) -> int:
    """Index where scanning stops: after MAX_SCAN_CHARS characters that are not markers."""
    if len(text) <= MAX_SCAN_CHARS:
        return len(text)
    budget = MAX_SCAN_CHARS
    pos = 0
    for m in MARKER_RE.finditer(text):
        gap = m.start() - pos
        if gap >= budget:
            return pos + budget
        budget -= gap
        pos = m.end()
    return min(len(text), pos + budget)


# --------------------------------------------------------------------------------------------
# Redactor
# --------------------------------------------------------------------------------------------


_MEMO_MAX_CHARS = 256
_MEMO_SIZE = 20_000


class Redactor:
    """Finds and replaces secrets (and, unless ``redact_pii=False``, personal data).

    ``extra_patterns`` are regex strings compiled once; a match (or its group named ``value``,
    when the pattern has one) is redacted as ``[REDACTED:custom]``. Invalid patterns raise
    ``ValueError`` naming the pattern.
    """

    def __init__(self, extra_patterns: Sequence[str] = (), *, redact_pii: bool = True) -> None:
        if isinstance(extra_patterns, str):
            raise ValueError("extra_patterns must be a sequence of regex strings, not one string")
        self.redact_pii = redact_pii
        self._extra = tuple(_check_extra_pattern(i, p) for i, p in enumerate(extra_patterns))
        self._tokens = tuple(
            (t, re.compile(p), g, needles, folded)
            for (t, p, g), (needles, folded) in zip(_TOKEN_PATTERNS, _TOKEN_NEEDLES, strict=True)
        )
        self._memo: dict[str, str] = {}

    # ---- public API --------------------------------------------------------------------------

    def redact(self, text: str, *, code: bool = False) -> RedactionResult:
        """``code=True`` is for program source (the lines a traceback quotes): the rules that
        read ``name = value`` as a secret pair are skipped there, since in code the value is
        an expression; token shapes, private keys, URL passwords and personal data still count.
        """
        if not isinstance(text, str):
            raise TypeError(f"redact() needs a str, got {type(text).__name__}")
        limit = _scan_limit(text)
        head = text[:limit]
        spans = self._merge(self._detect(head, code=code), head)
        out: list[str] = []
        pos = 0
        for s in spans:
            out.append(head[pos : s.start])
            out.append(f"[REDACTED:{s.type}]")
            pos = s.end
        out.append(head[pos:])
        if limit < len(text):
            tail = text[limit:]
            if tail != TRUNCATED_MARKER:
                out.append(TRUNCATED_MARKER)
            else:
                out.append(tail)
        findings = tuple(Finding(s.kind, s.type, s.start, s.end) for s in spans)
        return RedactionResult("".join(out), findings)

    def redact_text(self, text: str) -> str:
        """The redacted text. Short texts are memoized: in an alert storm the same label values
        (alert names, namespaces, summaries) come back thousands of times."""
        if len(text) > _MEMO_MAX_CHARS:
            return self.redact(text).text
        cached = self._memo.get(text)
        if cached is None:
            cached = self.redact(text).text
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[text] = cached
        return cached

    def redact_mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Copy of ``data`` with every string redacted, recursively through mappings, lists and
        tuples. A value under a secret-ish key (``password``, ``api_key``, ``clientSecret``...)
        is replaced whole, whatever its type, unless it is None or a bool."""
        if not isinstance(data, Mapping):
            raise TypeError(f"redact_mapping() needs a mapping, got {type(data).__name__}")
        return self._redact_mapping(data, 0)

    # ---- mapping helpers -----------------------------------------------------------------------

    def _redact_mapping(self, data: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in data.items():
            secret_type = secret_key_type(key) if isinstance(key, str) else None
            if secret_type and value is not None and not isinstance(value, bool) and value != "":
                result[key] = f"[REDACTED:{secret_type}]"
            else:
                result[key] = self._redact_value(value, depth + 1)
        return result

    def _redact_value(self, value: Any, depth: int) -> Any:
        if depth > MAX_MAPPING_DEPTH:
            return "[REDACTED:too_deep]"
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return self._redact_mapping(value, depth)
        if isinstance(value, list | tuple):
            items = [self._redact_value(v, depth + 1) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, bytes | bytearray):
            return self.redact_text(bytes(value).decode("utf-8", "replace"))
        return value

    # ---- detection -----------------------------------------------------------------------------

    def _detect(self, text: str, *, code: bool = False) -> Iterator[_Span]:
        yield from self._detect_tokens(text, code=code)
        yield from self._detect_pem(text)
        if not code:
            yield from self._detect_key_values(text)
        for pattern in self._extra:
            for m in pattern.finditer(text):
                group = "value" if "value" in pattern.groupindex else 0
                if m.start(group) >= 0 and m.end(group) > m.start(group):
                    yield _Span(m.start(group), m.end(group), SECRET, "custom")
        if self.redact_pii:
            yield from self._detect_emails(text)
            yield from self._detect_cards(text)
            yield from self._detect_phones(text)

    def _detect_tokens(self, text: str, *, code: bool = False) -> Iterator[_Span]:
        aws_keys: list[re.Match[str]] = []
        lower = text.lower() if text.isascii() else None
        if lower is not None and not (_ANY_NEEDLE.search(text) or _ANY_FOLDED_NEEDLE.search(lower)):
            return
        for type_, pattern, group, needles, folded in self._tokens:
            if code and type_ in _PAIR_SHAPED_TOKENS:
                continue
            if folded:
                if lower is not None and not any(n in lower for n in needles):
                    continue
            elif not any(n in text for n in needles):
                continue
            for m in pattern.finditer(text):
                start, end = m.span(group)
                if end <= start or _PLACEHOLDER_VALUE.match(m.group(group)):
                    continue
                if type_ == "password" and not re.search(r"[\d\W_]|[a-z][A-Z]", m.group(group)):
                    continue  # "password is expired" - prose, not a password
                if type_ == "aws_access_key":
                    aws_keys.append(m)
                yield _Span(start, end, SECRET, type_)
        for key in aws_keys:  # a secret key printed next to its access key id
            lo, hi = max(0, key.start() - 200), min(len(text), key.end() + 200)
            for m in _AWS_SECRET_NEAR_KEY.finditer(text, lo, hi):
                value = m.group()
                if re.fullmatch(r"[0-9a-fA-F]{40}", value) or not (
                    re.search(r"[A-Z]", value) and re.search(r"[a-z]", value)
                ):
                    continue
                yield _Span(m.start(), m.end(), SECRET, "aws_secret_key")

    def _detect_pem(self, text: str) -> Iterator[_Span]:
        pos = 0
        while True:
            begin = _PEM_BEGIN.search(text, pos)
            if begin is None:
                return
            end = _PEM_END.search(text, begin.end(), min(len(text), begin.end() + _PEM_WINDOW))
            if end is not None:
                yield _Span(begin.start(), end.end(), SECRET, "private_key")
                pos = end.end()
                continue
            # truncated block: header plus the base64 lines that follow it
            stop = begin.end()
            limit = min(len(text), stop + _PEM_WINDOW)
            while (line := _PEM_BODY_LINE.match(text, stop, limit)) is not None:
                stop = line.end()
            yield _Span(begin.start(), stop, SECRET, "private_key")
            pos = stop

    def _detect_key_values(self, text: str) -> Iterator[_Span]:
        yield from self._detect_pairs(_KV_RE, text, resume_after_key=True)
        yield from self._detect_pairs(_FLAG_RE, text, resume_after_key=False)
        if "://" not in text:
            return
        for m in _URL_USER_KEY.finditer(text):
            yield _Span(m.start(1), m.end(1), SECRET, "url_credential")

    @staticmethod
    def _detect_pairs(
        pattern: re.Pattern[str], text: str, *, resume_after_key: bool
    ) -> Iterator[_Span]:
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            # an ordinary pair's value may hold a secret pair (a URL query), so resume after its key
            pos = m.end("key") if resume_after_key else m.end()
            type_ = secret_key_type(m.group("key"))
            if type_ is None:
                continue
            pos = m.end()
            group = next(g for g in ("v1", "v2", "v3", "v4")
                         if g in pattern.groupindex and m.group(g) is not None)
            value = m.group(group)
            if _PLACEHOLDER_VALUE.match(value.strip()):
                continue
            if type_ == "password" and m.group("key").lower() == "pwd" and value[:1] in "/~":
                continue  # PWD=/home/app is a working directory
            yield _Span(m.start(group), m.end(group), SECRET, type_)

    def _detect_emails(self, text: str) -> Iterator[_Span]:
        if "@" not in text:
            return
        for m in _EMAIL_RE.finditer(text):
            local = m.group().split("@", 1)[0].lower()
            if local in _SSH_USERS and text[m.end() : m.end() + 1] == ":":
                continue
            if _URL_USERINFO_BEFORE.search(text, max(0, m.start() - 140), m.start()):
                continue  # scheme://user:pass@host is a URL, handled by url_password
            if m.group("tld").lower() in _FILE_EXTENSIONS:  # icon@2x.png
                continue
            yield _Span(m.start(), m.end(), PII, "email")

    def _detect_cards(self, text: str) -> Iterator[_Span]:
        for m in _search_all(_CARD_RE, text, lambda m: _card_ok(m.group())):
            yield _Span(m.start(), m.end(), PII, "payment_card")

    def _detect_phones(self, text: str) -> Iterator[_Span]:
        checks: set[str] = set()

        def accept(m: re.Match[str]) -> bool:
            candidate = m.group("num")
            if not _phone_digits_ok(candidate):  # most candidates: short numbers, no look-back
                return False
            context = bool(_PHONE_CONTEXT.search(text, max(0, m.start() - 40), m.start()))
            if not _phone_shape_ok(candidate, context):
                return False
            if len(checks) >= MAX_PHONE_CHECKS and candidate not in checks:
                return candidate.startswith("+") or bool(_NANP_SHAPE.match(candidate))
            checks.add(candidate)
            return _phone_valid(candidate, context)

        for m in _search_all(_PHONE_RE, text, accept):
            yield _Span(m.start("num"), m.end("num"), PII, "phone")

    @staticmethod
    def _merge(spans: Iterable[_Span], text: str) -> list[_Span]:
        """Union of overlapping spans, minus anything inside an existing marker."""
        markers = [(m.start(), m.end()) for m in MARKER_RE.finditer(text)]
        kept: list[_Span] = []
        for s in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
            if _overlaps_marker(s, markers):
                continue
            if kept and s.start < kept[-1].end:
                last = kept[-1]
                if s.end > last.end:
                    longer = s if s.end - s.start > last.end - last.start else last
                    kept[-1] = _Span(last.start, s.end, longer.kind, longer.type)
                continue
            kept.append(s)
        return kept


def _overlaps_marker(span: _Span, markers: list[tuple[int, int]]) -> bool:
    # markers are few; a linear scan keeps this simple
    return any(span.start < end and start < span.end for start, end in markers)


@lru_cache(maxsize=4096)  # key names repeat: labels, annotations, "name=" in log lines
def secret_key_type(key: str) -> str | None:
    """Type of secret a key name holds ("password", "api_key"...), or None for ordinary keys."""
    if not key or len(key) > 100:
        return None
    norm = _CAMEL.sub("_", key).lower().replace("-", "_").replace(".", "_")
    if _BENIGN_KEY.search(norm):
        return None
    for pattern, type_ in _SECRET_KEY_RULES:
        if pattern.search(norm):
            return type_
    return None


@lru_cache(maxsize=1)
def default_redactor() -> Redactor:
    """Shared redactor with the built-in detectors only."""
    return Redactor()


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the formatted message, exception text and stack info.

    Attach it to handlers (``handler.addFilter(RedactingFilter())``): filters on a logger do
    not see records propagated from child loggers. It never drops a record.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor or default_redactor()
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a bad format must not leak the raw args
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redactor.redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_traceback(record.exc_text, redactor)
        if record.stack_info:
            record.stack_info = redact_traceback(record.stack_info, redactor)
        return True


_FRAME_HEADER = re.compile(r'^\s*File "(?P<file>[^"\n]{1,1000})", line (?P<line>\d{1,9})')
_CARET_LINE = re.compile(r"^\s*[~^]+\s*$")


def redact_traceback(text: str, redactor: Redactor) -> str:
    """Redact a formatted traceback, reading the source lines it quotes as code.

    Read as text, ``signature = request.headers[...]`` is a secret pair; as code only token
    shapes count (``Redactor.redact(code=True)``). A line counts as code only when it is what
    that file holds at that line, so an exception message that imitates a frame gets no
    leniency. The other lines are redacted as text, each run of them in one call so that a
    secret spanning lines (a PEM block) is still seen whole.
    """
    out: list[str] = []
    data: list[str] = []
    frame: re.Match[str] | None = None  # the header just read: its source line may follow
    in_code = False
    for line in text.splitlines(keepends=True):
        code = (frame is not None and _is_source_line(line, frame)) or (
            in_code and bool(_CARET_LINE.match(line)))
        if code:
            if data:
                out.append(redactor.redact_text("".join(data)))
                data = []
            out.append(redactor.redact(line, code=True).text)
        else:
            data.append(line)
        in_code = code
        frame = _FRAME_HEADER.match(line)
    if data:
        out.append(redactor.redact_text("".join(data)))
    return "".join(out)


def _is_source_line(line: str, frame: re.Match[str]) -> bool:
    # Only files that formatting the traceback already read are consulted: a path named in
    # hostile text (/dev/zero, a FIFO) is never opened.
    entry = linecache.cache.get(frame.group("file"))
    if not line[:1].isspace() or not entry or len(entry) != 4:
        return False
    lines, number = entry[2], int(frame.group("line"))
    return 0 < number <= len(lines) and lines[number - 1].strip() == line.strip() != ""
