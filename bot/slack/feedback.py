"""Feedback controls on every answer: helpful / not helpful (reason), label corrections,
"Record root cause and fix" (modal -> resolved incident, searchable at once), and "More".

Every click is stored against the answer id carried in the control's value (or the modal's
``private_metadata``), audited, counted, and acknowledged with an ephemeral "Thanks, recorded".
When the database is unreachable, the click (or root cause) goes to the durable local spool
(:mod:`bot.spool`) and is stored when it is back; the person is told "Thanks, recorded" too.

A correction becomes a training label, so only a label the menu offers for that answer and
field is accepted (:func:`bot.slack.blocks.offered_labels`; the root-cause modal's category:
:func:`bot.slack.views.modal_categories`). Anything else (a forged or replayed payload, a
label removed since the answer was posted) is refused with a note and nothing is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App

from bot.metrics import FEEDBACK
from bot.sanitize import clean_text
from bot.slack.blocks import (
    MAX_OPTIONS,
    answer_id_of_block,
    correction_option_groups,
    escape,
    matching_labels,
    offered_labels,
    one_line,
    render_details,
)
from bot.slack.ids import NOT_HELPFUL_REASONS, ActionId, BlockId, CallbackId, FeedbackKind
from bot.slack.service import SlackBot, Where
from bot.slack.views import (
    category_option,
    form_reply_ts,
    modal_categories,
    modal_values,
    root_cause_modal,
)
from bot.store import repository as repo
from bot.store.db import session_scope
from bot.triage_types import Triage

log = logging.getLogger(__name__)


class BadActionValueError(ValueError):
    """A control's value does not carry a usable answer id."""


