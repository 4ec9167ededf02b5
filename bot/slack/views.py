"""Modals and the App Home tab (Block Kit views: at most 100 blocks)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.slack.blocks import (
    MAX_OPTION_TEXT,
    MAX_OPTION_VALUE,
    MAX_OPTIONS,
    context,
    escape,
    plain,
    section,
)
from bot.slack.ids import ActionId, BlockId, CallbackId

MAX_VIEW_BLOCKS = 100
MAX_METADATA = 3000


def root_cause_modal(
    *,
    answer_id: int,
    channel: str,
    thread_ts: str,
    categories: Sequence[str],
    default_category: str = "",
    reply_ts: str | None = None,
) -> dict[str, Any]:
    """The "Record root cause and fix" modal; ``private_metadata`` carries the answer id, its
    conversation (``thread_ts``) and the thread notes go to (``reply_ts``, empty for a
    top-level answer without replies)."""
    reply_ts = thread_ts if reply_ts is None else reply_ts
    metadata = json.dumps(
        {"answer_id": answer_id, "channel": channel, "thread_ts": thread_ts, "reply_ts": reply_ts}
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": BlockId.ROOT_CAUSE,
            "label": plain("Root cause", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": ActionId.ROOT_CAUSE_TEXT,
                "multiline": True,
                "max_length": 3000,
                "placeholder": plain("What actually caused it?", 150),
            },
        },
        {
            "type": "input",
            "block_id": BlockId.FIX,
            "label": plain("Fix", 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": ActionId.ROOT_CAUSE_FIX,
                "multiline": True,
                "max_length": 3000,
                "placeholder": plain("What fixed it (commands welcome)?", 150),
            },
        },
    ]
    categories = modal_categories(categories)
    if categories:
        element: dict[str, Any] = {"action_id": ActionId.ROOT_CAUSE_CATEGORY}
        if len(categories) > MAX_OPTIONS:  # the options come from app.options as one types
            element.update(
                type="external_select",
                placeholder=plain("Category (type to search)", 150),
                min_query_length=0,
            )
        else:
            element.update(
                type="static_select",
                placeholder=plain("Category", 150),
                options=[category_option(c) for c in categories],
            )
        if default_category in categories:
            element["initial_option"] = category_option(default_category)
        blocks.append(
            {
                "type": "input",
                "block_id": BlockId.CATEGORY,
                "optional": True,
                "label": plain("Category", 2000),
                "element": element,
            }
        )
    return {
        "type": "modal",
        "callback_id": CallbackId.ROOT_CAUSE_MODAL,
        "title": plain("Root cause and fix", 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "private_metadata": metadata[:MAX_METADATA],
        "blocks": blocks,
    }


def modal_categories(categories: Sequence[str]) -> list[str]:
    """The categories the root-cause modal offers, and so the only ones it accepts: each
    once, none longer than an option value may be (150 characters; a cut one would store a
    category nobody chose)."""
    unique = dict.fromkeys(str(c) for c in categories)
    return [c for c in unique if c and len(c) <= MAX_OPTION_VALUE]


def category_option(category: str) -> dict[str, Any]:
    return {"text": plain(category, MAX_OPTION_TEXT), "value": category}


def modal_values(view: Mapping[str, Any]) -> dict[str, str]:
    """The submitted root cause, fix and category (empty strings when missing)."""
    state = (view.get("state") or {}).get("values") or {}

    def value(block: str, action: str) -> str:
        element = (state.get(block) or {}).get(action) or {}
        if element.get("type") == "static_select" or "selected_option" in element:
            return str((element.get("selected_option") or {}).get("value") or "")
        return str(element.get("value") or "").strip()

    return {
        "root_cause": value(BlockId.ROOT_CAUSE, ActionId.ROOT_CAUSE_TEXT),
        "fix": value(BlockId.FIX, ActionId.ROOT_CAUSE_FIX),
        "category": value(BlockId.CATEGORY, ActionId.ROOT_CAUSE_CATEGORY),
    }


def home_view(
    *,
    sizes: Mapping[str, int],
    models: Mapping[str, tuple[str, str, Mapping[str, Any]]],
    feedback: Mapping[str, int],
    is_admin: bool,
    notice: str = "",
    watch: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """App Home: index sizes, active models with measured quality, helpful rate, admin buttons.

    ``models`` maps target -> (version, kind, metrics); ``watch`` target -> how the model does
    in use (feedback, drift), shown under its line.
    """
    watch = watch or {}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": plain("triagebot", 150)}]
    if notice:
        blocks.append(section(notice))
    size_text = ", ".join(f"{escape(k)}: *{v}*" for k, v in sizes.items()) or "no indexes"
    blocks.append(section(f"*Search indexes:* {size_text}"))
    blocks.append(section("*Active models*" + ("" if models else "\nno models loaded")))
    for target, (version, kind, metrics) in sorted(models.items()):
        in_use = f"\n      {escape(watch[target])}" if watch.get(target) else ""
        line = section(f"• *{escape(target)}*: `{escape(version)}` ({escape(kind)})"
                       f"{_quality(metrics)}{in_use}")
        if is_admin and kind == "supervised":
            line["accessory"] = rollback_button(target, version)
        blocks.append(line)
    helpful = feedback.get("helpful", 0)
    not_helpful = feedback.get("not_helpful", 0)
    rated = helpful + not_helpful
    answers = feedback.get("rated_answers", rated)
    rate = (
        f"{helpful / rated:.0%} helpful ({helpful} of {rated} ratings, on {answers} "
        f"answer{'s' if answers != 1 else ''}; each person's latest rating counts)"
        if rated
        else ("no answers rated yet")
    )
    rest = sorted((k, v) for k, v in feedback.items()
                  if k not in ("helpful", "not_helpful", "rated_answers"))
    other = ", ".join(f"{escape(k)}: {v}" for k, v in rest)
    blocks.append(section(f"*Feedback:* {rate}" + (f"\n{other}" if other else "")))
    if is_admin:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ActionId.HOME_REINDEX,
                        "text": plain("Reindex runbooks", 75),
                        "value": "reindex",
                    },
                    {
                        "type": "button",
                        "action_id": ActionId.HOME_RETRAIN,
                        "text": plain("Retrain now", 75),
                        "value": "retrain",
                        "style": "primary",
                    },
                ],
            }
        )
    blocks.append(context("Mention @triagebot with an alert or question, or use /triage."))
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}


def rollback_button(target: str, version: str) -> dict[str, Any]:
    """Admin button that re-activates the target's previous promoted version, after a
    confirmation dialog (a misclick must not swap a model in production). Its value names
    the version shown as active (:func:`rollback_value`): a double click, or a click on a
    stale App Home, must not roll back a version the admin never saw."""
    return {
        "type": "button",
        "action_id": ActionId.HOME_ROLLBACK,
        "text": plain("Roll back", 75),
        "value": rollback_value(target, version),
        "confirm": {
            "title": plain("Roll back this model?", 100),
            "text": plain(
                f"{target}: answers go back to the version that was active before this one, "
                "on every replica within a minute. Undo: triagebot models promote VERSION.", 300),
            "confirm": plain("Roll back", 30),
            "deny": plain("Cancel", 30),
            "style": "danger",
        },
    }


def rollback_value(target: str, version: str) -> str:
    """A "Roll back" button's value: the target and the version it rolls back from."""
    return json.dumps({"target": target, "version": version})[:2000]


