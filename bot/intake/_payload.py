"""Typed access to untrusted JSON payloads; every failure is a PayloadError naming its field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.intake.errors import PayloadError

_MAX_KEY_CHARS = 256
_FRACTION = re.compile(r"(\.\d{6})\d{1,30}")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def cap(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters (an ellipsis marks the cut)."""
    if len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - 1)] + "…"


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(path, f"expected an object, got {_kind(value)}")
    return value


def opt_str(obj: Mapping[str, Any], key: str, path: str, max_chars: int, default: str = "") -> str:
    """A string field; missing or null gives ``default``; numbers are not accepted."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(join(path, key), f"expected a string, got {_kind(value)}")
    return cap(value, max_chars)


def opt_int(obj: Mapping[str, Any], key: str, path: str, default: int = 0) -> int:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(join(path, key), f"expected an integer, got {_kind(value)}")
    return value


def scalar_str(value: Any, path: str, max_chars: int) -> str:
    """A label-like value: strings as they are, numbers and booleans as text."""
    if isinstance(value, str):
        return cap(value, max_chars)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise PayloadError(path, f"expected a string, got {_kind(value)}")


def str_map(
    obj: Mapping[str, Any], key: str, path: str, max_chars: int, max_items: int = 256
) -> dict[str, str]:
    """An object of string values (labels, annotations); null or missing gives ``{}``."""
    value = obj.get(key)
    here = join(path, key)
    if value is None:
        return {}
    items = mapping(value, here)
    if len(items) > max_items:
        raise PayloadError(here, f"more than {max_items} entries")
    out: dict[str, str] = {}
    for k, v in items.items():
        if not isinstance(k, str):
            raise PayloadError(here, "keys must be strings")
        # A string as is; the field's path is only built for the other kinds (it names
        # the field in an error), not for every label of every alert.
        out[cap(k, _MAX_KEY_CHARS)] = (
            cap(v, max_chars) if isinstance(v, str) else scalar_str(v, join(here, k), max_chars)
        )
    return out


def choice(obj: Mapping[str, Any], key: str, path: str, allowed: set[str], default: str) -> str:
    value = opt_str(obj, key, path, 64, default)
    low = value.lower()
    if low not in allowed:
        raise PayloadError(join(path, key), f"expected one of {sorted(allowed)}, got {value!r}")
    return low


def opt_time(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    """An RFC 3339 time; missing, empty or Go's zero time (year 1) gives ``None``."""
    value = obj.get(key)
    here = join(path, key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(here, f"expected an RFC 3339 time string, got {_kind(value)}")
    text = value.strip()
    if len(text) > 64:
        raise PayloadError(here, "time string too long")
    text = _FRACTION.sub(r"\1", text)  # Go sends nanoseconds; Python parses microseconds
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(here, f"not an RFC 3339 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year <= 1:
        return None
    return parsed


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