class RejectedCorrectionError(ValueError):
    """A correction names a field or label that the menu of that answer does not offer."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"correction {printable(field, 40)!r} -> {printable(value, 80)!r} "
                         "is not among the labels offered")
        self.field = field
        self.value = value

    def note(self) -> str:
        """What the person who sent it is told."""
        label = escape(printable(self.value, 80)) or "(empty)"
        field = escape(printable(self.field, 40)) or "(none)"
        return (
            f":warning: Not recorded: “{label}” is not one of the {field} labels offered for "
            "this answer (they may have changed since it was posted). Please pick one from "
            "the menu."
        )


def printable(text: str, limit: int) -> str:
    """``text`` on one line without control characters, cut to ``limit`` characters."""
    return one_line("".join(c if c.isprintable() else " " for c in str(text)), limit)


def check_correction(offered: Mapping[str, Sequence[str]], field: str, value: str) -> None:
    """Raise :class:`RejectedCorrectionError` unless ``value`` is offered for ``field``."""
    if value not in offered.get(field, ()):
        raise RejectedCorrectionError(field, value)


def register(app: App, bot: SlackBot) -> None:
    @app.action(ActionId.HELPFUL)
    def on_helpful(ack: Any, body: dict, action: dict, respond: Any) -> None:
        ack()
        click = Click.from_body(body, action.get("value", ""))
        bot.submit(
            record_click, bot, click, FeedbackKind.HELPFUL, "", "", "", respond, where=click.where
        )

    @app.action(ActionId.NOT_HELPFUL)
    def on_not_helpful(ack: Any, body: dict, action: dict, respond: Any) -> None:
        ack()
        value = (action.get("selected_option") or {}).get("value", "")
        answer_part, _, reason = value.partition("|")
        click = Click.from_body(body, answer_part)
        bot.submit(
            record_click,
            bot,
            click,
            FeedbackKind.NOT_HELPFUL,
            "",
            "",
            reason,
            respond,
            where=click.where,
        )

    @app.action(ActionId.CORRECT_LABEL)
    def on_correct(ack: Any, body: dict, action: dict, respond: Any) -> None:
        ack()
        value = (action.get("selected_option") or {}).get("value", "")
        parts = value.split("|", 2)
        click = Click.from_body(body, parts[0])
        field, label = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        bot.submit(
            record_click,
            bot,
            click,
            FeedbackKind.CORRECTION,
            field,
            label,
            "",
            respond,
            where=click.where,
        )

    @app.options(ActionId.CORRECT_LABEL)
    def on_correction_options(ack: Any, payload: dict) -> None:
        """The options of a long correction menu (an external select) as the person types."""
        answer_id = answer_id_of_block(payload.get("block_id", ""))
        groups: list[dict[str, Any]] = []
        if answer_id is not None and bot.runtime.ready.is_set():
            query = str(payload.get("value") or "")
            groups = correction_option_groups(answer_id, correction_offer(bot, answer_id), query)
        if groups:
            ack(option_groups=groups)
        else:
            ack(options=[])

    @app.options(ActionId.ROOT_CAUSE_CATEGORY)
    def on_category_options(ack: Any, payload: dict) -> None:
        """The options of the root-cause modal's category when there are more than 100."""
        categories = root_cause_categories(bot) if bot.runtime.ready.is_set() else []
        shown = matching_labels(categories, str(payload.get("value") or ""))[:MAX_OPTIONS]
        ack(options=[category_option(c) for c in shown])

    @app.action(ActionId.RECORD_ROOT_CAUSE)
    def on_record_root_cause(ack: Any, body: dict, action: dict, client: Any) -> None:
        ack()
        click = Click.from_body(body, action.get("value", ""))
        # views.open must use the trigger id within 3 s, so this runs here, not on the pool.
        # Bolt turns an exception raised after ack() into a 404 (and a Slack retry), so
        # failures are reported here, the same way the global error handler does.
        try:
            open_root_cause_modal(bot, client, click, body.get("trigger_id", ""))
        except Exception as exc:  # noqa: BLE001 - reported with a reference id
            bot.report_error(exc, click.where)

    @app.action(ActionId.MORE)
    def on_more(ack: Any, body: dict, action: dict, respond: Any) -> None:
        ack()
        click = Click.from_body(body, action.get("value", ""))
        bot.submit(show_details, bot, click, respond, where=click.where)

    @app.view(CallbackId.ROOT_CAUSE_MODAL)
    def on_root_cause_submitted(ack: Any, body: dict, view: dict) -> None:
        values = modal_values(view)
        errors = {}
        if not values["root_cause"]:
            errors["rc_root_cause"] = "Please describe the root cause."
        if not values["fix"]:
            errors["rc_fix"] = "Please describe the fix."
        category = values["category"]
        # (before start-up finishes, save_root_cause checks it on the worker instead)
        if category and bot.runtime.ready.is_set() and category not in root_cause_categories(bot):
            errors[BlockId.CATEGORY] = (
                "This category is not offered (any more). Please pick one from the list."
            )
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except json.JSONDecodeError:
            meta = {}
        user = (body.get("user") or {}).get("id", "")
        where = Where(str(meta.get("channel", "")), user, form_reply_ts(meta))
        bot.submit(save_root_cause, bot, user, meta, values, where=where)


class Click:
    """The parts of a block_actions payload that feedback needs.

    ``thread_ts``: the conversation the answer belongs to (its thread, or the answer itself
    when it is a top-level message such as a /triage answer or an alert-group message);
    ``reply_ts``: the thread notes to the person go to, empty for a top-level answer without
    replies (Slack does not show an ephemeral message in a thread that does not exist yet).
    """

    def __init__(
        self,
        *,
        answer_id: int | None,
        user: str,
        channel: str,
        thread_ts: str,
        reply_ts: str | None = None,
    ) -> None:
        self.answer_id = answer_id
        self.user = user
        self.channel = channel
        self.thread_ts = thread_ts
        self.reply_ts = thread_ts if reply_ts is None else reply_ts

    @classmethod
    def from_body(cls, body: Mapping[str, Any], answer_value: str) -> Click:
        message = body.get("message") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        reply_ts = message.get("thread_ts") or container.get("thread_ts") or ""
        thread_ts = reply_ts or message.get("ts") or container.get("message_ts") or ""
        try:
            answer_id: int | None = int(str(answer_value).strip())
        except ValueError:
            answer_id = None
        return cls(
            answer_id=answer_id,
            user=(body.get("user") or {}).get("id", ""),
            channel=channel,
            thread_ts=thread_ts,
            reply_ts=reply_ts,
        )

    @property
    def where(self) -> Where:
        return Where(self.channel, self.user, self.reply_ts)

    def require_answer_id(self) -> int:
        if self.answer_id is None:
            raise BadActionValueError("the control does not carry an answer id")
        return self.answer_id


