"""Action, callback and block ids shared by the renderers and the handlers."""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    HELPFUL = "triage_helpful"
    NOT_HELPFUL = "triage_not_helpful"  # static select of reasons
    CORRECT_LABEL = "triage_correct_label"  # static select, option groups per field
    RECORD_ROOT_CAUSE = "triage_record_root_cause"  # opens the root-cause modal
    MORE = "triage_more"  # posts the full details
    HOME_REINDEX = "home_reindex"
    HOME_RETRAIN = "home_retrain"
    HOME_ROLLBACK = "home_rollback"  # value: the target whose model goes back one version
    ROOT_CAUSE_CATEGORY = "root_cause_category"
    ROOT_CAUSE_TEXT = "root_cause_text"
    ROOT_CAUSE_FIX = "root_cause_fix"


class BlockId(StrEnum):
    FEEDBACK = "triage_feedback"
    ROOT_CAUSE = "rc_root_cause"
    FIX = "rc_fix"
    CATEGORY = "rc_category"


class CallbackId(StrEnum):
    ROOT_CAUSE_MODAL = "root_cause_modal"
    TRIAGE_MESSAGE_SHORTCUT = "triage_message"


class Surface(StrEnum):
    """Where an answer was shown (stored with the answer)."""

    MENTION = "slack_mention"
    MESSAGE = "slack_message"
    SLASH_TRIAGE = "slash_triage"
    SHORTCUT = "slack_shortcut"


class FeedbackKind(StrEnum):
    HELPFUL = "helpful"
    NOT_HELPFUL = "not_helpful"
    CORRECTION = "correction"
    ROOT_CAUSE = "root_cause"


NOT_HELPFUL_REASONS: dict[str, str] = {
    "wrong_category": "Wrong classification",
    "irrelevant_incidents": "Similar incidents are not similar",
    "wrong_runbook": "Wrong runbook",
    "bad_steps": "Steps would not help",
    "too_long": "Too long / noisy",
    "other": "Other",
}
