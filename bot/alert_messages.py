"""The top message of an alert-group thread: status, running count, why grouped, triage."""

from __future__ import annotations

from typing import Any

from bot.events import RECORD_KINDS

MAX_SECTION = 2900


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_count(state: Any) -> str:
    """How many distinct alerts the group holds, and how many of them are resolved: a
    storm of 13 alerts of which 12 resolved reads "13 alert(s): 1 firing, 12 resolved", not
    "25 alert(s)" (the group's event count also counts each alert's status changes)."""
    firing, resolved = len(state.firing), len(state.resolved)
    if not firing and not resolved:  # records without alert identities
        return f"{state.count} alert(s)"
    if firing and resolved:
        return f"{firing + resolved} alert(s): {firing} firing, {resolved} resolved"
    return f"{firing + resolved} alert(s)"


def _alert_header(state: Any) -> tuple[str, str, str, str]:
    """Header, text fallback, alert names and why grouped, of a group of alerts."""
    status = state.status.upper()
    icon = ":white_check_mark:" if state.status == "resolved" else ":rotating_light:"
    names = ", ".join(
        f"{_escape(n)} x{c}" for n, c in sorted(state.alertnames.items(), key=lambda kv: -kv[1])[:5]
    )
    count = alert_count(state)
    header = f"{icon} *[{status}] {_escape(state.title)}*: {count}"
    if state.duplicates:
        header += f", {state.duplicates} repeat notification(s)"
    detail = f"Alerts: {names}" if names else ""
    why = ""
    if state.reasons:
        why = "Grouped because: " + "; ".join(_escape(r) for r in state.reasons[:3])
    text = f"[{status}] {_escape(state.title)}: {count}"  # mrkdwn too
    return header, text, detail, why


def _record_header(state: Any) -> tuple[str, str]:
    """Header and text fallback of a ticket or incident record (not an alert: no firing
    status, no alert count): "[TICKET]", "[INCIDENT, RESOLVED]" when it came with its fix."""
    tag = state.kind.upper() + (", RESOLVED" if state.status == "resolved" else "")
    icon = ":white_check_mark:" if state.status == "resolved" else ":ticket:"
    text = f"[{tag}] {_escape(state.title)}"
    header = f"{icon} *{text}*"
    if state.duplicates:
        header += f": received {state.duplicates + 1} times"
    return header, text


def _duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"


def resolution_reply(state: Any, now: float) -> tuple[str, list]:
    """The thread reply when a group's alerts have all resolved: how long it lasted, and the
    root-cause form of its answer, so that what was learnt is kept."""
    from bot.slack.blocks import root_cause_button

    lasted = _duration(now - state.opened_at) if state.opened_at else ""
    head = f":white_check_mark: Resolved: {alert_count(state)}" + (
        f", {lasted} after the first fired." if lasted else ".")
    ask = ("What was it? Record the root cause and fix, and the next on-call with this alert "
           "finds them under similar incidents.")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{head} {ask}"}},
        {"type": "actions", "elements": [root_cause_button(state.answer_id)]},
    ]
    return f"{head} {ask}", blocks


def render_thread_answer(
    event: Any, triage: Any, answer_id: int | None, label_options: Any = None
) -> tuple[str, list]:
    """The answer for another alert name of a thread, posted as a reply in it."""
    from bot.slack.blocks import cut_text, render_triage

    name = event.alertname or event.title or "alert"
    where = f" ({_escape(event.service)})" if event.service else ""
    head = f":arrow_right: Also in this thread: *{_escape(name)}*{where}"
    links = links_line(event.links, str(event.kind))
    triage_text, blocks = render_triage(triage, answer_id, label_options=label_options)
    top: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": head[:MAX_SECTION]}}]
    if links:
        top.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    text = cut_text(f"Also in this thread: {_escape(name)}{where}\n{triage_text}", 3000)
    return text, (top + blocks)[:50]


def links_line(links: dict[str, str], kind: str) -> str:
    """"<url|Source> · <url|Runbook> · ..." for the thread's context line ("" if none)."""
    from bot.intake.links import link_label
    from bot.slack.blocks import link

    line = ""
    for key, url in links.items():
        item = link(url, link_label(key, kind))
        if len(line) + len(item) + 5 > MAX_SECTION:  # a cut link would show as raw markup
            continue
        line = f"{line}  ·  {item}" if line else item
    return line


def render_group_message(
    state: Any, triage: Any, answer_id: int | None, label_options: Any = None
) -> tuple[str, list]:
    """Text fallback and blocks for one alert group (header first, then the triage).

    ``label_options``: labels per target offered for corrections (None: the candidates)."""
    if state.kind in RECORD_KINDS:
        header, text = _record_header(state)
        detail = why = ""
    else:
        header, text, detail, why = _alert_header(state)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header[:MAX_SECTION]}},
    ]
    context = [c for c in (detail, why, links_line(state.links, state.kind)) if c]
    if context:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": c[:MAX_SECTION]} for c in context],
            }
        )
    if triage is not None:
        from bot.slack.blocks import cut_text, render_triage

        triage_text, triage_blocks = render_triage(
            triage, answer_id, label_options=label_options
        )
        room = 50 - len(blocks) - 1
        blocks.append({"type": "divider"})
        blocks.extend(triage_blocks[:room])
        text = cut_text(f"{text}\n{triage_text}", 3000)
    return text, blocks