def root_cause_categories(bot: SlackBot) -> list[str]:
    """The categories the root-cause modal offers, and so the only ones it accepts."""
    return modal_categories(bot.label_options().get("category", []))


def correction_offer(bot: SlackBot, answer_id: int) -> dict[str, list[str]]:
    """The labels per field that the correction menu of answer ``answer_id`` offers; only
    the known labels when its stored answer cannot be read."""
    try:
        triage = _stored_triage(bot, answer_id)
    except Exception as exc:  # noqa: BLE001 - an options request must still be answered
        log.warning("cannot read answer #%s for its correction menu: %s", answer_id, exc)
        triage = None
    return offered_labels(triage, bot.label_options(), answer_id)


def _stored_triage(bot: SlackBot, answer_id: int) -> Triage | None:
    with session_scope(bot.services().sessions) as session:
        answer = repo.get_answer(session=session, answer_id=answer_id)
        return _triage_of(answer)


def _triage_of(answer: Any) -> Triage | None:
    """The stored answer as a Triage; None when it is gone or cannot be read."""
    if answer is None:
        return None
    try:
        return Triage.from_dict(dict(answer.answer))
    except (TypeError, ValueError, KeyError):
        log.warning("stored answer #%s cannot be read as a triage", answer.id)
        return None


def open_root_cause_modal(bot: SlackBot, client: Any, click: Click, trigger_id: str) -> None:
    answer_id = click.require_answer_id()
    categories: list[str] = []
    default = ""
    if bot.runtime.ready.is_set():
        categories = root_cause_categories(bot)
        default = _predicted(bot, answer_id, "category")
    view = root_cause_modal(
        answer_id=answer_id,
        channel=click.channel,
        thread_ts=click.thread_ts,
        reply_ts=click.reply_ts,
        categories=categories,
        default_category=default,
    )
    bot.poster.call("views.open", lambda: client.views_open(trigger_id=trigger_id, view=view))


def _tell(bot: SlackBot, click: Click, respond: Any, text: str, blocks: Any = None) -> None:
    """An ephemeral note to the person who clicked (in the thread when possible)."""
    if bot.safe_ephemeral(click.where, text, blocks):
        return
    if respond is not None:
        respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)


class AnswerGoneError(LookupError):
    """A spooled feedback record names an answer that does not exist (any more)."""


def record_click(
    bot: SlackBot,
    click: Click,
    kind: FeedbackKind,
    field: str,
    value: str,
    reason: str,
    respond: Any,
) -> None:
    services = bot.services()
    answer_id = click.require_answer_id()
    known = bot.label_options() if kind == FeedbackKind.CORRECTION else {}
    fields: dict[str, Any] = {
        "answer_id": answer_id,
        "kind": str(kind),
        "user_id": click.user,
        "field": field,
        "value": value,
        "reason": reason,
    }
    try:
        if kind == FeedbackKind.CORRECTION and field in known:
            # checked before the database too, so that junk is not even spooled
            check_correction(offered_labels(None, known, answer_id), field, value)
        with session_scope(services.sessions) as session:
            found = store_click(session, known=known, **fields)
    except RejectedCorrectionError as exc:
        log.warning("answer #%s: %s (user %s)", answer_id, exc, click.user)
        _tell(bot, click, respond, exc.note())
        return
    except Exception as exc:
        if not spool_feedback(bot, "click", fields, exc):
            raise
        found = True  # durable in the spool; stored once the database is back
    if not found:
        _tell(bot, click, respond, f"That answer (#{answer_id}) no longer exists.")
        return
    FEEDBACK.labels(kind=str(kind)).inc()
    if kind == FeedbackKind.HELPFUL:
        note = "Thanks, recorded: helpful."
    elif kind == FeedbackKind.NOT_HELPFUL:
        note = f"Thanks, recorded: not helpful ({NOT_HELPFUL_REASONS.get(reason, reason)})."
    else:
        note = (
            f"Thanks, recorded: {escape(field)} should be *{escape(value)}*. "
            "It is used at the next retrain."
        )
    _tell(bot, click, respond, note)


