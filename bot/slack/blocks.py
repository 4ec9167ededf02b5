"""Block Kit rendering of a triage answer: compact by default, full details on "More".

Independent of Bolt (the webhook intake reuses :func:`render_triage` for alert threads).
Every output stays inside Slack's limits: at most 50 blocks per message, 3000 characters per
section text, 75 per button / option text, 150 per option value; longer text is cut with a
pointer to the details. User-provided text is escaped for mrkdwn (``&``, ``<``, ``>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.slack.ids import NOT_HELPFUL_REASONS, ActionId, BlockId
from bot.triage_types import (
    Evidence,
    Hypothesis,
    LabelPrediction,
    RunbookMatch,
    SimilarIncident,
    Step,
    Triage,
    similarity_note,
)

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_BUTTON_TEXT = 75
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTIONS = 100
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK = 3000
MORE_POINTER = "… _see More_"

Block = dict[str, Any]


# --- text helpers ----------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as control characters."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, pointer: str = MORE_POINTER) -> str:
    """Cut ``text`` to ``limit`` characters, ending with ``pointer`` when cut.

    Never leaves half an HTML entity, half a ``<url|label>`` link or an unclosed code fence
    behind.
    """
    if len(text) <= limit:
        return text
    room = max(0, limit - len(pointer) - 4)
    cut = re.sub(r"&[a-z]{0,4}$", "", text[:room])
    if cut.rfind("<") > cut.rfind(">"):  # inside a link: cut before it
        cut = cut[: cut.rfind("<")]
    cut = cut.rstrip()
    if cut.count("```") % 2:
        cut += "\n```"
    return (cut + pointer)[:limit]


_MD_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_MD_REF_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")


def markdown_links(escaped: str) -> str:
    """Markdown links of already-escaped runbook text as Slack links: mrkdwn has no
    ``[label](url)``, which showed as written; a reference link ``[label][ref]`` is its
    label."""
    def to_slack(m: re.Match[str]) -> str:
        label = m.group(1).replace("|", "¦")
        return f"<{m.group(2)}|{label}>"

    return _MD_REF_LINK.sub(r"\1", _MD_LINK.sub(to_slack, escaped))


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object clipped to ``limit`` (never empty)."""
    value = " ".join((text or "").split()) or "-"
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return {"type": "plain_text", "text": value, "emoji": True}


def mrkdwn(text: str, limit: int = MAX_SECTION) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text or " ", limit)}


def section(text: str, limit: int = MAX_SECTION) -> Block:
    return {"type": "section", "text": mrkdwn(text, limit)}


def context(*texts: str) -> Block:
    elements = [mrkdwn(t, MAX_SECTION) for t in texts if t][:MAX_CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements or [mrkdwn(" ")]}


def link(url: str, label: str) -> str:
    """An mrkdwn link when ``url`` is a plain http(s) URL, else just the escaped label."""
    label = escape(label)
    if url and re.fullmatch(r"https?://[^\s<>|]+", url):
        return f"<{url}|{label.replace('|', '¦')}>"
    return label


def percent(value: float) -> str:
    return f"{round(value * 100)}%"


