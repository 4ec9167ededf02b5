"""Which stored items a channel may see in answers.

Every incident, ticket and runbook carries a ``visibility`` string: ``public`` (everyone),
``private:<channel id>`` (only that channel) or ``helpdesk`` (help-desk channels only).
"""

from __future__ import annotations

from collections.abc import Callable

PUBLIC = "public"
HELPDESK = "helpdesk"


def private_to(channel_id: str) -> str:
    return f"private:{channel_id}"


def is_visibility(value: str) -> bool:
    """Whether some channel would match ``value``: public, helpdesk or private:<channel>
    (anything else would keep an item out of every answer)."""
    channel = value.removeprefix("private:")
    return value in (PUBLIC, HELPDESK) or (channel != value and bool(channel.strip()))


def visibility_for_channel(channel_id: str, mode: str) -> Callable[[str], bool]:
    """A predicate over item visibility strings for answers shown in ``channel_id``."""
    allowed = {PUBLIC, ""}
    if channel_id:
        allowed.add(private_to(channel_id))
    if str(mode) == HELPDESK:
        allowed.add(HELPDESK)
    frozen = frozenset(allowed)

    def visible(value: str) -> bool:
        return (value or "") in frozen

    return visible


def visibility_of_new_item(channel_id: str, mode: str, *, is_private: bool) -> str:
    """The visibility of something recorded from a channel (e.g. a root cause and fix)."""
    if is_private or not channel_id or channel_id.startswith("D"):
        return private_to(channel_id)
    if str(mode) == HELPDESK:
        return HELPDESK
    return PUBLIC