def store_click(
    session: Any,
    *,
    known: Mapping[str, Sequence[str]],
    answer_id: int,
    kind: str,
    user_id: str,
    field: str,
    value: str,
    reason: str,
) -> bool:
    """Store one click (feedback row, label correction, audit); False when the answer is gone.
    The same click by the same person on the same answer, twice in a row, is stored once.

    ``known``: the known labels per target (:meth:`SlackBot.label_options`). A correction
    whose label the answer's menu does not offer raises :class:`RejectedCorrectionError`
    before anything is written."""
    answer = repo.get_answer(session=session, answer_id=answer_id)
    if answer is None:
        return False
    if kind == FeedbackKind.CORRECTION:
        check_correction(offered_labels(_triage_of(answer), known, answer_id), field, value)
    same = {"kind": kind, "user_id": user_id, "field": field, "value": value, "reason": reason}
    if repo.repeats_last_feedback(session=session, answer_id=answer_id, **same):
        return True  # the same click again (a double click): judged once, not twice
    row = repo.record_feedback(
        session=session,
        answer_id=answer_id,
        kind=kind,
        user_id=user_id,
        field=field,
        value=value,
        reason=reason,
    )
    if kind == FeedbackKind.CORRECTION:
        repo.add_labeled_example(
            session=session,
            text=answer.query,
            field=field,
            label=value,
            origin="feedback",
            feedback_id=row.id,
        )
    repo.audit(
        session=session,
        actor=user_id,
        action="feedback",
        subject=f"answer:{answer_id}",
        detail={"kind": kind, "field": field, "value": value, "reason": reason},
    )
    return True


def spool_feedback(bot: SlackBot, op: str, payload: Mapping[str, Any], exc: BaseException) -> bool:
    """Spool feedback the database could not take; False when ``exc`` is not "database down"
    or no spool is configured (the caller re-raises)."""
    from bot.spool import is_database_down

    spool = bot.runtime.components.get("spool")
    if spool is None or not is_database_down(exc):
        return False
    try:
        spool.append("feedback", {"op": op, **payload})
    except Exception:
        log.exception("cannot spool feedback either")
        return False
    log.warning("database unreachable; feedback (%s) spooled: %s", op, exc)
    replayer = bot.runtime.components.get("spool_replayer")
    if replayer is not None:
        replayer.wake()
    return True


CLICK_FIELDS = ("answer_id", "kind", "user_id", "field", "value", "reason")


def apply_spooled_feedback(bot: SlackBot, record: Any) -> str:
    """Store a spooled click or root cause (idempotent by record id); "duplicate" when it
    was stored before. Raises :class:`AnswerGoneError` when its answer does not exist."""
    from bot.spool import already_applied, mark_applied

    payload = record.payload
    op = payload.get("op")
    if op == "root_cause":
        _store_root_cause(bot, payload["user"], payload["meta"], payload["values"], record)
        return "applied"
    if op != "click":
        raise ValueError(f"unknown spooled feedback operation {op!r}")
    services = bot.services()
    known = bot.label_options() if payload.get("kind") == FeedbackKind.CORRECTION else {}
    with session_scope(services.sessions) as session:
        if already_applied(session, record.id):
            return "duplicate"
        if not store_click(session, known=known, **{k: payload[k] for k in CLICK_FIELDS}):
            raise AnswerGoneError(f"answer #{payload['answer_id']} does not exist")
        mark_applied(session, record)
    return "applied"


def show_details(bot: SlackBot, click: Click, respond: Any) -> None:
    services = bot.services()
    answer_id = click.require_answer_id()
    with session_scope(services.sessions) as session:
        answer = repo.get_answer(session=session, answer_id=answer_id)
        data = dict(answer.answer) if answer is not None else None
    if data is None:
        _tell(bot, click, respond, f"That answer (#{answer_id}) no longer exists.")
        return
    text, blocks = render_details(Triage.from_dict(data), answer_id)
    _tell(bot, click, respond, text, blocks)


def _predicted(bot: SlackBot, answer_id: int, field: str) -> str:
    services = bot.services()
    with session_scope(services.sessions) as session:
        answer = repo.get_answer(session=session, answer_id=answer_id)
        data = dict(answer.answer) if answer is not None else {}
    for p in data.get("predictions") or ():
        if p.get("field") == field and p.get("label"):
            return str(p["label"])
    return ""