def parse_rollback_value(value: str) -> tuple[str, str]:
    """(target, version to roll back from) of a "Roll back" button's value; a bare target
    (the buttons of App Homes published before the version was added) gives ``""``: from
    whichever version is active."""
    try:
        data = json.loads(value)
    except ValueError:
        return value, ""
    if not isinstance(data, dict):
        return value, ""
    return str(data.get("target") or ""), str(data.get("version") or "")


def _quality(metrics: Mapping[str, Any]) -> str:
    parts = []
    for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("coverage", "coverage")):
        value = metrics.get(key)
        if isinstance(value, int | float):
            parts.append(f"{name} {value:.2f}")
    if parts and metrics.get("measured_on"):  # a zero-shot model, on the labels so far
        parts.append(f"on the {metrics['measured_on']} labelled examples so far")
    coverage = metrics.get("coverage")
    if isinstance(coverage, int | float) and coverage < 0.005 and parts:
        # its accuracy is that of guesses nobody is shown: every answer says "unsure"
        return (" — always unsure so far: never confident enough to answer ("
                + ", ".join(parts) + ", of its top guess)")
    return (" — " + ", ".join(parts)) if parts else " — not measured"


def form_reply_ts(meta: Mapping[str, Any]) -> str:
    """Where notes about a root-cause form go (its ``private_metadata``): the answer's thread,
    if it has one (forms opened before ``reply_ts`` was stored use ``thread_ts``)."""
    return str(meta.get("reply_ts", meta.get("thread_ts", "")))