def one_line(text: str, limit: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- parts of an answer ----------------------------------------------------------------------


def prediction_text(p: LabelPrediction) -> str:
    name = p.field.capitalize()
    if p.given is not None:  # the source's own word first
        return f"*{name}:* {escape(p.given)} ({escape(p.given_note())})"
    filed = escape(p.filed_note())
    if p.unsure:
        alternatives = ", ".join(f"{escape(c)} {percent(s)}" for c, s in p.candidates[:2])
        maybe = f"maybe {alternatives}" if alternatives else ""
        detail = "; ".join(x for x in (maybe, p.why_unsure(), filed) if x)
        return f"*{name}:* unsure ({detail})" if detail else f"*{name}:* unsure"
    detail = "; ".join(x for x in (percent(p.confidence), filed) if x)
    return f"*{name}:* {escape(p.label or '')} ({detail})"


def classification_line(triage: Triage) -> str:
    if not triage.predictions:
        return "*Classification:* no model available yet"
    return "  ·  ".join(prediction_text(p) for p in triage.predictions)


def evidence_refs(evidence: Sequence[Evidence]) -> str:
    refs = [escape(e.ref) for e in evidence[:3] if e.ref]
    return f" _[{', '.join(refs)}]_" if refs else ""


def incident_text(item: SimilarIncident, *, detail: bool = False) -> str:
    limit = 2000 if detail else 300
    head = f"• {link(item.url, item.external_id or str(item.incident_id))} "
    head += f"*{escape(one_line(item.title, 150))}*" + similarity_note(item.similarity)
    if item.duplicates:
        head += f" +{item.duplicates} similar"
    lines = [head]
    if item.root_cause:
        lines.append(f"   _Cause:_ {escape(one_line(item.root_cause, limit))}")
    if item.resolution:
        lines.append(f"   _Fix:_ {escape(one_line(item.resolution, limit))}")
    if detail and item.reasons:
        lines.append(f"   _Why:_ {escape('; '.join(item.reasons[:4]))}")
    return "\n".join(lines)


def runbook_text(match: RunbookMatch, *, excerpt: int) -> str:
    where = escape(match.document_title or match.document_path)
    if match.section:
        where += f" › {escape(match.section)}"
    title = where
    if match.url:
        title = link(match.url, f"{match.document_title} › {match.section}".strip(" ›"))
    body = markdown_links(escape(match.text.strip()))
    if len(body) > excerpt:
        body = clip(body, excerpt)
    return f"*Runbook:* {title}{similarity_note(match.similarity)}\n{body}"


def hypotheses_text(items: Sequence[Hypothesis], n: int) -> str:
    lines = ["*Likely causes*"]
    for h in items[:n]:
        refs = evidence_refs(h.evidence)
        text = markdown_links(escape(one_line(h.text, 400)))
        lines.append(f"• {text} ({percent(h.confidence)}){refs}")
    return "\n".join(lines)


def steps_text(items: Sequence[Step], n: int) -> str:
    lines = ["*Suggested steps*"]
    for i, s in enumerate(items[:n], 1):
        text = s.text.strip()
        shown = (
            f"`{escape(one_line(text, 300))}`"
            if _looks_like_command(text)
            else markdown_links(escape(one_line(text, 400)))
        )
        lines.append(f"{i}. {shown}{evidence_refs(s.evidence)}")
    return "\n".join(lines)


COMMAND = re.compile(r"^(sudo |kubectl |systemctl |journalctl |df |du |psql |curl |docker )")


def _looks_like_command(text: str) -> bool:
    return "\n" not in text and bool(COMMAND.match(text))


def novelty_text(triage: Triage) -> str:
    return (
        f":warning: *Looks new:* nothing close in past incidents or runbooks "
        f"(best similarity {triage.novelty_score:.2f}). Treat the suggestions with care, and "
        f"record the root cause once known."
    )


def versions_text(triage: Triage, answer_id: int | None) -> str:
    models = ", ".join(f"{escape(v)}" for v in sorted(set(triage.model_versions.values())))
    parts = []
    if answer_id is not None:
        parts.append(f"answer #{answer_id}")
    if models:
        parts.append(f"models {models}")
    if triage.index_version:
        parts.append(f"index {escape(triage.index_version)}")
    parts.append(f"{triage.elapsed_ms:.0f} ms")
    return " · ".join(parts)


# --- feedback controls -----------------------------------------------------------------------


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, MAX_OPTION_TEXT), "value": value[:MAX_OPTION_VALUE]}


def label_options_for(
    triage: Triage, known: Mapping[str, Sequence[str]] | None
) -> dict[str, list[str]]:
    """Labels offered per field: the known labels, else the prediction's own candidates."""
    out: dict[str, list[str]] = {}
    for p in triage.predictions:
        labels = list((known or {}).get(p.field, ()))
        if not labels:
            labels = [c for c, _ in p.candidates]
            if p.label and p.label not in labels:
                labels.insert(0, p.label)
        if labels:
            out[p.field] = list(dict.fromkeys(str(x) for x in labels if str(x)))
    return out


def correction_value(answer_id: int, field: str, label: str) -> str:
    """The value of a correction option: ``id|field|label``."""
    return f"{answer_id}|{field}|{label}"


def offered_labels(
    triage: Triage | None, known: Mapping[str, Sequence[str]] | None, answer_id: int
) -> dict[str, list[str]]:
    """The labels a correction of answer ``answer_id`` offers per field, and so the only
    ones the correction handler accepts: those of :func:`label_options_for`, less any whose
    option value would be longer than Slack's 150 characters (a cut value would store a
    label nobody chose). ``triage`` None (the answer is not at hand): every known label."""
    if triage is not None:
        options = label_options_for(triage, known)
    else:
        options = {f: [str(x) for x in labels] for f, labels in (known or {}).items()}
    out: dict[str, list[str]] = {}
    for field, labels in options.items():
        fitting = [
            label
            for label in dict.fromkeys(labels)
            if label and len(correction_value(answer_id, field, label)) <= MAX_OPTION_VALUE
        ]
        if fitting:
            out[field] = fitting
    return out


def matching_labels(labels: Sequence[str], query: str) -> list[str]:
    """``labels`` that contain ``query`` (ignoring case), in their order."""
    needle = " ".join(query.split()).casefold()
    return [label for label in labels if needle in label.casefold()]