def save_root_cause(bot: SlackBot, user: str, meta: Mapping[str, Any], values: dict) -> None:
    """Store the root cause and fix as a resolved incident and make it searchable at once."""
    bot.services()
    try:
        answer_id = int(meta.get("answer_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise BadActionValueError("the modal does not carry an answer id") from exc
    channel = str(meta.get("channel", ""))
    thread_ts = str(meta.get("thread_ts", ""))
    where = Where(channel, user, form_reply_ts(meta))
    category = values.get("category") or ""
    if category and category not in root_cause_categories(bot):
        # only when it was submitted before start-up finished (on_root_cause_submitted)
        bot.safe_ephemeral(
            where,
            f":warning: Not recorded: the category “{escape(printable(category, 80))}” is not "
            "offered (any more). Please record the root cause again.",
        )
        return
    values = {k: clean_text(v) if isinstance(v, str) else v for k, v in values.items()}
    spooled_meta = {"answer_id": answer_id, "channel": channel, "thread_ts": thread_ts}
    try:
        found, external_id = _store_root_cause(bot, user, spooled_meta, values, None)
    except Exception as exc:
        payload = {"user": user, "meta": spooled_meta, "values": values}
        if not spool_feedback(bot, "root_cause", payload, exc):
            raise
        FEEDBACK.labels(kind=str(FeedbackKind.ROOT_CAUSE)).inc()
        bot.safe_ephemeral(
            where,
            "Thanks, recorded: root cause and fix saved; the next answers can find them "
            "shortly.",
        )
        return
    if not found:
        bot.safe_ephemeral(where, f"That answer (#{answer_id}) no longer exists.")
        return
    FEEDBACK.labels(kind=str(FeedbackKind.ROOT_CAUSE)).inc()
    bot.safe_ephemeral(
        where,
        f"Thanks, recorded: root cause and fix saved as incident `{escape(external_id)}`; "
        "the next answers can find it.",
    )


def _store_root_cause(
    bot: SlackBot, user: str, meta: Mapping[str, Any], values: dict, record: Any
) -> tuple[bool, str]:
    """The incident, feedback and audit rows of a root cause (one transaction), then index it.

    ``record``: the spool record being replayed (idempotency marker), or None. Returns
    (answer found, incident external id)."""
    from bot.spool import already_applied, mark_applied

    services = bot.services()
    answer_id = int(meta["answer_id"])
    channel = str(meta.get("channel", ""))
    thread_ts = str(meta.get("thread_ts", ""))
    visibility = bot.new_item_visibility(channel)
    category = values.get("category") or _predicted(bot, answer_id, "category")
    external_id = (
        f"slack:{channel}:{thread_ts}" if channel and thread_ts else f"slack:answer:{answer_id}"
    )
    incident_id = None
    with session_scope(services.sessions) as session:
        answer = repo.get_answer(session=session, answer_id=answer_id)
        if record is not None and already_applied(session, record.id):
            return True, external_id
        if answer is None:
            if record is not None:
                raise AnswerGoneError(f"answer #{answer_id} does not exist")
            found = False
        else:
            found = True
            query = answer.query or ""
            title = (query.splitlines() or [""])[0][:200]
            row, _status = repo.upsert_incident(
                session=session,
                external_id=external_id,
                kind="incident",
                title=title,
                description=query,
                category=category,
                root_cause=values["root_cause"],
                resolution=values["fix"],
                resolved_by=user,
                source_name="slack",
                visibility=visibility,
                occurred_at=datetime.now(UTC),
            )
            incident_id = row.id
            repo.record_feedback(
                session=session,
                answer_id=answer_id,
                kind=str(FeedbackKind.ROOT_CAUSE),
                user_id=user,
                field="root_cause",
                value=json.dumps(values, ensure_ascii=False),
                item_ref=f"incident:{external_id}",
            )
            repo.audit(
                session=session,
                actor=user,
                action="root_cause_recorded",
                subject=f"incident:{external_id}",
                detail={"answer_id": answer_id, "visibility": visibility, "category": category},
            )
            if record is not None:
                mark_applied(session, record)
    if incident_id is not None:
        services.knowledge.add_incident(incident_id)
    return found, external_id