def correction_option_groups(
    answer_id: int, options: Mapping[str, Sequence[str]], query: str = ""
) -> list[dict[str, Any]]:
    """Option groups per field for the labels matching ``query`` (all of a field's labels
    when the query names the field, e.g. "team"), at most 100 options in all: what the
    external select of a long correction menu shows as the person types."""
    groups = []
    budget = MAX_OPTIONS
    needle = " ".join(query.split()).casefold()
    for field, labels in options.items():
        named = needle and needle in field.casefold()
        shown = list(labels) if named else matching_labels(labels, query)
        opts = [_option(label, correction_value(answer_id, field, label))
                for label in shown[:budget]]
        budget -= len(opts)
        if opts:
            groups.append({"label": plain(field.capitalize(), 75), "options": opts})
    return groups


def correction_select(
    answer_id: int, options: Mapping[str, Sequence[str]]
) -> dict[str, Any] | None:
    """The "Correct a label…" menu; option values are ``id|field|label``.

    Up to 100 labels in all (Slack's limit for a static menu): a static select with an
    option group per field. More: an external select, whose options the ``app.options``
    listener in :mod:`bot.slack.feedback` sends as the person types
    (:func:`correction_option_groups`), so that no label is left out of reach."""
    total = sum(len(labels) for labels in options.values())
    if not total:
        return None
    if total > MAX_OPTIONS:
        return {
            "type": "external_select",
            "action_id": ActionId.CORRECT_LABEL,
            "placeholder": plain("Correct a label (type to search)…", 150),
            "min_query_length": 0,
        }
    return {
        "type": "static_select",
        "action_id": ActionId.CORRECT_LABEL,
        "placeholder": plain("Correct a label…", 150),
        "option_groups": correction_option_groups(answer_id, options),
    }


def feedback_block_id(answer_id: int) -> str:
    """The feedback block's id; it carries the answer id to the options requests of an
    external select (a ``block_suggestion`` payload has no message and no option value)."""
    return f"{BlockId.FEEDBACK}:{answer_id}"


def answer_id_of_block(block_id: str) -> int | None:
    """The answer id in a :func:`feedback_block_id`; None for any other block id."""
    prefix, _, answer = str(block_id).partition(":")
    if prefix != BlockId.FEEDBACK:
        return None
    try:
        return int(answer)
    except ValueError:
        return None


def root_cause_button(answer_id: int) -> dict[str, Any]:
    """The button that opens the root-cause form of answer ``answer_id``."""
    return {
        "type": "button",
        "action_id": ActionId.RECORD_ROOT_CAUSE,
        "text": plain("Record root cause and fix", MAX_BUTTON_TEXT),
        "value": str(answer_id),
    }


def feedback_actions(
    answer_id: int, options: Mapping[str, Sequence[str]], *, more: bool = True
) -> Block:
    value = str(answer_id)
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": ActionId.HELPFUL,
            "text": plain(":thumbsup: Helpful", MAX_BUTTON_TEXT),
            "value": value,
        },
        {
            "type": "static_select",
            "action_id": ActionId.NOT_HELPFUL,
            "placeholder": plain(":thumbsdown: Not helpful…", 150),
            "options": [_option(t, f"{value}|{k}") for k, t in NOT_HELPFUL_REASONS.items()],
        },
    ]
    select = correction_select(answer_id, options)
    if select is not None:
        elements.append(select)
    elements.append(root_cause_button(answer_id))
    if more:
        elements.append(
            {
                "type": "button",
                "action_id": ActionId.MORE,
                "text": plain("More", MAX_BUTTON_TEXT),
                "value": value,
            }
        )
    return {"type": "actions", "block_id": feedback_block_id(answer_id), "elements": elements}


# --- whole answers -----------------------------------------------------------------------------


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters without leaving half an HTML entity behind."""
    if len(text) <= limit:
        return text
    return re.sub(r"&[a-z]{0,4}$", "", text[:limit])


def fallback_text(triage: Triage) -> str:
    """The notification / screen-reader text beside the blocks.

    Slack reads it as mrkdwn too (it is what notifications show): stored titles and fixes are
    escaped, so a ``<!channel>`` or ``<http://...|label>`` typed into one never pings or
    links from an answer that quotes it."""
    parts = []
    for p in triage.predictions:
        value = p.given if p.given is not None else "unsure" if p.unsure else p.label
        parts.append(f"{escape(p.field)}: {escape(value or '')}")
    line = "Triage: " + (", ".join(parts) if parts else "no classification")
    if triage.novel:
        line += " (looks new)"
    if triage.similar:
        top = triage.similar[0]
        line += f"\nMost similar: {escape(top.external_id)} {escape(one_line(top.title, 120))}"
        if top.resolution:
            line += f" (fix: {escape(one_line(top.resolution, 200))})"
    if triage.runbooks:
        rb = triage.runbooks[0]
        line += f"\nRunbook: {escape(rb.document_title)} {escape(rb.section)}".rstrip()
    return cut_text(line, MAX_FALLBACK)


def render_triage(
    triage: Triage,
    answer_id: int | None,
    *,
    label_options: Mapping[str, Sequence[str]] | None = None,
    query_line: str = "",
) -> tuple[str, list[Block]]:
    """The compact answer: (text fallback, blocks). Feedback controls when ``answer_id``."""
    blocks: list[Block] = []
    if query_line:
        blocks.append(context(query_line))
    blocks.append(section(classification_line(triage)))
    if triage.novel:
        blocks.append(section(novelty_text(triage)))
    if triage.similar:
        lines = [f"*{triage.similar_heading()}*"] + [incident_text(s) for s in triage.similar[:3]]
        blocks.append(section("\n".join(lines)))
    if triage.runbooks:
        blocks.append(section(runbook_text(triage.runbooks[0], excerpt=600)))
    if triage.hypotheses:
        blocks.append(section(hypotheses_text(triage.hypotheses, 3)))
    if triage.steps:
        blocks.append(section(steps_text(triage.steps, 5)))
    blocks.append(context(versions_text(triage, answer_id)))
    if answer_id is not None:
        options = offered_labels(triage, label_options, answer_id)
        blocks.append(feedback_actions(answer_id, options))
    return fallback_text(triage), blocks[:MAX_BLOCKS]


def render_details(triage: Triage, answer_id: int | None) -> tuple[str, list[Block]]:
    """Everything in the answer (behind "More"): all labels, incidents, runbooks, steps."""
    blocks: list[Block] = [{"type": "header", "text": plain("Triage details", 150)}]
    blocks.append(section("*Query:* " + escape(one_line(triage.query, 2500))))
    for p in triage.predictions:
        line = prediction_text(p)
        if p.candidates:
            line += "\n   candidates: " + ", ".join(
                f"{escape(c)} {percent(s)}" for c, s in p.candidates[:5]
            )
        if p.top_terms:
            line += "\n   because of: " + escape(", ".join(p.top_terms[:8]))
        for ref, label, similarity in p.examples:
            line += f"\n   like {escape(clip(ref, 150))} ({escape(label)}, {similarity:.2f})"
        if p.model_version:
            line += f"\n   model {escape(p.model_version)}"
        blocks.append(section(line))
    if triage.novel:
        blocks.append(section(novelty_text(triage)))
    if triage.similar:
        blocks.append(section(f"*{triage.similar_heading()}*"))
    for item in triage.similar:
        blocks.append(section(incident_text(item, detail=True)))
    for match in triage.runbooks:
        blocks.append(section(runbook_text(match, excerpt=2400)))
    if triage.hypotheses:
        blocks.append(section(hypotheses_text(triage.hypotheses, 10)))
    if triage.steps:
        blocks.append(section(steps_text(triage.steps, 10)))
    blocks.append(context(versions_text(triage, answer_id)))
    text = "Triage details\n" + fallback_text(triage)
    return cut_text(text, MAX_FALLBACK), blocks[:MAX_BLOCKS]


def render_search_results(
    title: str, results: Iterable[Mapping[str, Any]], *, empty: str
) -> tuple[str, list[Block]]:
    """`/similar` and `/runbook` results (from ``Assistant.search``)."""
    rows = list(results)
    blocks: list[Block] = [section(f"*{escape(title)}*")]
    if not rows:
        blocks.append(section(escape(empty)))
        return escape(f"{title}: {empty}"), blocks
    for r in rows[:10]:
        where = escape(str(r.get("title", "")))
        if r.get("section"):
            where += f" › {escape(str(r['section']))}"
        ref = escape(str(r.get("ref", "")))
        # the cosine of the best passage: a similarity in [0, 1] (the fused rank score is not)
        line = f"• *{where}* _{ref}_ (similarity {float(r.get('dense', 0)):.2f})"
        detail = [f"{name}: {one_line(str(r[key]), 200)}"
                  for name, key in (("Cause", "root_cause"), ("Fix", "resolution")) if r.get(key)]
        if not detail and r.get("excerpt"):
            detail = [one_line(str(r["excerpt"]), 240)]
        if detail:
            line += "\n    " + escape(" · ".join(detail))
        blocks.append(section(line))
    text = f"{title}: " + "; ".join(str(r.get("title", "")) for r in rows[:5])
    return cut_text(escape(text), MAX_FALLBACK), blocks
